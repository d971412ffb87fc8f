//! The VM's second-level tables. For most vendors one table holds both aliases of a GPA.
//! A vendor with a shared GPA bit (TDX) gets two: a mirror for private GPAs, whose every
//! change is pushed to the vendor's external table while the entry is frozen, and a
//! direct table for shared GPAs, mapped at `gpa | shared bit`.

use crate::host::Host;
use crate::mmu::{
    ExternalSync, ExternalTable, Mapping, MmuError, PageSize, Perms, PteFormat, Scope,
    SecondLevelTable, Span, TableMemory, VendorError, VendorMmu,
};
use alloc::vec::Vec;

const PAGE: u64 = PageSize::Size4K.bytes();

pub(crate) struct GuestTables<F: PteFormat> {
    /// Private leaves (the mirror when split), and shared leaves too when not split.
    private: SecondLevelTable<F>,
    /// Split only: shared leaves, at `gpa | shared_bit`.
    shared: Option<SecondLevelTable<F>>,
    shared_bit: u64,
    /// Split only: the external table pages linked so far, freed at teardown.
    external: Vec<ExternalTable>,
}

/// What a zap removed, and whether it could remove everything.
pub(crate) struct Zapped {
    pub cleared: u64,
    /// The first external refusal and the leaf it concerned, which is still mapped.
    pub refused: Option<(u64, VendorError)>,
}

/// Pushes mirror changes to the vendor's external table.
struct External<'a, V> {
    vendor: &'a mut V,
    tables: &'a mut Vec<ExternalTable>,
}

impl<M: TableMemory, V: VendorMmu> ExternalSync<M> for External<'_, V> {
    fn link(&mut self, mem: &mut M, gpa: u64, level: usize, _: u64) -> Result<(), MmuError> {
        let page = mem.alloc_table().ok_or(MmuError::OutOfTables)?;
        match self.vendor.link_external_table(gpa, level, page) {
            Ok(()) => {
                self.tables.push(ExternalTable {
                    gpa,
                    level,
                    pa: page,
                });
                Ok(())
            }
            Err(e) => {
                mem.free_table(page);
                Err(MmuError::External(e))
            }
        }
    }

    fn set_leaf(&mut self, _: &mut M, gpa: u64, size: PageSize, pa: u64) -> Result<(), MmuError> {
        self.vendor
            .set_external_leaf(gpa, size, pa)
            .map_err(MmuError::External)
    }
}

impl<F: PteFormat> GuestTables<F> {
    pub fn new<V: VendorMmu>(mem: &mut impl TableMemory) -> Result<Self, MmuError> {
        let private = SecondLevelTable::new(mem)?;
        let shared = if V::SHARED_GPA_BIT != 0 {
            match SecondLevelTable::new(mem) {
                Ok(table) => Some(table),
                Err(e) => {
                    private.destroy(mem);
                    return Err(e);
                }
            }
        } else {
            None
        };
        Ok(Self {
            private,
            shared,
            shared_bit: V::SHARED_GPA_BIT,
            external: Vec::new(),
        })
    }

    /// The root of the private table (the only one when not split).
    pub fn private_root(&self) -> u64 {
        self.private.root()
    }

    /// The root of the direct table for shared GPAs, when split.
    pub fn shared_root(&self) -> Option<u64> {
        self.shared.as_ref().map(SecondLevelTable::root)
    }

    /// Table pages held: the tables' own and the external table pages.
    pub fn table_pages(&self) -> u64 {
        let shared = self
            .shared
            .as_ref()
            .map_or(0, SecondLevelTable::table_pages);
        self.private.table_pages() + shared + self.external.len() as u64
    }

    /// The table a leaf of this kind goes in, and the address it is mapped at there.
    #[inline]
    fn table_for(&self, gpa: u64, private: bool) -> (&SecondLevelTable<F>, u64) {
        match &self.shared {
            Some(shared) if !private => (shared, gpa | self.shared_bit),
            _ => (&self.private, gpa),
        }
    }

    /// The leaf translating `gpa` as private (or, when split and `!private`, shared)
    /// memory.
    #[inline]
    pub fn lookup(&self, mem: &mut impl TableMemory, gpa: u64, private: bool) -> Option<Mapping> {
        let (table, at) = self.table_for(gpa, private);
        table.lookup(mem, at)
    }

    #[inline]
    pub fn is_vacant(
        &self,
        mem: &mut impl TableMemory,
        gpa: u64,
        size: PageSize,
        private: bool,
    ) -> bool {
        let (table, at) = self.table_for(gpa, private);
        table.is_vacant(mem, at, size)
    }

