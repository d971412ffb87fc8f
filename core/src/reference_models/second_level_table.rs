//! [`SecondLevelTable`] against a block model: every result of every call must equal
//! the model's, and after every step the table must hold exactly the model's entries
//! (found by a walk of the test's own, [`table_entries`]).

use super::{HUGE, Mismatch, PAGE, intersects, leaf, size_of};
use crate::mmu::{MmuError, PageSize, Perms, PteFormat, Scope, SecondLevelTable};
use crate::testing::{FakeHost, TestFormat, table_entries};
use std::collections::BTreeMap;
use std::vec::Vec;

/// Level-2 block numbers (2 MiB units) whose GPAs spread over different tables at every
/// level, so walks share and split tables: the first block, its neighbour, the first
/// block of the next level-3 table, and of the next level-4 entry.
pub const BLOCKS: [u64; 4] = [0, 1, 512, 512 * 512];
/// Pages inside a block: the first, the second and the last.
pub const PAGES: [u64; 3] = [0, 1, 511];
/// Offsets that make a GPA miss its page boundary.
pub const MISALIGNED_OFFSETS: [u64; 3] = [0x8, 0x800, 0xfff];
/// Frames for 4 KiB leaves (the 2 MiB-aligned one as well).
pub const FRAMES_4K: [u64; 4] = [0x10_0000, 0x10_1000, 0x20_0000, 0x1234_5000];
/// A frame a 4 KiB leaf cannot take.
pub const MISALIGNED_FRAME_4K: u64 = 0x10_0800;
/// Frames for 2 MiB leaves, one above 4 GiB.
pub const FRAMES_2M: [u64; 3] = [0x20_0000, 0x40_0000, 0x1_0000_0000];
/// A frame a 2 MiB leaf cannot take (4 KiB aligned only).
pub const MISALIGNED_FRAME_2M: u64 = 0x21_0000;
/// Offsets a lookup adds to a table GPA: inside the page, and past a block's first page.
pub const LOOKUP_OFFSETS: [u64; 4] = [0, 0x123, 0xfff, 0x1_0008];
/// Zap lengths. Zero included: an empty range intersects nothing, not even a leaf
/// containing it.
pub const ZAP_LENGTHS: [u64; 10] = [
    0,
    1,
    PAGE,
    2 * PAGE,
    HUGE - PAGE,
    HUGE,
    HUGE + PAGE,
    2 * HUGE,
    1 << 30,
    u64::MAX,
];
/// Frames an unfreeze may install as a new leaf.
pub const UNFREEZE_FRAMES: [u64; 2] = [0x20_0000, 0x40_0000];
pub const SCOPES: [Scope; 3] = [Scope::Private, Scope::Shared, Scope::Both];
/// Tables a harness may allocate: far more than any sequence of the drivers' lengths
/// needs (at most three per operation), so running out is never the model's fault.
pub const TABLE_BUDGET: usize = 4096;

/// The GPA of page `page` of block `block` (see [`BLOCKS`], [`PAGES`]).
pub const fn table_gpa(block: u64, page: u64) -> u64 {
    block * HUGE + page * PAGE
}

/// A last-level entry of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry4K {
    Leaf(u64),
    /// Frozen; holds what the freeze took out.
    Frozen(u64),
}

/// A 2 MiB block of the model (an absent block is a zero level-2 entry).
#[derive(Clone, Debug)]
enum Block {
    /// A last-level table with its non-zero entries by GPA.
    Table(BTreeMap<u64, Entry4K>),
    Huge(u64),
    /// Frozen; holds what the freeze took out, and the table it detached if any.
    Frozen {
        taken: u64,
        table: Option<BTreeMap<u64, Entry4K>>,
    },
}

/// What an unfreeze stores.
#[derive(Clone, Copy, Debug)]
pub enum NewValue {
    /// What the freeze took out (0 if the entry is not frozen).
    Restore,
    Zero,
    Leaf {
        pa: u64,
        pinned: bool,
    },
}

/// One call on the table. GPAs stay below 2^48 (the table translates 48 bits; the VM
/// refuses wider GPAs before it gets here) and frames inside the format's address
/// field, as every caller of the table guarantees.
#[derive(Clone, Copy, Debug)]
pub enum MmuOp {
    Map {
        gpa: u64,
        pa: u64,
        huge: bool,
        pinned: bool,
    },
    Lookup {
        gpa: u64,
    },
    Clear {
        gpa: u64,
    },
    IsVacant {
        gpa: u64,
        huge: bool,
    },
    Zap {
        gpa: u64,
        len: u64,
        scope: Scope,
    },
    Freeze {
        gpa: u64,
        huge: bool,
    },
    Unfreeze {
        gpa: u64,
        huge: bool,
        value: NewValue,
    },
}

