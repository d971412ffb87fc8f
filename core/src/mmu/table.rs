//! A 4-level radix table of `u64` entries: map, look up and clear leaves.

use super::format::{PageSize, Perms, PteFormat};
use super::frozen::{self, Refusal};
use super::vendor::VendorError;
use core::cell::Cell;
use core::marker::PhantomData;

pub const ENTRIES: usize = 512;
const LEVELS: usize = 4;

/// Where table pages come from and how the engine reaches them.
pub trait TableMemory {
    /// A zeroed 4 KiB page for a table, or `None` when the table budget is spent.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Give back a page from `alloc_table` that no table links to any more.
    fn free_table(&mut self, pa: u64);
    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MmuError {
    /// No page is left for a new table.
    OutOfTables,
    /// Something is already mapped at the address; carries the entry found.
    AlreadyMapped { pte: u64 },
    /// The address or frame is not aligned to the page size.
    Misaligned,
    /// The entry is locked ([`PteFormat::FROZEN`]) while its external copy changes.
    Frozen,
    /// An unfreeze found an entry that was not frozen.
    NotFrozen { pte: u64 },
    /// The external table refused the change; the mirror entry kept its old value.
    External(VendorError),
}

/// Keeps an external copy of a mirror table in step (the TDX S-EPT, changed only through
/// the TDX module). Each call is made while the mirror entry it concerns holds
/// [`PteFormat::FROZEN`], so no other walker acts on a half-made change; on an error the
/// entry gets its old value back.
pub trait ExternalSync<M> {
    /// Whether there is an external copy at all: tables without one skip the freezing.
    const MIRRORED: bool = true;
    /// A new table page (`level` 1 = last level) now covers `gpa`.
    fn link(&mut self, mem: &mut M, gpa: u64, level: usize, table: u64) -> Result<(), MmuError>;
    /// A leaf of `size` at `gpa` now maps `pa`.
    fn set_leaf(&mut self, mem: &mut M, gpa: u64, size: PageSize, pa: u64) -> Result<(), MmuError>;
}

/// A table without an external copy.
pub struct NoExternal;

impl<M> ExternalSync<M> for NoExternal {
    const MIRRORED: bool = false;
    fn link(&mut self, _: &mut M, _: u64, _: usize, _: u64) -> Result<(), MmuError> {
        Ok(())
    }
    fn set_leaf(&mut self, _: &mut M, _: u64, _: PageSize, _: u64) -> Result<(), MmuError> {
        Ok(())
    }
}

/// A present leaf found by [`SecondLevelTable::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Host physical address backing the looked-up GPA (not the page base).
    pub pa: u64,
    pub size: PageSize,
    pub pte: u64,
}

pub struct SecondLevelTable<F: PteFormat> {
    root: u64,
    /// Table pages held, the root included.
    pages: u64,
    /// The last-level table that maps the last 2 MiB region a 4 KiB leaf went into:
    /// faults cluster, and a table, once linked, stays linked until `destroy` (zaps
    /// clear leaves only; 2 MiB leaves are never installed over a table). Dropped when
    /// an entry is frozen, the one change that can unlink a table.
    last_leaf_table: Option<(u64, u64)>,
    format: PhantomData<F>,
}

/// What a zap walks over.
struct Walk {
    range: core::ops::Range<u64>,
    scope: super::Scope,
    /// Hold each leaf FROZEN while it leaves an external copy (mirror tables only).
    freeze: bool,
}

/// The smallest range covering every leaf added.
#[derive(Default)]
pub struct Span(Option<(u64, u64)>);

impl Span {
    pub fn add(&mut self, leaf: u64, size: PageSize) {
        let end = leaf + size.bytes();
        self.0 = Some(
            self.0
                .map_or((leaf, end), |(s, e)| (s.min(leaf), e.max(end))),
        );
    }

    pub fn get(&self) -> Option<(u64, u64)> {
        self.0
    }
}

