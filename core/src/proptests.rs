//! Property tests: random sequences of operations against simple reference models, with
//! the invariants of ../shared/design/ARCHITECTURE.md ("Invariants worth a test each")
//! and the PIN-/POOL- items of ../shared/specs/confidential-memory.md §H checked after
//! every step.
//!
//! - `mmu_second_level_table_matches_a_block_model`: [`SecondLevelTable`] alone (map,
//!   lookup, clear, is_vacant, scoped zap, freeze/unfreeze) against a map of 2 MiB blocks.
//! - `pin_01_pool_04_pool_06_pin_02_pin_03_vm_memory_matches_a_page_model`: the VM
//!   (faults through `prefault` and through a scripted vCPU, scoped zaps, punch-holes,
//!   restarts, refused prepares) against a model of its private pages, with a vendor
//!   that checks at every release that no leaf maps the frame.
//!
//! `PROPTEST_CASES=n` overrides the case counts.

use crate::exit::{Access, Exit};
use crate::memslot::{Backing, SlotSpec};
use crate::mmu::{
    MmuError, PageSize, Perms, PteFormat, Scope, SecondLevelTable, VendorError, VendorMmu,
};
use crate::stop::Stop;
use crate::testing::{FakeHost, ScriptedVcpu, TableEntry, TestFormat, table_entries, table_leaves};
use crate::vm::{Pinning, Vm, VmSpec};
use cloister_abi::MemoryKind;
use cloister_privmem::{PageState, PrivMemError, PrivateMemory};
use core::cell::RefCell;
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::rc::Rc;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// `PROPTEST_CASES` if set (for longer runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

const PAGE: u64 = 0x1000;
const HUGE: u64 = 0x20_0000;

fn leaf(pa: u64, size: PageSize, pinned: bool) -> u64 {
    TestFormat::leaf(pa, size, Perms::ALL) | if pinned { TestFormat::PINNED } else { 0 }
}