/// How the model expects an entry to look in the real table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A link to a last-level table (its address is the allocator's choice).
    Link,
    Pte(u64),
}

/// The model: the table as a map of 2 MiB blocks.
#[derive(Default)]
pub struct TableModel {
    blocks: BTreeMap<u64, Block>,
}

impl TableModel {
    /// What the real table must hold: (gpa, level, entry) in GPA order.
    pub fn expected(&self) -> Vec<(u64, usize, Seen)> {
        let mut out = Vec::new();
        for (&gpa, block) in &self.blocks {
            match block {
                Block::Table(entries) => {
                    out.push((gpa, 2, Seen::Link));
                    for (&page, entry) in entries {
                        let pte = match *entry {
                            Entry4K::Leaf(pte) => pte,
                            Entry4K::Frozen(_) => TestFormat::FROZEN,
                        };
                        out.push((page, 1, Seen::Pte(pte)));
                    }
                }
                Block::Huge(pte) => out.push((gpa, 2, Seen::Pte(*pte))),
                Block::Frozen { .. } => out.push((gpa, 2, Seen::Pte(TestFormat::FROZEN))),
            }
        }
        out
    }

    /// The last-level table for `gpa`'s block, created if the level-2 entry is empty
    /// (as the engine's walk does), or the error the walk stops with.
    fn last_level(&mut self, gpa: u64) -> Result<&mut BTreeMap<u64, Entry4K>, MmuError> {
        let block = self
            .blocks
            .entry(gpa & !(HUGE - 1))
            .or_insert_with(|| Block::Table(BTreeMap::new()));
        match block {
            Block::Table(entries) => Ok(entries),
            Block::Huge(pte) => Err(MmuError::AlreadyMapped { pte: *pte }),
            Block::Frozen { .. } => Err(MmuError::Frozen),
        }
    }

    pub fn map(
        &mut self,
        gpa: u64,
        pa: u64,
        size: PageSize,
        pinned: bool,
        link: u64,
    ) -> Result<(), MmuError> {
        if !pa.is_multiple_of(size.bytes()) || !gpa.is_multiple_of(size.bytes()) {
            return Err(MmuError::Misaligned);
        }
        let new = leaf(pa, size, pinned);
        if size == PageSize::Size2M {
            return match self.blocks.get(&gpa) {
                None => {
                    self.blocks.insert(gpa, Block::Huge(new));
                    Ok(())
                }
                Some(Block::Huge(pte)) => Err(MmuError::AlreadyMapped { pte: *pte }),
                Some(Block::Table(_)) => Err(MmuError::AlreadyMapped { pte: link }),
                Some(Block::Frozen { .. }) => Err(MmuError::Frozen),
            };
        }
        let entries = self.last_level(gpa)?;
        match entries.get(&gpa) {
            None => {
                entries.insert(gpa, Entry4K::Leaf(new));
                Ok(())
            }
            Some(Entry4K::Leaf(pte)) => Err(MmuError::AlreadyMapped { pte: *pte }),
            Some(Entry4K::Frozen(_)) => Err(MmuError::Frozen),
        }
    }

    pub fn lookup(&self, gpa: u64) -> Option<(u64, PageSize, u64)> {
        match self.blocks.get(&(gpa & !(HUGE - 1)))? {
            Block::Huge(pte) => Some((
                TestFormat::address(*pte) + (gpa & (HUGE - 1)),
                PageSize::Size2M,
                *pte,
            )),
            Block::Table(entries) => match entries.get(&(gpa & !(PAGE - 1)))? {
                Entry4K::Leaf(pte) => Some((
                    TestFormat::address(*pte) + (gpa & (PAGE - 1)),
                    PageSize::Size4K,
                    *pte,
                )),
                Entry4K::Frozen(_) => None,
            },
            Block::Frozen { .. } => None,
        }
    }

    pub fn clear(&mut self, gpa: u64) -> Option<u64> {
        let block_gpa = gpa & !(HUGE - 1);
        match self.blocks.get_mut(&block_gpa)? {
            Block::Huge(pte) => {
                let pte = *pte;
                self.blocks.remove(&block_gpa);
                Some(pte)
            }
            Block::Table(entries) => match entries.get(&(gpa & !(PAGE - 1)))? {
                Entry4K::Leaf(pte) => {
                    let pte = *pte;
                    entries.remove(&(gpa & !(PAGE - 1)));
                    Some(pte)
                }
                Entry4K::Frozen(_) => None,
            },
            Block::Frozen { .. } => None,
        }
    }