const fn index(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Entry `slot` of `table`, as the FROZEN protocol reaches it.
#[inline]
fn entry_cell(mem: &mut impl TableMemory, table: u64, slot: usize) -> &Cell<u64> {
    Cell::from_mut(&mut mem.table(table)[slot])
}

impl<F: PteFormat> SecondLevelTable<F> {
    pub fn new(mem: &mut impl TableMemory) -> Result<Self, MmuError> {
        let root = mem.alloc_table().ok_or(MmuError::OutOfTables)?;
        Ok(Self {
            root,
            pages: 1,
            last_leaf_table: None,
            format: PhantomData,
        })
    }

    /// Free every table page, the root included. The caller has already zapped every
    /// leaf (their frames are not tables, and stay with their owners).
    pub fn destroy(self, mem: &mut impl TableMemory) {
        Self::free_tables(mem, self.root, LEVELS);
    }

    fn free_tables(mem: &mut impl TableMemory, table: u64, level: usize) {
        if level > 1 {
            for slot in 0..ENTRIES {
                let pte = mem.table(table)[slot];
                if F::is_present(pte) && !F::is_huge(pte) {
                    Self::free_tables(mem, F::address(pte), level - 1);
                }
            }
        }
        mem.table(table).fill(0);
        mem.free_table(table);
    }

    /// Table pages this table holds, the root included.
    pub fn table_pages(&self) -> u64 {
        self.pages
    }

    /// Physical address of the top-level table (what the CPU is pointed at).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Map `gpa` to `pa` with a leaf of `size`, creating intermediate tables. `pinned`
    /// marks the leaf as mapping a prepared private frame.
    #[inline]
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        pa: u64,
        size: PageSize,
        perms: Perms,
        pinned: bool,
    ) -> Result<(), MmuError> {
        self.map_synced(mem, gpa, pa, size, perms, pinned, &mut NoExternal)
    }

    /// [`SecondLevelTable::map`] for a mirror table: every table linked and the leaf
    /// itself are pushed to `external` first, each while its entry is frozen.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn map_synced<M: TableMemory, E: ExternalSync<M>>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        pa: u64,
        size: PageSize,
        perms: Perms,
        pinned: bool,
        external: &mut E,
    ) -> Result<(), MmuError> {
        if pa & (size.bytes() - 1) != 0 {
            return Err(MmuError::Misaligned);
        }
        let (table, slot) = self.entry_slot(mem, gpa, size, external)?;
        let leaf = || F::leaf(pa, size, perms) | if pinned { F::PINNED } else { 0 };
        if !E::MIRRORED {
            let entry = entry_cell(mem, table, slot);
            frozen::check_vacant::<F>(entry.get())?;
            entry.set(leaf());
            return Ok(());
        }
        frozen::install::<F, _, _>(
            mem,
            |mem| entry_cell(mem, table, slot),
            leaf(),
            |mem| external.set_leaf(mem, gpa, size, pa),
        )
    }

    /// Lock the entry for a `size` leaf at `gpa` by writing [`PteFormat::FROZEN`] into
    /// it; returns the value it held. A frozen entry is refused with
    /// [`MmuError::Frozen`]: the caller retries.
    ///
    /// Nothing but the TDX external-table path (issue 7) may freeze entries, and only
    /// under the lock that also serialises zaps: `zap` skips frozen entries, so a frame
    /// must not be released while an entry mapping it is frozen.
    pub fn freeze(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        size: PageSize,
    ) -> Result<u64, MmuError> {
        let (table, slot) = self.entry_slot(mem, gpa, size, &mut NoExternal)?;
        // A frozen 2 MiB-level entry may be one that linked a table.
        self.last_leaf_table = None;
        let entry = entry_cell(mem, table, slot);
        let seen = entry.get();
        frozen::freeze::<F>(entry, seen)?;
        Ok(seen)
    }

    /// Unlock an entry frozen by [`SecondLevelTable::freeze`], storing `value` (the new
    /// entry, or the old one when the change failed).
    pub fn unfreeze(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        size: PageSize,
        value: u64,
    ) -> Result<(), MmuError> {
        let (table, slot) = self.entry_slot(mem, gpa, size, &mut NoExternal)?;
        frozen::unfreeze::<F>(entry_cell(mem, table, slot), value)
    }

    /// The table and index of the entry for a `size` leaf at `gpa`, creating the tables
    /// above it (each linked to `external` while its parent entry is frozen).
    #[inline]
    fn entry_slot<M: TableMemory, E: ExternalSync<M>>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        size: PageSize,
        external: &mut E,
    ) -> Result<(u64, usize), MmuError> {
        if gpa & (size.bytes() - 1) != 0 {
            return Err(MmuError::Misaligned);
        }
        let region = gpa >> PageSize::Size2M.bytes().trailing_zeros();
        if size == PageSize::Size4K
            && let Some((cached, table)) = self.last_leaf_table
            && cached == region
        {
            return Ok((table, index(gpa, 1)));
        }
        let mut table = self.root;
        for level in (size.level() + 1..=LEVELS).rev() {
            let slot = index(gpa, level);
            let pte = mem.table(table)[slot];
            table = if pte == F::FROZEN {
                return Err(MmuError::Frozen);
            } else if !F::is_present(pte) {
                let next = mem.alloc_table().ok_or(MmuError::OutOfTables)?;
                if E::MIRRORED {
                    let span = 1u64 << (12 + 9 * (level - 1));
                    let linked = frozen::change_frozen::<F, _, _, _>(
                        mem,
                        move |mem| entry_cell(mem, table, slot),
                        pte,
                        |mem| {
                            let covered = gpa & !(span - 1);
                            external.link(mem, covered, level - 1, next)?;
                            Ok(F::table(next))
                        },
                    );
                    if let Err(refusal) = linked {
                        mem.free_table(next);
                        return Err(refusal.into());
                    }
                } else {
                    mem.table(table)[slot] = F::table(next);
                }
                self.pages += 1;
                next
            } else if F::is_huge(pte) {
                return Err(MmuError::AlreadyMapped { pte });
            } else {
                F::address(pte)
            };
        }
        if size == PageSize::Size4K {
            self.last_leaf_table = Some((region, table));
        }
        Ok((table, index(gpa, size.level())))
    }

    /// Clear every leaf in `scope` that intersects `[gpa, gpa + len)`, calling
    /// `cleared(leaf_gpa, size, old_entry)` for each. A 2 MiB leaf that only partly
    /// intersects is cleared whole: entries are caches, and a refault rebuilds them.
    /// Tables stay: they are freed only at teardown. Returns the number cleared.
    pub fn zap(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        len: u64,
        scope: super::Scope,
        mut cleared: impl FnMut(u64, PageSize, u64),
    ) -> u64 {
        let walk = |_: &mut _, leaf, size, pte| {
            cleared(leaf, size, pte);
            Ok::<(), core::convert::Infallible>(())
        };
        let (count, done) = self.zap_walk(mem, gpa, len, scope, false, walk);
        match done {
            Ok(()) => count,
        }
    }

    /// [`SecondLevelTable::zap`] for a mirror table: each leaf is frozen while
    /// `remove(mem, leaf_gpa, size, old_entry)` takes it out of the external copy, then
    /// cleared. The first refusal puts that leaf back and ends the zap. Returns the
    /// number cleared and whether every leaf went.
    pub fn zap_synced<M: TableMemory, E>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        len: u64,
        scope: super::Scope,
        remove: impl FnMut(&mut M, u64, PageSize, u64) -> Result<(), E>,
    ) -> (u64, Result<(), E>) {
        self.zap_walk(mem, gpa, len, scope, true, remove)
    }

    fn zap_walk<M: TableMemory, E>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        len: u64,
        scope: super::Scope,
        freeze: bool,
        mut remove: impl FnMut(&mut M, u64, PageSize, u64) -> Result<(), E>,
    ) -> (u64, Result<(), E>) {
        let mut count = 0;
        // An empty range intersects nothing, not even the leaf it points into.
        if len == 0 {
            return (0, Ok(()));
        }
        let end = gpa.saturating_add(len);
        let walk = Walk {
            range: gpa..end,
            scope,
            freeze,
        };
        let done = self.zap_table(mem, self.root, LEVELS, 0, &walk, &mut count, &mut remove);
        (count, done)
    }

    /// [`SecondLevelTable::zap`], returning how many leaves were cleared and the span
    /// `[start, end)` they covered (whole leaves: wider than the request when a 2 MiB
    /// leaf was only partly in it), which is what the TLB must forget.
    pub fn zap_span(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        len: u64,
        scope: super::Scope,
    ) -> (u64, Option<(u64, u64)>) {
        let mut span = Span::default();
        let count = self.zap(mem, gpa, len, scope, |leaf, size, _| span.add(leaf, size));
        (count, span.get())
    }

    #[allow(clippy::too_many_arguments)]
    fn zap_table<M: TableMemory, E>(
        &mut self,
        mem: &mut M,
        table: u64,
        level: usize,
        table_base: u64,
        walk: &Walk,
        count: &mut u64,
        remove: &mut impl FnMut(&mut M, u64, PageSize, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let span = 1u64 << (12 + 9 * (level - 1));
        for slot in 0..ENTRIES {
            let base = table_base + slot as u64 * span;
            if base >= walk.range.end || base + span <= walk.range.start {
                continue;
            }
            let pte = mem.table(table)[slot];
            if !F::is_present(pte) {
                continue;
            }
            let leaf = level == 1 || F::is_huge(pte);
            if !leaf {
                self.zap_table(mem, F::address(pte), level - 1, base, walk, count, remove)?;
            } else if walk.scope.covers::<F>(pte) {
                let size = if level == 1 {
                    PageSize::Size4K
                } else {
                    PageSize::Size2M
                };
                let taken = frozen::take_leaf::<F, _, _, _>(
                    mem,
                    move |mem| entry_cell(mem, table, slot),
                    pte,
                    walk.freeze,
                    |mem| remove(mem, base, size, pte),
                );
                match taken {
                    Ok(()) => *count += 1,
                    Err(Refusal::Refused(e)) => return Err(e),
                    // Frozen or changed since it was read: another walker's, which only a
                    // concurrent table has. Skipped, as a zap skips every frozen entry.
                    Err(Refusal::Contended) => {}
                    Err(Refusal::LockBroken { .. }) => {
                        debug_assert!(false, "`remove` rewrote the entry it was removing");
                    }
                }
            }
        }
        Ok(())
    }

    /// Every present leaf, as (gpa, size, entry), in address order.
    pub fn leaves(&self, mem: &mut impl TableMemory) -> alloc::vec::Vec<(u64, PageSize, u64)> {
        let mut found = alloc::vec::Vec::new();
        Self::collect_leaves(mem, self.root, LEVELS, 0, &mut found);
        found
    }

    /// Every linked table below the root, as (gpa it covers, level; 1 = last level).
    pub fn links(&self, mem: &mut impl TableMemory) -> alloc::vec::Vec<(u64, usize)> {
        let mut found = alloc::vec::Vec::new();
        Self::collect_links(mem, self.root, LEVELS, 0, &mut found);
        found
    }

    /// Entries holding [`PteFormat::FROZEN`]: none, between operations.
    pub fn frozen_entries(&self, mem: &mut impl TableMemory) -> usize {
        Self::count_frozen(mem, self.root, LEVELS)
    }

    fn count_frozen(mem: &mut impl TableMemory, table: u64, level: usize) -> usize {
        let mut count = 0;
        for slot in 0..ENTRIES {
            let pte = mem.table(table)[slot];
            if pte == F::FROZEN {
                count += 1;
            } else if level > 1 && F::is_present(pte) && !F::is_huge(pte) {
                count += Self::count_frozen(mem, F::address(pte), level - 1);
            }
        }
        count
    }

    fn collect_links(
        mem: &mut impl TableMemory,
        table: u64,
        level: usize,
        table_base: u64,
        found: &mut alloc::vec::Vec<(u64, usize)>,
    ) {
        let span = 1u64 << (12 + 9 * (level - 1));
        for slot in 0..ENTRIES {
            let pte = mem.table(table)[slot];
            if level > 1 && F::is_present(pte) && !F::is_huge(pte) {
                let base = table_base + slot as u64 * span;
                found.push((base, level - 1));
                Self::collect_links(mem, F::address(pte), level - 1, base, found);
            }
        }
    }

    fn collect_leaves(
        mem: &mut impl TableMemory,
        table: u64,
        level: usize,
        table_base: u64,
        found: &mut alloc::vec::Vec<(u64, PageSize, u64)>,
    ) {
        let span = 1u64 << (12 + 9 * (level - 1));
        for slot in 0..ENTRIES {
            let pte = mem.table(table)[slot];
            if !F::is_present(pte) {
                continue;
            }
            let base = table_base + slot as u64 * span;
            if level == 1 {
                found.push((base, PageSize::Size4K, pte));
            } else if F::is_huge(pte) {
                found.push((base, PageSize::Size2M, pte));
            } else {
                Self::collect_leaves(mem, F::address(pte), level - 1, base, found);
            }
        }
    }

    /// Whether a `size` leaf at `gpa` could be installed: nothing maps any part of it and
    /// no table hangs where it would go (tables stay until teardown, so a 2 MiB range
    /// once mapped 4 KiB at a time stays that way).
    pub fn is_vacant(&self, mem: &mut impl TableMemory, gpa: u64, size: PageSize) -> bool {
        let mut table = self.root;
        for level in (size.level()..=LEVELS).rev() {
            let pte = mem.table(table)[index(gpa, level)];
            if level == size.level() {
                return pte == 0;
            }
            if !F::is_present(pte) {
                return pte == 0;
            }
            if F::is_huge(pte) {
                return false;
            }
            table = F::address(pte);
        }
        false
    }

    /// The leaf translating `gpa`, if any.
    pub fn lookup(&self, mem: &mut impl TableMemory, gpa: u64) -> Option<Mapping> {
        let (table, level) = self.walk_to_leaf(mem, gpa)?;
        let pte = mem.table(table)[index(gpa, level)];
        let size = if level == 1 {
            PageSize::Size4K
        } else {
            PageSize::Size2M
        };
        let offset = gpa & (size.bytes() - 1);
        Some(Mapping {
            pa: F::address(pte) + offset,
            size,
            pte,
        })
    }

    /// Clear the leaf translating `gpa` and return the entry it held.
    pub fn clear(&mut self, mem: &mut impl TableMemory, gpa: u64) -> Option<u64> {
        let (table, level) = self.walk_to_leaf(mem, gpa)?;
        let entry = &mut mem.table(table)[index(gpa, level)];
        Some(core::mem::replace(entry, 0))
    }

    /// The table and level holding the present leaf for `gpa`.
    fn walk_to_leaf(&self, mem: &mut impl TableMemory, gpa: u64) -> Option<(u64, usize)> {
        let mut table = self.root;
        for level in (1..=LEVELS).rev() {
            let pte = mem.table(table)[index(gpa, level)];
            if !F::is_present(pte) {
                return None;
            }
            if level == 1 || (level == 2 && F::is_huge(pte)) {
                return Some((table, level));
            }
            if F::is_huge(pte) {
                // 1 GiB leaves are never created by this engine.
                return None;
            }
            table = F::address(pte);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmu::Scope;
    use crate::testing::{FakeHost, TestFormat};

    fn table(host: &mut FakeHost) -> SecondLevelTable<TestFormat> {
        SecondLevelTable::new(host).unwrap()
    }

    #[test]
    fn maps_and_finds_4k_leaves_with_offsets() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(
            &mut host,
            0x4000_3000,
            0x10_5000,
            PageSize::Size4K,
            Perms::ALL,
            false,
        )
        .unwrap();
        let m = t.lookup(&mut host, 0x4000_3abc).unwrap();
        assert_eq!((m.pa, m.size), (0x10_5abc, PageSize::Size4K));
        assert!(t.lookup(&mut host, 0x4000_4000).is_none());
        // Root + PDPT + PD + PT.
        assert_eq!(host.tables_allocated(), 4);
    }

    #[test]
    fn maps_2m_leaves_and_rejects_misaligned_ones() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        assert_eq!(
            t.map(
                &mut host,
                0x20_1000,
                0x40_0000,
                PageSize::Size2M,
                Perms::ALL,
                false
            ),
            Err(MmuError::Misaligned)
        );
        t.map(
            &mut host,
            0x20_0000,
            0x40_0000,
            PageSize::Size2M,
            Perms::ALL,
            false,
        )
        .unwrap();
        let m = t.lookup(&mut host, 0x3f_ffff).unwrap();
        assert_eq!((m.pa, m.size), (0x5f_ffff, PageSize::Size2M));
        // A 4 KiB map inside the huge page must not silently split it.
        assert!(matches!(
            t.map(
                &mut host,
                0x20_1000,
                0x1000,
                PageSize::Size4K,
                Perms::ALL,
                false
            ),
            Err(MmuError::AlreadyMapped { .. })
        ));
    }

    #[test]
    fn clear_returns_the_old_entry_and_unmaps() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(
            &mut host,
            0x7000,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            false,
        )
        .unwrap();
        let old = t.clear(&mut host, 0x7000).unwrap();
        assert_eq!(TestFormat::address(old), 0x9000);
        assert!(t.lookup(&mut host, 0x7000).is_none());
        assert_eq!(t.clear(&mut host, 0x7000), None, "already clear");
        // The slot can be reused.
        t.map(
            &mut host,
            0x7000,
            0xa000,
            PageSize::Size4K,
            Perms::ALL,
            false,
        )
        .unwrap();
    }

    #[test]
    fn double_map_is_refused_with_the_existing_entry() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(
            &mut host,
            0x7000,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            false,
        )
        .unwrap();
        let err = t.map(
            &mut host,
            0x7000,
            0xa000,
            PageSize::Size4K,
            Perms::ALL,
            false,
        );
        assert!(
            matches!(err, Err(MmuError::AlreadyMapped { pte }) if TestFormat::address(pte) == 0x9000)
        );
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mut host = FakeHost::new(2);
        let mut t = table(&mut host);
        assert_eq!(
            t.map(&mut host, 0, 0x1000, PageSize::Size4K, Perms::ALL, false),
            Err(MmuError::OutOfTables)
        );
    }

    #[test]
    fn zap_clears_only_its_scope_and_reports_each_leaf() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(
            &mut host,
            0x1000,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            true,
        )
        .unwrap();
        t.map(
            &mut host,
            0x2000,
            0xa000,
            PageSize::Size4K,
            Perms::ALL,
            false,
        )
        .unwrap();
        t.map(
            &mut host,
            0x20_0000,
            0x40_0000,
            PageSize::Size2M,
            Perms::ALL,
            true,
        )
        .unwrap();
        let mut seen = std::vec::Vec::new();
        let n = t.zap(&mut host, 0, 0x20_1000, Scope::Private, |gpa, size, pte| {
            seen.push((gpa, size, TestFormat::address(pte)))
        });
        assert_eq!(n, 2);
        assert_eq!(
            seen,
            [
                (0x1000, PageSize::Size4K, 0x9000),
                (0x20_0000, PageSize::Size2M, 0x40_0000)
            ]
        );
        assert!(t.lookup(&mut host, 0x2000).is_some(), "shared leaf kept");
        assert_eq!(
            t.zap(&mut host, 0, u64::MAX, Scope::Shared, |_, _, _| {}),
            1
        );
        assert!(t.lookup(&mut host, 0x2000).is_none());
        assert_eq!(t.zap(&mut host, 0, u64::MAX, Scope::Both, |_, _, _| {}), 0);
    }

    #[test]
    fn a_frozen_entry_locks_out_maps_and_freezes_until_unfrozen() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(
            &mut host,
            0x5000,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            true,
        )
        .unwrap();
        let old = t.freeze(&mut host, 0x5000, PageSize::Size4K).unwrap();
        assert!(TestFormat::is_pinned(old) && TestFormat::address(old) == 0x9000);
        assert!(
            !TestFormat::is_present(TestFormat::FROZEN),
            "frozen is not a mapping"
        );
        assert!(t.lookup(&mut host, 0x5000).is_none());
        assert_eq!(
            t.freeze(&mut host, 0x5000, PageSize::Size4K),
            Err(MmuError::Frozen)
        );
        assert_eq!(
            t.map(
                &mut host,
                0x5000,
                0xa000,
                PageSize::Size4K,
                Perms::ALL,
                false
            ),
            Err(MmuError::Frozen)
        );
        // The change failed: restore the old value.
        t.unfreeze(&mut host, 0x5000, PageSize::Size4K, old)
            .unwrap();
        assert_eq!(t.lookup(&mut host, 0x5000).unwrap().pa, 0x9000);
        assert_eq!(
            t.unfreeze(&mut host, 0x5000, PageSize::Size4K, 0),
            Err(MmuError::NotFrozen { pte: old })
        );
    }

    #[test]
    fn a_frozen_table_entry_is_seen_even_after_the_last_leaf_table_was_remembered() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(
            &mut host,
            0x20_0000,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            true,
        )
        .unwrap();
        // Freeze the 2 MiB-level entry that links the remembered last-level table.
        let old = t.freeze(&mut host, 0x20_0000, PageSize::Size2M).unwrap();
        assert!(
            TestFormat::is_present(old) && !TestFormat::is_huge(old),
            "a table link"
        );
        assert_eq!(
            t.map(
                &mut host,
                0x20_1000,
                0xa000,
                PageSize::Size4K,
                Perms::ALL,
                true
            ),
            Err(MmuError::Frozen)
        );
        t.unfreeze(&mut host, 0x20_0000, PageSize::Size2M, old)
            .unwrap();
        t.map(
            &mut host,
            0x20_1000,
            0xa000,
            PageSize::Size4K,
            Perms::ALL,
            true,
        )
        .unwrap();
        assert_eq!(t.lookup(&mut host, 0x20_1000).unwrap().pa, 0xa000);
        assert_eq!(t.lookup(&mut host, 0x20_0000).unwrap().pa, 0x9000);
    }

    /// The raw entry at `level` (1 = last) for `gpa`, walking without creating tables.
    fn raw_entry(host: &mut FakeHost, root: u64, gpa: u64, level: usize) -> Option<u64> {
        let mut table = root;
        for l in (level + 1..=LEVELS).rev() {
            let pte = host.table(table)[index(gpa, l)];
            if !TestFormat::is_present(pte) {
                return None;
            }
            table = TestFormat::address(pte);
        }
        Some(host.table(table)[index(gpa, level)])
    }

    /// An external table that checks the mirror entry is frozen during each change,
    /// and refuses the calls it is told to.
    struct Checking {
        root: u64,
        refuse_leaf: bool,
        links: std::vec::Vec<(u64, usize)>,
        leaves: std::vec::Vec<u64>,
    }

    impl ExternalSync<FakeHost> for Checking {
        fn link(
            &mut self,
            mem: &mut FakeHost,
            gpa: u64,
            level: usize,
            _: u64,
        ) -> Result<(), MmuError> {
            assert_eq!(
                raw_entry(mem, self.root, gpa, level + 1),
                Some(TestFormat::FROZEN)
            );
            self.links.push((gpa, level));
            Ok(())
        }
        fn set_leaf(
            &mut self,
            mem: &mut FakeHost,
            gpa: u64,
            size: PageSize,
            _: u64,
        ) -> Result<(), MmuError> {
            assert_eq!(
                raw_entry(mem, self.root, gpa, size.level()),
                Some(TestFormat::FROZEN)
            );
            if self.refuse_leaf {
                return Err(MmuError::External(VendorError::busy(1, "busy")));
            }
            self.leaves.push(gpa);
            Ok(())
        }
    }

    #[test]
    fn tdx_03_mirror_entries_are_frozen_while_their_external_copy_changes() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        let mut external = Checking {
            root: t.root(),
            refuse_leaf: true,
            links: std::vec::Vec::new(),
            leaves: std::vec::Vec::new(),
        };
        let gpa = 0x4020_3000;
        let refused = t.map_synced(
            &mut host,
            gpa,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            true,
            &mut external,
        );
        assert!(matches!(refused, Err(MmuError::External(e)) if e.busy));
        // Tables went to the external side top-down before the leaf; the refused leaf
        // left its entry as it was.
        assert_eq!(external.links, [(0, 3), (0x4000_0000, 2), (0x4020_0000, 1)]);
        assert_eq!(raw_entry(&mut host, t.root(), gpa, 1), Some(0));
        external.refuse_leaf = false;
        t.map_synced(
            &mut host,
            gpa,
            0x9000,
            PageSize::Size4K,
            Perms::ALL,
            true,
            &mut external,
        )
        .unwrap();
        assert_eq!(external.links.len(), 3, "tables linked once");
        assert_eq!(external.leaves, [gpa]);
        assert_eq!(t.lookup(&mut host, gpa).unwrap().pa, 0x9000);
    }

    #[test]
    fn tdx_03_a_refused_external_removal_puts_the_leaf_back_and_ends_the_zap() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        for (i, gpa) in [0x1000u64, 0x2000, 0x3000].into_iter().enumerate() {
            t.map(
                &mut host,
                gpa,
                0x10_0000 + i as u64 * 0x1000,
                PageSize::Size4K,
                Perms::ALL,
                true,
            )
            .unwrap();
        }
        let root = t.root();
        let (count, done) = t.zap_synced(
            &mut host,
            0,
            u64::MAX,
            Scope::Private,
            |mem, gpa, size, _| {
                assert_eq!(
                    raw_entry(mem, root, gpa, size.level()),
                    Some(TestFormat::FROZEN)
                );
                if gpa == 0x2000 {
                    Err("refused")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!((count, done), (1, Err("refused")));
        assert!(t.lookup(&mut host, 0x1000).is_none());
        assert_eq!(t.lookup(&mut host, 0x2000).unwrap().pa, 0x10_1000, "kept");
        assert_eq!(
            t.lookup(&mut host, 0x3000).unwrap().pa,
            0x10_2000,
            "never reached"
        );
    }
}
