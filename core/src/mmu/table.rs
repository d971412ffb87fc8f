//! A 4-level radix table of `u64` entries: map, look up and clear leaves.

use super::format::{PageSize, Perms, PteFormat};
use core::marker::PhantomData;

pub const ENTRIES: usize = 512;
const LEVELS: usize = 4;

/// Where table pages come from and how the engine reaches them.
pub trait TableMemory {
    /// A zeroed 4 KiB page for a table, or `None` when the table budget is spent.
    fn alloc_table(&mut self) -> Option<u64>;
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
    format: PhantomData<F>,
}

const fn index(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

impl<F: PteFormat> SecondLevelTable<F> {
    pub fn new(mem: &mut impl TableMemory) -> Result<Self, MmuError> {
        let root = mem.alloc_table().ok_or(MmuError::OutOfTables)?;
        Ok(Self {
            root,
            format: PhantomData,
        })
    }

    /// Physical address of the top-level table (what the CPU is pointed at).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Map `gpa` to `pa` with a leaf of `size`, creating intermediate tables.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        gpa: u64,
        pa: u64,
        size: PageSize,
        perms: Perms,
    ) -> Result<(), MmuError> {
        let align = size.bytes() - 1;
        if gpa & align != 0 || pa & align != 0 {
            return Err(MmuError::Misaligned);
        }
        let mut table = self.root;
        for level in (size.level() + 1..=LEVELS).rev() {
            let slot = index(gpa, level);
            let pte = mem.table(table)[slot];
            table = if !F::is_present(pte) {
                let next = mem.alloc_table().ok_or(MmuError::OutOfTables)?;
                mem.table(table)[slot] = F::table(next);
                next
            } else if F::is_huge(pte) {
                return Err(MmuError::AlreadyMapped { pte });
            } else {
                F::address(pte)
            };
        }
        let entry = &mut mem.table(table)[index(gpa, size.level())];
        if F::is_present(*entry) {
            return Err(MmuError::AlreadyMapped { pte: *entry });
        }
        *entry = F::leaf(pa, size, perms);
        Ok(())
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
                Perms::ALL
            ),
            Err(MmuError::Misaligned)
        );
        t.map(
            &mut host,
            0x20_0000,
            0x40_0000,
            PageSize::Size2M,
            Perms::ALL,
        )
        .unwrap();
        let m = t.lookup(&mut host, 0x3f_ffff).unwrap();
        assert_eq!((m.pa, m.size), (0x5f_ffff, PageSize::Size2M));
        // A 4 KiB map inside the huge page must not silently split it.
        assert!(matches!(
            t.map(&mut host, 0x20_1000, 0x1000, PageSize::Size4K, Perms::ALL),
            Err(MmuError::AlreadyMapped { .. })
        ));
    }

    #[test]
    fn clear_returns_the_old_entry_and_unmaps() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(&mut host, 0x7000, 0x9000, PageSize::Size4K, Perms::ALL)
            .unwrap();
        let old = t.clear(&mut host, 0x7000).unwrap();
        assert_eq!(TestFormat::address(old), 0x9000);
        assert!(t.lookup(&mut host, 0x7000).is_none());
        assert_eq!(t.clear(&mut host, 0x7000), None, "already clear");
        // The slot can be reused.
        t.map(&mut host, 0x7000, 0xa000, PageSize::Size4K, Perms::ALL)
            .unwrap();
    }

    #[test]
    fn double_map_is_refused_with_the_existing_entry() {
        let mut host = FakeHost::new(64);
        let mut t = table(&mut host);
        t.map(&mut host, 0x7000, 0x9000, PageSize::Size4K, Perms::ALL)
            .unwrap();
        let err = t.map(&mut host, 0x7000, 0xa000, PageSize::Size4K, Perms::ALL);
        assert!(
            matches!(err, Err(MmuError::AlreadyMapped { pte }) if TestFormat::address(pte) == 0x9000)
        );
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mut host = FakeHost::new(2);
        let mut t = table(&mut host);
        assert_eq!(
            t.map(&mut host, 0, 0x1000, PageSize::Size4K, Perms::ALL),
            Err(MmuError::OutOfTables)
        );
    }
}