    pub fn is_vacant(&self, gpa: u64, size: PageSize) -> bool {
        match (self.blocks.get(&(gpa & !(HUGE - 1))), size) {
            (None, _) => true,
            (Some(_), PageSize::Size2M) => false,
            (Some(Block::Table(entries)), PageSize::Size4K) => {
                !entries.contains_key(&(gpa & !(PAGE - 1)))
            }
            (Some(_), PageSize::Size4K) => false,
        }
    }

    pub fn zap(&mut self, gpa: u64, len: u64, scope: Scope) -> Vec<(u64, PageSize, u64)> {
        let mut cleared = Vec::new();
        let mut emptied = Vec::new();
        for (&block_gpa, block) in self.blocks.iter_mut() {
            if !intersects(block_gpa, HUGE, gpa, len) {
                continue;
            }
            match block {
                Block::Huge(pte) => {
                    if scope.covers::<TestFormat>(*pte) {
                        cleared.push((block_gpa, PageSize::Size2M, *pte));
                        emptied.push(block_gpa);
                    }
                }
                Block::Table(entries) => entries.retain(|&page, entry| match *entry {
                    Entry4K::Leaf(pte)
                        if intersects(page, PAGE, gpa, len) && scope.covers::<TestFormat>(pte) =>
                    {
                        cleared.push((page, PageSize::Size4K, pte));
                        false
                    }
                    _ => true,
                }),
                Block::Frozen { .. } => {}
            }
        }
        for block_gpa in emptied {
            self.blocks.remove(&block_gpa);
        }
        cleared
    }

    pub fn freeze(&mut self, gpa: u64, size: PageSize, link: u64) -> Result<u64, MmuError> {
        if !gpa.is_multiple_of(size.bytes()) {
            return Err(MmuError::Misaligned);
        }
        if size == PageSize::Size2M {
            let (taken, table) = match self.blocks.remove(&gpa) {
                None => (0, None),
                Some(Block::Huge(pte)) => (pte, None),
                Some(Block::Table(entries)) => (link, Some(entries)),
                Some(frozen @ Block::Frozen { .. }) => {
                    self.blocks.insert(gpa, frozen);
                    return Err(MmuError::Frozen);
                }
            };
            self.blocks.insert(gpa, Block::Frozen { taken, table });
            return Ok(taken);
        }
        let entries = self.last_level(gpa)?;
        let taken = match entries.get(&gpa) {
            None => 0,
            Some(Entry4K::Leaf(pte)) => *pte,
            Some(Entry4K::Frozen(_)) => return Err(MmuError::Frozen),
        };
        entries.insert(gpa, Entry4K::Frozen(taken));
        Ok(taken)
    }

    /// What [`NewValue::Restore`] stores: what the freeze of the entry took out.
    pub fn taken(&self, gpa: u64, size: PageSize) -> u64 {
        match (self.blocks.get(&(gpa & !(HUGE - 1))), size) {
            (Some(Block::Frozen { taken, .. }), PageSize::Size2M) => *taken,
            (Some(Block::Table(entries)), PageSize::Size4K) => match entries.get(&gpa) {
                Some(Entry4K::Frozen(taken)) => *taken,
                _ => 0,
            },
            _ => 0,
        }
    }

    pub fn unfreeze(
        &mut self,
        gpa: u64,
        size: PageSize,
        value: u64,
        link: u64,
    ) -> Result<(), MmuError> {
        if !gpa.is_multiple_of(size.bytes()) {
            return Err(MmuError::Misaligned);
        }
        if size == PageSize::Size2M {
            let restored = match self.blocks.remove(&gpa) {
                None => return Err(MmuError::NotFrozen { pte: 0 }),
                Some(Block::Huge(pte)) => {
                    self.blocks.insert(gpa, Block::Huge(pte));
                    return Err(MmuError::NotFrozen { pte });
                }
                Some(table @ Block::Table(_)) => {
                    self.blocks.insert(gpa, table);
                    return Err(MmuError::NotFrozen { pte: link });
                }
                Some(Block::Frozen { taken, table }) => match table {
                    Some(entries) if value == taken => Some(Block::Table(entries)),
                    _ if value == 0 => None,
                    _ => Some(Block::Huge(value)),
                },
            };
            if let Some(block) = restored {
                self.blocks.insert(gpa, block);
            }
            return Ok(());
        }
        let entries = self.last_level(gpa)?;
        match entries.get(&gpa) {
            None => Err(MmuError::NotFrozen { pte: 0 }),
            Some(Entry4K::Leaf(pte)) => Err(MmuError::NotFrozen { pte: *pte }),
            Some(Entry4K::Frozen(_)) => {
                if value == 0 {
                    entries.remove(&gpa);
                } else {
                    entries.insert(gpa, Entry4K::Leaf(value));
                }
                Ok(())
            }
        }
    }
}