    /// Map `gpa` to `pa`; `pinned` leaves map prepared private frames and, when split, go
    /// to the mirror through the vendor's external table.
    #[inline]
    pub fn map<M: TableMemory, V: VendorMmu>(
        &mut self,
        mem: &mut M,
        vendor: &mut V,
        gpa: u64,
        pa: u64,
        size: PageSize,
        pinned: bool,
    ) -> Result<(), MmuError> {
        if V::SHARED_GPA_BIT == 0 {
            return self.private.map(mem, gpa, pa, size, Perms::ALL, pinned);
        }
        match &mut self.shared {
            None => self.private.map(mem, gpa, pa, size, Perms::ALL, pinned),
            Some(shared) if !pinned => {
                shared.map(mem, gpa | self.shared_bit, pa, size, Perms::ALL, false)
            }
            Some(_) => {
                let mut external = External {
                    vendor,
                    tables: &mut self.external,
                };
                let table = &mut self.private;
                table.map_synced(mem, gpa, pa, size, Perms::ALL, true, &mut external)
            }
        }
    }

    /// Remove the leaves in `scope` intersecting `[gpa, gpa + len)` and tell the vendor
    /// which span the CPU must forget. Split: private leaves leave the external table
    /// first (a refusal keeps that leaf and ends the zap), and their frames are cleared,
    /// because their contents are gone for the workload; shared-only zaps never touch
    /// the mirror.
    pub fn zap<H: Host, V: VendorMmu>(
        &mut self,
        host: &mut H,
        vendor: &mut V,
        gpa: u64,
        len: u64,
        scope: Scope,
    ) -> Zapped {
        let Some(shared) = &mut self.shared else {
            let (cleared, span) = self.private.zap_span(host, gpa, len, scope);
            if let Some((start, end)) = span {
                vendor.zap(start, end - start);
            }
            return Zapped {
                cleared,
                refused: None,
            };
        };
        let mut zapped = Zapped {
            cleared: 0,
            refused: None,
        };
        if scope != Scope::Shared {
            let mut span = Span::default();
            let (cleared, done) =
                self.private
                    .zap_synced(host, gpa, len, Scope::Private, |host, leaf, size, pte| {
                        let pa = F::address(pte);
                        vendor
                            .remove_external_leaf(leaf, size, pa)
                            .map_err(|e| (leaf, e))?;
                        for frame in 0..size.bytes() / PAGE {
                            host.with_frame(pa + frame * PAGE, |bytes| bytes.fill(0));
                        }
                        span.add(leaf, size);
                        Ok(())
                    });
            if let Some((start, end)) = span.get() {
                vendor.zap(start, end - start);
            }
            zapped.cleared += cleared;
            if let Err(e) = done {
                zapped.refused = Some(e);
                return zapped;
            }
        }
        if scope != Scope::Private {
            let at = gpa | self.shared_bit;
            // A shared range never reaches past the shared half of the address space.
            let len = len.min(self.shared_bit.wrapping_shl(1).wrapping_sub(at));
            let (cleared, span) = shared.zap_span(host, at, len, Scope::Shared);
            if let Some((start, end)) = span {
                vendor.zap(start, end - start);
            }
            zapped.cleared += cleared;
        }
        zapped
    }

    /// Private leaves (4 KiB pages with their frames) in address order: what launch
    /// premapped.
    pub fn private_pages(&self, mem: &mut impl TableMemory) -> Vec<(u64, u64)> {
        let mut pages = Vec::new();
        for (gpa, size, pte) in self.private.leaves(mem) {
            if F::is_pinned(pte) {
                for page in 0..size.bytes() / PAGE {
                    pages.push((gpa + page * PAGE, F::address(pte) + page * PAGE));
                }
            }
        }
        pages
    }

    /// Private leaves as (gpa, size, frame).
    pub fn private_leaves(&self, mem: &mut impl TableMemory) -> Vec<(u64, PageSize, u64)> {
        let leaves = self.private.leaves(mem).into_iter();
        leaves
            .filter(|&(_, _, pte)| F::is_pinned(pte))
            .map(|(gpa, size, pte)| (gpa, size, F::address(pte)))
            .collect()
    }

    /// Entries left frozen in either table (none, between operations).
    pub fn frozen_entries(&self, mem: &mut impl TableMemory) -> usize {
        let shared = self.shared.as_ref().map_or(0, |t| t.frozen_entries(mem));
        self.private.frozen_entries(mem) + shared
    }

    /// Tables the private table links, as (gpa, level).
    pub fn private_table_links(&self, mem: &mut impl TableMemory) -> Vec<(u64, usize)> {
        self.private.links(mem)
    }

    /// Free every table page. The caller zapped every leaf; the vendor retires its
    /// external table first, and only the external pages it gives back are freed (the
    /// others stay out of use: the external side may still own them).
    pub fn destroy<H: Host, V: VendorMmu>(
        self,
        host: &mut H,
        vendor: &mut V,
    ) -> Result<(), VendorError> {
        let mut reclaimed = Vec::new();
        let retired = if self.shared.is_some() {
            vendor.teardown_external(&self.external, &mut |pa| reclaimed.push(pa))
        } else {
            Ok(())
        };
        for pa in reclaimed {
            host.table(pa).fill(0);
            host.free_table(pa);
        }
        self.private.destroy(host);
        if let Some(shared) = self.shared {
            shared.destroy(host);
        }
        retired
    }
}