fn size_of(huge: bool) -> PageSize {
    if huge {
        PageSize::Size2M
    } else {
        PageSize::Size4K
    }
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (ends saturate).
fn intersects(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a_len > 0 && b_len > 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

// ---------------------------------------------------------------------------------------
// The second-level table against a block model.
// ---------------------------------------------------------------------------------------

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

#[derive(Clone, Copy, Debug)]
enum NewValue {
    /// What the freeze took out (0 if the entry is not frozen).
    Restore,
    Zero,
    Leaf {
        pa: u64,
        pinned: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum MmuOp {
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
enum Seen {
    /// A link to a last-level table (its address is the allocator's choice).
    Link,
    Pte(u64),
}

#[derive(Default)]
struct TableModel {
    blocks: BTreeMap<u64, Block>,
}

impl TableModel {
    /// What the real table must hold: (gpa, level, entry) in GPA order.
    fn expected(&self) -> Vec<(u64, usize, Seen)> {
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

    fn map(
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

    fn lookup(&self, gpa: u64) -> Option<(u64, PageSize, u64)> {
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

    fn clear(&mut self, gpa: u64) -> Option<u64> {
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

    fn is_vacant(&self, gpa: u64, size: PageSize) -> bool {
        match (self.blocks.get(&(gpa & !(HUGE - 1))), size) {
            (None, _) => true,
            (Some(_), PageSize::Size2M) => false,
            (Some(Block::Table(entries)), PageSize::Size4K) => {
                !entries.contains_key(&(gpa & !(PAGE - 1)))
            }
            (Some(_), PageSize::Size4K) => false,
        }
    }

    fn zap(&mut self, gpa: u64, len: u64, scope: Scope) -> Vec<(u64, PageSize, u64)> {
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

    fn freeze(&mut self, gpa: u64, size: PageSize, link: u64) -> Result<u64, MmuError> {
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
    fn taken(&self, gpa: u64, size: PageSize) -> u64 {
        match (self.blocks.get(&(gpa & !(HUGE - 1))), size) {
            (Some(Block::Frozen { taken, .. }), PageSize::Size2M) => *taken,
            (Some(Block::Table(entries)), PageSize::Size4K) => match entries.get(&gpa) {
                Some(Entry4K::Frozen(taken)) => *taken,
                _ => 0,
            },
            _ => 0,
        }
    }

    fn unfreeze(
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
fn link_at(host: &mut FakeHost, root: u64, gpa: u64) -> u64 {
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

/// GPAs spread over different tables at every level, so walks share and split tables.
fn table_gpa() -> impl Strategy<Value = u64> {
    let blocks = select(vec![0u64, 1, 512, 512 * 512]);
    let pages = select(vec![0u64, 1, 511]);
    (blocks, pages).prop_map(|(b, p)| b * HUGE + p * PAGE)
}

/// Mostly aligned, sometimes not.
fn sub_page() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(0u64), 1 => select(vec![0x8u64, 0x800, 0xfff])]
}

fn scope() -> impl Strategy<Value = Scope> {
    select(vec![Scope::Private, Scope::Shared, Scope::Both])
}

fn mmu_op() -> impl Strategy<Value = MmuOp> {
    let pa_4k = prop_oneof![
        8 => select(vec![0x10_0000u64, 0x10_1000, 0x20_0000, 0x1234_5000]),
        1 => Just(0x10_0800u64),
    ];
    let pa_2m = prop_oneof![
        8 => select(vec![0x20_0000u64, 0x40_0000, 0x1_0000_0000]),
        1 => Just(0x21_0000u64),
    ];
    let huge_gpa = || {
        (table_gpa(), prop::bool::weighted(0.8))
            .prop_map(|(gpa, aligned)| if aligned { gpa & !(HUGE - 1) } else { gpa })
    };
    // Zero included: an empty range intersects nothing, not even a leaf containing it.
    let len = select(vec![
        0u64,
        1,
        PAGE,
        2 * PAGE,
        HUGE - PAGE,
        HUGE,
        HUGE + PAGE,
        2 * HUGE,
        1 << 30,
        u64::MAX,
    ]);
    let value = prop_oneof![
        3 => Just(NewValue::Restore),
        1 => Just(NewValue::Zero),
        1 => (select(vec![0x20_0000u64, 0x40_0000]), any::<bool>())
            .prop_map(|(pa, pinned)| NewValue::Leaf { pa, pinned }),
    ];
    prop_oneof![
        6 => (table_gpa(), sub_page(), pa_4k, any::<bool>())
            .prop_map(|(gpa, off, pa, pinned)| MmuOp::Map { gpa: gpa + off, pa, huge: false, pinned }),
        3 => (huge_gpa(), pa_2m, any::<bool>())
            .prop_map(|(gpa, pa, pinned)| MmuOp::Map { gpa, pa, huge: true, pinned }),
        3 => (table_gpa(), select(vec![0u64, 0x123, 0xfff, 0x1_0008]))
            .prop_map(|(gpa, off)| MmuOp::Lookup { gpa: gpa + off }),
        2 => (table_gpa(), sub_page()).prop_map(|(gpa, off)| MmuOp::Clear { gpa: gpa + off }),
        2 => (table_gpa(), any::<bool>()).prop_map(|(gpa, huge)| MmuOp::IsVacant {
            gpa: if huge { gpa & !(HUGE - 1) } else { gpa },
            huge
        }),
        3 => (table_gpa(), sub_page(), len, scope())
            .prop_map(|(gpa, off, len, scope)| MmuOp::Zap { gpa: gpa + off, len, scope }),
        2 => (table_gpa(), any::<bool>()).prop_map(|(gpa, huge)| MmuOp::Freeze {
            gpa: if huge { gpa & !(HUGE - 1) } else { gpa },
            huge
        }),
        2 => (table_gpa(), any::<bool>(), value).prop_map(|(gpa, huge, value)| {
            MmuOp::Unfreeze { gpa: if huge { gpa & !(HUGE - 1) } else { gpa }, huge, value }
        }),
    ]
}

fn run_mmu_op(
    op: MmuOp,
    host: &mut FakeHost,
    table: &mut SecondLevelTable<TestFormat>,
    model: &mut TableModel,
) -> Result<(), TestCaseError> {
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
            prop_assert_eq!(got, model.map(gpa, pa, size, pinned, link));
        }
        MmuOp::Lookup { gpa } => {
            let got = table.lookup(host, gpa).map(|m| (m.pa, m.size, m.pte));
            prop_assert_eq!(got, model.lookup(gpa));
        }
        MmuOp::Clear { gpa } => {
            prop_assert_eq!(table.clear(host, gpa), model.clear(gpa));
        }
        MmuOp::IsVacant { gpa, huge } => {
            let size = size_of(huge);
            prop_assert_eq!(table.is_vacant(host, gpa, size), model.is_vacant(gpa, size));
        }
        MmuOp::Zap { gpa, len, scope } => {
            let mut seen = Vec::new();
            let n = table.zap(host, gpa, len, scope, |g, s, pte| seen.push((g, s, pte)));
            let expected = model.zap(gpa, len, scope);
            prop_assert_eq!(n, expected.len() as u64);
            prop_assert_eq!(seen, expected);
        }
        MmuOp::Freeze { gpa, huge } => {
            let link = link_at(host, root, gpa);
            let size = size_of(huge);
            let got = table.freeze(host, gpa, size);
            prop_assert_eq!(got, model.freeze(gpa, size, link));
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
            prop_assert_eq!(got, model.unfreeze(gpa, size, value, link));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Every result of every call equals the model's, and after every step the table
    /// holds exactly the model's entries (found by a walk of its own).
    #[test]
    fn mmu_second_level_table_matches_a_block_model(
        ops in prop::collection::vec(mmu_op(), 1..60)
    ) {
        let mut host = FakeHost::new(4096);
        let mut table = SecondLevelTable::<TestFormat>::new(&mut host).unwrap();
        let mut model = TableModel::default();
        for (step, op) in ops.into_iter().enumerate() {
            run_mmu_op(op, &mut host, &mut table, &mut model)
                .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
            let real: Vec<(u64, usize, Seen)> = table_entries::<TestFormat>(&mut host, table.root())
                .into_iter()
                .map(|e| {
                    let seen = if e.level == 2 && !e.is_leaf::<TestFormat>() && e.pte != TestFormat::FROZEN {
                        Seen::Link
                    } else {
                        Seen::Pte(e.pte)
                    };
                    (e.gpa, e.level, seen)
                })
                .collect();
            prop_assert_eq!(real, model.expected(), "after step {} {:?}", step, op);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The VM against a page model.
// ---------------------------------------------------------------------------------------

const POOL: u64 = 0x100_0000;
const SHARED_GPA: u64 = 0x4000_0000;
const SHARED_HOST: u64 = 0x800_0000;
const SHARED_SIZE: u64 = 0x20_0000;
const VENDOR_REFUSES: u64 = 0x77;

/// A vendor hook call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Prepare(u64, u64),
    Invalidate(u64, u64),
    Zap(u64, u64),
    Unzap(u64, PageSize),
}

/// The vendor side of the pool, shared by every VM instance bound to it.
#[derive(Default, Debug)]
struct Ledger {
    /// Frames prepared and not invalidated since.
    live: BTreeSet<u64>,
    prepared_total: u64,
    invalidated_total: u64,
    /// This step's hook calls.
    events: Vec<Event>,
    /// Private leaves `(gpa, size, pa)` the nested table held at the start of the step,
    /// less those a vendor zap has since announced cleared: what the CPU may still use.
    shadow: Vec<(u64, u64, u64)>,
    violations: Vec<String>,
    refuse_next_prepare: bool,
}

/// A vendor that checks, when a frame is released (invalidated), that no leaf still
/// maps it, and keeps the pool's accounting.
struct CheckingVendor(Rc<RefCell<Ledger>>);

impl VendorMmu for CheckingVendor {
    fn prepare(&mut self, _gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError> {
        let mut ledger = self.0.borrow_mut();
        if core::mem::take(&mut ledger.refuse_next_prepare) {
            return Err(VendorError::failed(VENDOR_REFUSES, "refused"));
        }
        ledger.events.push(Event::Prepare(pa, frames));
        for frame in (0..frames).map(|i| pa + i * PAGE) {
            if !ledger.live.insert(frame) {
                ledger
                    .violations
                    .push(format!("frame {frame:#x} prepared twice without a release"));
            }
        }
        ledger.prepared_total += frames;
        Ok(())
    }

    fn invalidate(&mut self, pa: u64, frames: u64, _quarantine: &mut dyn FnMut(u64)) {
        let mut ledger = self.0.borrow_mut();
        ledger.events.push(Event::Invalidate(pa, frames));
        for frame in (0..frames).map(|i| pa + i * PAGE) {
            if !ledger.live.remove(&frame) {
                ledger
                    .violations
                    .push(format!("frame {frame:#x} released but not prepared"));
            }
        }
        ledger.invalidated_total += frames;
        let mapped: Vec<String> = ledger
            .shadow
            .iter()
            .filter(|&&(_, len, leaf_pa)| intersects(leaf_pa, len, pa, frames * PAGE))
            .map(|&(gpa, len, leaf_pa)| {
                format!(
                    "PIN-01/POOL-04: frames {pa:#x}+{frames} released while the leaf \
                     {gpa:#x}+{len:#x} -> {leaf_pa:#x} still maps them"
                )
            })
            .collect();
        ledger.violations.extend(mapped);
    }

    fn zap(&mut self, gpa: u64, size: u64) {
        let mut ledger = self.0.borrow_mut();
        ledger.events.push(Event::Zap(gpa, size));
        ledger
            .shadow
            .retain(|&(leaf_gpa, len, _)| !intersects(leaf_gpa, len, gpa, size));
    }

    fn unzap(&mut self, gpa: u64, size: PageSize) {
        self.0.borrow_mut().events.push(Event::Unzap(gpa, size));
    }
}

type CheckedVm = Vm<TestFormat, CheckingVendor>;

#[derive(Clone, Copy, Debug)]
struct Layout {
    private_gpa: u64,
    pages: u64,
    huge: bool,
}

impl Layout {
    fn private_size(&self) -> u64 {
        self.pages * PAGE
    }

    fn slots(&self) -> [SlotSpec; 2] {
        [
            SlotSpec {
                gpa: self.private_gpa,
                size: self.private_size(),
                kind: MemoryKind::Private,
                host_base: POOL,
                huge: self.huge,
            },
            SlotSpec {
                gpa: SHARED_GPA,
                size: SHARED_SIZE,
                kind: MemoryKind::Shared,
                host_base: SHARED_HOST,
                huge: false,
            },
        ]
    }

    fn in_private(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.private_gpa && gpa.saturating_add(len) <= self.private_gpa + self.private_size()
    }

    fn in_shared(&self, gpa: u64, len: u64) -> bool {
        gpa >= SHARED_GPA && gpa.saturating_add(len) <= SHARED_GPA + SHARED_SIZE
    }
}

/// 4, 6 and 8 MiB private slots (the 6 MiB one with a 12 KiB tail too short for a 2 MiB
/// block), at GPA 0 or at 4 MiB (with a hole below), with and without 2 MiB mappings.
fn layout() -> impl Strategy<Value = Layout> {
    (
        select(vec![0u64, 0x40_0000]),
        select(vec![1024u64, 1536 + 3, 2048]),
        any::<bool>(),
    )
        .prop_map(|(private_gpa, pages, huge)| Layout {
            private_gpa,
            pages,
            huge,
        })
}

#[derive(Clone, Copy, Debug)]
enum VmOp {
    /// Touch `gpa` through `Vm::prefault` or through a nested page fault exit;
    /// `refuse` makes the vendor refuse the next prepare.
    Fault {
        gpa: u64,
        vcpu: bool,
        refuse: bool,
    },
    Zap {
        gpa: u64,
        len: u64,
        scope: Scope,
    },
    PunchHole {
        gpa: u64,
        len: u64,
    },
    /// `into_memory` then `with_memory` with a new instance id.
    Restart,
}

fn private_page(layout: Layout) -> impl Strategy<Value = u64> {
    let n = layout.pages;
    prop_oneof![select(vec![0, 1, 511, 512, 513, n - 512, n - 1]), 0..n,]
}

fn vm_op(layout: Layout) -> impl Strategy<Value = VmOp> {
    let base = layout.private_gpa;
    let end = base + layout.private_size();
    let gpa = prop_oneof![
        6 => (private_page(layout), 0..PAGE).prop_map(move |(p, off)| base + p * PAGE + off),
        2 => (0..SHARED_SIZE).prop_map(|off| SHARED_GPA + off),
        1 => select(vec![
            end,
            end + 0x20_0000,
            if base == 0 { SHARED_GPA - PAGE } else { 0x1000 },
            SHARED_GPA + SHARED_SIZE,
            (1 << 48) | base,
        ]),
    ];
    let page_count = prop_oneof![
        4 => 1..8u64,
        2 => 1..600u64,
        1 => Just(512u64),
        1 => Just(layout.pages),
    ];
    let zap_start = prop_oneof![
        4 => private_page(layout).prop_map(move |p| base + p * PAGE),
        1 => (0..512u64).prop_map(|p| SHARED_GPA + p * PAGE),
        1 => Just(0u64),
    ];
    let zap_len = prop_oneof![
        4 => page_count.clone().prop_map(|n| n * PAGE),
        1 => Just(u64::MAX),
    ];
    let punch = prop_oneof![
        8 => (private_page(layout), page_count.clone())
            .prop_map(move |(p, n)| (base + p * PAGE, n * PAGE)),
        1 => (private_page(layout), 1..PAGE, 1..4u64)
            .prop_map(move |(p, off, n)| (base + p * PAGE + off, n * PAGE)),
        1 => (0..512u64, 1..4u64).prop_map(|(p, n)| (SHARED_GPA + p * PAGE, n * PAGE)),
    ];
    prop_oneof![
        8 => (gpa, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(gpa, vcpu, refuse)| VmOp::Fault { gpa, vcpu, refuse }),
        3 => (zap_start, zap_len, scope()).prop_map(|(gpa, len, scope)| VmOp::Zap { gpa, len, scope }),
        2 => punch.prop_map(|(gpa, len)| VmOp::PunchHole { gpa, len }),
        1 => Just(VmOp::Restart),
    ]
}

/// What the model knows of a prepared private page.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    pa: u64,
    /// The last value the "workload" wrote at the start of the page; the rest is zero.
    marker: Option<u64>,
}

struct VmHarness {
    layout: Layout,
    host: FakeHost,
    /// Always `Some` between steps.
    vm: Option<CheckedVm>,
    ledger: Rc<RefCell<Ledger>>,
    instance: u64,
    /// Private pages by slot page index: `Some` while prepared.
    pages: Vec<Option<Prepared>>,
    next_marker: u64,
}

fn spec(slots: &[SlotSpec], instance: u64) -> VmSpec<'_> {
    VmSpec {
        name: "prop",
        slots,
        allowed_calls: !0,
        pinning: Pinning::Demand,
        instance,
    }
}

fn object(vm: &CheckedVm) -> &PrivateMemory {
    vm.slots
        .iter()
        .find_map(|s| match &s.backing {
            Backing::Private(object) => Some(object),
            Backing::Shared { .. } => None,
        })
        .unwrap()
}

impl VmHarness {
    fn new(layout: Layout) -> Self {
        let mut host = FakeHost::new(1 << 16);
        let ledger = Rc::new(RefCell::new(Ledger::default()));
        let vm = Vm::new(
            &spec(&layout.slots(), 1),
            CheckingVendor(ledger.clone()),
            &mut host,
        )
        .unwrap();
        Self {
            layout,
            host,
            vm: Some(vm),
            ledger,
            instance: 1,
            pages: vec![None; layout.pages as usize],
            next_marker: 1,
        }
    }

    fn vm(&mut self) -> &mut CheckedVm {
        self.vm.as_mut().unwrap()
    }

    fn leaves(&mut self) -> Vec<TableEntry> {
        let root = self.vm().npt_root();
        table_leaves::<TestFormat>(&mut self.host, root)
    }

    fn prepared(&self) -> u64 {
        self.pages.iter().filter(|p| p.is_some()).count() as u64
    }

    fn page_index(&self, gpa: u64) -> usize {
        ((gpa - self.layout.private_gpa) / PAGE) as usize
    }

    /// The frame must read as zeros after `marker` at its start (if any).
    fn check_content(&mut self, pa: u64, marker: Option<u64>) -> Result<(), TestCaseError> {
        let frame = self.host.frame(pa);
        let head = u64::from_le_bytes(frame[..8].try_into().unwrap());
        let rest_zero = frame[8..].iter().all(|&b| b == 0);
        prop_assert!(
            head == marker.unwrap_or(0) && rest_zero,
            "frame {:#x}: expected marker {:?} then zeros, found {:#x} (rest zero: {})",
            pa,
            marker,
            head,
            rest_zero
        );
        Ok(())
    }

    fn step(&mut self, op: VmOp) -> Result<(), TestCaseError> {
        let before = self.leaves();
        {
            let mut ledger = self.ledger.borrow_mut();
            ledger.events.clear();
            ledger.shadow = before
                .iter()
                .filter(|l| TestFormat::is_pinned(l.pte))
                .map(|l| (l.gpa, l.size(), TestFormat::address(l.pte)))
                .collect();
        }
        let restart = matches!(op, VmOp::Restart);
        match op {
            VmOp::Fault { gpa, vcpu, refuse } => self.fault(gpa, vcpu, refuse)?,
            VmOp::Zap { gpa, len, scope } => {
                let cleared = self
                    .vm
                    .as_mut()
                    .unwrap()
                    .zap(gpa, len, scope, &mut self.host);
                let (gone, kept): (Vec<TableEntry>, Vec<TableEntry>) =
                    before.iter().copied().partition(|l| {
                        intersects(l.gpa, l.size(), gpa, len) && scope.covers::<TestFormat>(l.pte)
                    });
                prop_assert_eq!(cleared, gone.len() as u64);
                let after = self.leaves();
                prop_assert_eq!(after, kept);
                prop_assert!(self.frame_events().is_empty(), "a zap changed ownership");
            }
            VmOp::PunchHole { gpa, len } => self.punch_hole(gpa, len, &before)?,
            VmOp::Restart => self.restart()?,
        }
        self.ledger.borrow_mut().refuse_next_prepare = false;
        self.check_invariants(&before, restart)
    }

    fn frame_events(&self) -> Vec<Event> {
        self.ledger
            .borrow()
            .events
            .iter()
            .copied()
            .filter(|e| matches!(e, Event::Prepare(..) | Event::Invalidate(..)))
            .collect()
    }

    fn fault(&mut self, gpa: u64, vcpu: bool, refuse: bool) -> Result<(), TestCaseError> {
        self.ledger.borrow_mut().refuse_next_prepare = refuse;
        let page = gpa & !(PAGE - 1);
        let private = gpa >> 48 == 0 && self.layout.in_private(page, PAGE);
        let shared = gpa >> 48 == 0 && self.layout.in_shared(page, PAGE);
        let known = if private {
            self.pages[self.page_index(page)]
        } else {
            None
        };
        let result = if vcpu {
            let mut cpu = ScriptedVcpu::default()
                .step(move |_| Exit::NestedPageFault {
                    gpa,
                    access: Access::Write,
                    present: false,
                })
                .step(|_| Exit::Shutdown);
            match self.vm.as_mut().unwrap().run(&mut cpu, &mut self.host) {
                Stop::TripleFault { rip: 0 } => {
                    // Mapped now: the lookup path hands back the frame without changes.
                    let pa = self.vm.as_mut().unwrap().prefault(gpa, &mut self.host);
                    prop_assert!(pa.is_ok(), "mapped page refused: {:?}", pa);
                    pa
                }
                stop => Err(stop),
            }
        } else {
            self.vm.as_mut().unwrap().prefault(gpa, &mut self.host)
        };
        if !private && !shared {
            prop_assert_eq!(
                result,
                Err(Stop::OutsideMemory {
                    gpa,
                    access: Access::Write,
                    rip: 0
                })
            );
            prop_assert!(self.ledger.borrow().events.is_empty());
            return Ok(());
        }
        if shared {
            prop_assert_eq!(result, Ok(SHARED_HOST + (page - SHARED_GPA)));
            prop_assert!(
                self.frame_events().is_empty(),
                "shared fault changed ownership"
            );
            return self.check_mapped(page, SHARED_HOST + (page - SHARED_GPA), false);
        }
        let index = self.page_index(page);
        let prepares: Vec<(u64, u64)> = self
            .frame_events()
            .into_iter()
            .map(|e| match e {
                Event::Prepare(pa, n) => Ok((pa, n)),
                other => Err(other),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(format!("a fault released a frame: {e:?}")))?;
        if let Some(known) = known {
            // PIN-03: the same frame, neither scrubbed nor prepared again.
            prop_assert_eq!(result, Ok(known.pa), "PIN-03: refault maps another frame");
            prop_assert!(
                prepares.is_empty(),
                "PIN-03: prepared again: {:?}",
                prepares
            );
            self.check_content(known.pa, known.marker)?;
        } else if refuse {
            prop_assert_eq!(
                result,
                Err(Stop::PrivateMemory {
                    gpa,
                    access: Access::Write,
                    error: PrivMemError::Vendor {
                        code: VENDOR_REFUSES
                    }
                })
            );
            prop_assert!(prepares.is_empty());
            return Ok(());
        } else {
            let pa = result.map_err(|stop| TestCaseError::fail(format!("fault: {stop}")))?;
            let pool_end = POOL + self.layout.private_size();
            prop_assert!(
                (POOL..pool_end).contains(&pa),
                "frame {:#x} outside the pool",
                pa
            );
            match prepares[..] {
                [(prepared, 1)] => {
                    prop_assert_eq!(prepared, pa);
                    self.pages[index] = Some(Prepared { pa, marker: None });
                }
                [(block_pa, 512)] => {
                    prop_assert!(self.layout.huge, "2 MiB prepared for a 4 KiB slot");
                    let first = index & !511;
                    prop_assert!(first + 512 <= self.pages.len());
                    prop_assert!(
                        self.pages[first..first + 512].iter().all(Option::is_none),
                        "a 2 MiB prepare over already prepared pages"
                    );
                    prop_assert_eq!(block_pa + (index - first) as u64 * PAGE, pa);
                    for i in 0..512 {
                        self.pages[first + i] = Some(Prepared {
                            pa: block_pa + i as u64 * PAGE,
                            marker: None,
                        });
                    }
                }
                _ => prop_assert!(false, "first touch prepared {:?}", prepares),
            }
            // POOL-06: garbage in the pool, zeros in the workload's first view.
            self.check_content(pa, None)?;
        }
        let pa = self.pages[index].unwrap().pa;
        self.check_mapped(page, pa, true)?;
        let marker = self.next_marker;
        self.next_marker += 1;
        self.host.frame(pa)[..8].copy_from_slice(&marker.to_le_bytes());
        self.pages[index].as_mut().unwrap().marker = Some(marker);
        Ok(())
    }

    /// A leaf maps `page` to `pa` (checked with a walk of the test's own).
    fn check_mapped(&mut self, page: u64, pa: u64, pinned: bool) -> Result<(), TestCaseError> {
        let leaf = self
            .leaves()
            .into_iter()
            .find(|l| (l.gpa..l.gpa + l.size()).contains(&page));
        let found = leaf.map(|l| {
            (
                TestFormat::address(l.pte) + (page - l.gpa),
                TestFormat::is_pinned(l.pte),
            )
        });
        prop_assert_eq!(found, Some((pa, pinned)), "leaf for {:#x}", page);
        Ok(())
    }

    fn punch_hole(
        &mut self,
        gpa: u64,
        len: u64,
        before: &[TableEntry],
    ) -> Result<(), TestCaseError> {
        let result = self
            .vm
            .as_mut()
            .unwrap()
            .punch_hole(gpa, len, &mut self.host);
        let base = self.layout.private_gpa;
        let expected = if self.layout.in_private(gpa, len) {
            let offset = gpa - base;
            if !offset.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
                Err(PrivMemError::OutOfRange { offset })
            } else {
                Ok(())
            }
        } else if self.layout.in_shared(gpa, len) {
            Err(PrivMemError::NotPrivate {
                offset: gpa - SHARED_GPA,
            })
        } else {
            Err(PrivMemError::OutOfRange { offset: gpa })
        };
        if let Err(error) = expected {
            prop_assert_eq!(result, Err(error));
            prop_assert!(self.ledger.borrow().events.is_empty());
            prop_assert_eq!(&self.leaves()[..], before);
            return Ok(());
        }
        let range = self.page_index(gpa)..self.page_index(gpa + len);
        let released: BTreeSet<u64> = self.pages[range.clone()]
            .iter()
            .flatten()
            .map(|p| p.pa)
            .collect();
        prop_assert_eq!(result, Ok(released.len() as u64));
        let mut invalidated = BTreeSet::new();
        for event in self.frame_events() {
            match event {
                Event::Invalidate(pa, n) => invalidated.extend((0..n).map(|i| pa + i * PAGE)),
                other => prop_assert!(false, "punch-hole prepared: {:?}", other),
            }
        }
        prop_assert_eq!(invalidated, released);
        // Private leaves touching the range went first; everything else stays.
        let kept: Vec<TableEntry> = before
            .iter()
            .copied()
            .filter(|l| !(TestFormat::is_pinned(l.pte) && intersects(l.gpa, l.size(), gpa, len)))
            .collect();
        prop_assert_eq!(self.leaves(), kept);
        self.pages[range].fill(None);
        Ok(())
    }

    /// PIN-02: a new instance over the same objects keeps every prepared frame.
    fn restart(&mut self) -> Result<(), TestCaseError> {
        let vm = self.vm.take().unwrap();
        let old_root = vm.npt_root();
        let (memory, teardown) = vm.into_memory(&mut self.host);
        prop_assert_eq!(teardown, Ok(()));
        // POOL-07: releasing the instance zaps everything and frees nothing.
        prop_assert!(table_leaves::<TestFormat>(&mut self.host, old_root).is_empty());
        prop_assert!(
            self.frame_events().is_empty(),
            "a restart changed ownership"
        );
        prop_assert_eq!(memory.len(), 1);
        prop_assert_eq!(memory[0].bound_to(), None);
        prop_assert_eq!(memory[0].prepared_frames(), self.prepared());
        self.instance += 1;
        let vm = Vm::with_memory(
            &spec(&self.layout.slots(), self.instance),
            memory,
            CheckingVendor(self.ledger.clone()),
            &mut self.host,
        );
        self.vm = Some(vm.unwrap());
        prop_assert!(self.leaves().is_empty(), "a fresh table maps nothing");
        Ok(())
    }

    fn check_invariants(
        &mut self,
        before: &[TableEntry],
        restart: bool,
    ) -> Result<(), TestCaseError> {
        let ledger = self.ledger.borrow();
        prop_assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
        // The CPU is told about every cleared leaf (TLB flush) before the step ends.
        let zaps: Vec<(u64, u64)> = ledger
            .events
            .iter()
            .filter_map(|e| match *e {
                Event::Zap(gpa, len) => Some((gpa, len)),
                _ => None,
            })
            .collect();
        drop(ledger);
        let after = self.leaves();
        for gone in before.iter().filter(|l| !after.contains(l)) {
            if restart && !TestFormat::is_pinned(gone.pte) {
                continue; // The whole table goes with the instance.
            }
            prop_assert!(
                zaps.iter()
                    .any(|&(gpa, len)| intersects(gone.gpa, gone.size(), gpa, len)),
                "leaf {:?} cleared without telling the vendor",
                gone
            );
        }
        // PIN-01: every leaf maps what the model says; private ones only prepared frames.
        for l in &after {
            let pa = TestFormat::address(l.pte);
            if TestFormat::is_pinned(l.pte) {
                prop_assert!(
                    self.layout.in_private(l.gpa, l.size()),
                    "pinned leaf {:?}",
                    l
                );
                let first = self.page_index(l.gpa);
                for i in 0..(l.size() / PAGE) as usize {
                    let page = self.pages[first + i];
                    prop_assert_eq!(
                        page.map(|p| p.pa),
                        Some(pa + i as u64 * PAGE),
                        "leaf {:?} maps a frame that is not the page's prepared frame",
                        l
                    );
                }
            } else {
                prop_assert!(
                    self.layout.in_shared(l.gpa, l.size()),
                    "shared leaf {:?}",
                    l
                );
                prop_assert_eq!(pa, SHARED_HOST + (l.gpa - SHARED_GPA));
            }
        }
        // Accounting: the object, the vendor and the model agree.
        let prepared = self.prepared();
        let vm = self.vm.as_ref().unwrap();
        prop_assert_eq!(vm.prepared_frames(), prepared);
        let object = object(vm);
        prop_assert_eq!(object.prepared_frames(), prepared);
        for (i, page) in self.pages.iter().enumerate() {
            let state = object.state(i as u64 * PAGE);
            let expected = if page.is_some() {
                PageState::Prepared
            } else {
                PageState::Free
            };
            prop_assert_eq!(state, expected, "page {}", i);
        }
        let ledger = self.ledger.borrow();
        prop_assert_eq!(ledger.prepared_total - ledger.invalidated_total, prepared);
        let model: BTreeSet<u64> = self.pages.iter().flatten().map(|p| p.pa).collect();
        prop_assert_eq!(&ledger.live, &model);
        drop(ledger);
        // What the workload wrote survives zaps, refaults and restarts.
        let marked: Vec<Prepared> = self.pages.iter().flatten().copied().collect();
        for page in marked.into_iter().filter(|p| p.marker.is_some()) {
            let head = u64::from_le_bytes(self.host.frame(page.pa)[..8].try_into().unwrap());
            prop_assert_eq!(
                Some(head),
                page.marker,
                "frame {:#x} lost its data",
                page.pa
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// PIN-01/POOL-04 (no release while mapped, checked at the release), PIN-03 (same
    /// frame on refault), accounting, POOL-06 (zeros on first touch, data kept until a
    /// punch-hole), PIN-02 (restarts keep prepared frames), POOL-07 (release zaps all).
    #[test]
    fn pin_01_pool_04_pool_06_pin_02_pin_03_vm_memory_matches_a_page_model(
        (layout, ops) in layout().prop_flat_map(|l| (Just(l), prop::collection::vec(vm_op(l), 1..48)))
    ) {
        let mut harness = VmHarness::new(layout);
        for (step, op) in ops.into_iter().enumerate() {
            harness
                .step(op)
                .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        }
    }
}