/// The real level-2 entry for `gpa`'s block if it links a table, else 0: the one value
/// the model cannot predict (which page the allocator handed out).
pub fn link_at(host: &mut FakeHost, root: u64, gpa: u64) -> u64 {
    table_entries::<TestFormat>(host, root)
        .into_iter()
        .find(|e| {
            e.level == 2
                && e.gpa == gpa & !(HUGE - 1)
                && TestFormat::is_present(e.pte)
                && !TestFormat::is_huge(e.pte)
        })
        .map_or(0, |e| e.pte)
}

/// Run `op` on the real table and on the model; every result must match.
pub fn run_mmu_op(
    op: MmuOp,
    host: &mut FakeHost,
    table: &mut SecondLevelTable<TestFormat>,
    model: &mut TableModel,
) -> Result<(), Mismatch> {
    let root = table.root();
    match op {
        MmuOp::Map {
            gpa,
            pa,
            huge,
            pinned,
        } => {
            let link = link_at(host, root, gpa);
            let size = size_of(huge);
            let got = table.map(host, gpa, pa, size, Perms::ALL, pinned);
            ensure_eq!(got, model.map(gpa, pa, size, pinned, link));
        }
        MmuOp::Lookup { gpa } => {
            let got = table.lookup(host, gpa).map(|m| (m.pa, m.size, m.pte));
            ensure_eq!(got, model.lookup(gpa));
        }
        MmuOp::Clear { gpa } => {
            ensure_eq!(table.clear(host, gpa), model.clear(gpa));
        }
        MmuOp::IsVacant { gpa, huge } => {
            let size = size_of(huge);
            ensure_eq!(table.is_vacant(host, gpa, size), model.is_vacant(gpa, size));
        }
        MmuOp::Zap { gpa, len, scope } => {
            let mut seen = Vec::new();
            let n = table.zap(host, gpa, len, scope, |g, s, pte| seen.push((g, s, pte)));
            let expected = model.zap(gpa, len, scope);
            ensure_eq!(n, expected.len() as u64);
            ensure_eq!(seen, expected);
        }
        MmuOp::Freeze { gpa, huge } => {
            let link = link_at(host, root, gpa);
            let size = size_of(huge);
            let got = table.freeze(host, gpa, size);
            ensure_eq!(got, model.freeze(gpa, size, link));
        }
        MmuOp::Unfreeze { gpa, huge, value } => {
            let size = size_of(huge);
            let value = match value {
                NewValue::Restore => model.taken(gpa, size),
                NewValue::Zero => 0,
                NewValue::Leaf { pa, pinned } => leaf(pa, size, pinned),
            };
            let link = link_at(host, root, gpa);
            let got = table.unfreeze(host, gpa, size, value);
            ensure_eq!(got, model.unfreeze(gpa, size, value, link));
        }
    }
    Ok(())
}

/// A real table on a fake host beside its model.
pub struct TableHarness {
    pub host: FakeHost,
    pub table: SecondLevelTable<TestFormat>,
    pub model: TableModel,
}

impl Default for TableHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl TableHarness {
    pub fn new() -> Self {
        let mut host = FakeHost::new(TABLE_BUDGET);
        let table = SecondLevelTable::<TestFormat>::new(&mut host)
            .expect("a fresh host has a page for the root");
        Self {
            host,
            table,
            model: TableModel::default(),
        }
    }

    /// Run `op` on both (every result must match), then compare the whole table with
    /// the model, entry by entry.
    pub fn step(&mut self, op: MmuOp) -> Result<(), Mismatch> {
        run_mmu_op(op, &mut self.host, &mut self.table, &mut self.model)?;
        let real: Vec<(u64, usize, Seen)> =
            table_entries::<TestFormat>(&mut self.host, self.table.root())
                .into_iter()
                .map(|e| {
                    let seen = if e.level == 2
                        && !e.is_leaf::<TestFormat>()
                        && e.pte != TestFormat::FROZEN
                    {
                        Seen::Link
                    } else {
                        Seen::Pte(e.pte)
                    };
                    (e.gpa, e.level, seen)
                })
                .collect();
        ensure_eq!(real, self.model.expected(), "after {:?}", op);
        Ok(())
    }
}
