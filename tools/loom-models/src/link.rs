//! A 2 MiB region whose last-level table is not linked yet, faulted by vCPUs at
//! different GPAs in it: each brings a table page of its own, and the first to link its
//! page (TDH.MEM.SEPT.ADD while the parent entry is frozen) is the one every leaf below
//! goes into. This is the table engine's linking step, `change_frozen` on a parent entry.

use crate::{Format, MirrorEntry, SeptEntry, leaf};
use cloister_core::mmu::frozen::{self, EntryCell, Refusal};
use cloister_core::mmu::{MmuError, PteFormat};
use loom::cell::UnsafeCell;

/// One vCPU's table page: unlinked until its vCPU wins the parent entry.
pub struct TablePage {
    pub pa: u64,
    /// Whether the page is linked; written by its own vCPU only.
    linked: UnsafeCell<bool>,
    /// The page's entries for the GPAs the model faults (the mirror side).
    pub leaves: Vec<MirrorEntry>,
}

/// The region: its parent entry, the table pages in play, and the S-EPT side.
pub struct Region {
    pub parent: MirrorEntry,
    pub pages: Vec<TablePage>,
    /// The S-EPT table page linked under the parent (0: none), and how often SEPT.ADD ran.
    sept_link: UnsafeCell<(u64, u32)>,
    /// The S-EPT leaf entries for the faulted GPAs.
    pub sept_leaves: Vec<SeptEntry>,
}

impl Region {
    /// A region with nothing linked, faulted by `vcpus` vCPUs (vCPU `i` faults leaf `i`
    /// and brings table page `pages[i]`).
    pub fn new(vcpus: usize, parent_flaw: crate::Flaw) -> Self {
        let page = |i: usize| TablePage {
            pa: 0x80_0000 + i as u64 * 0x1000,
            linked: UnsafeCell::new(false),
            leaves: (0..vcpus)
                .map(|_| MirrorEntry::new(0, crate::Flaw::None))
                .collect(),
        };
        Self {
            parent: MirrorEntry::new(0, parent_flaw),
            pages: (0..vcpus).map(page).collect(),
            sept_link: UnsafeCell::new((0, 0)),
            sept_leaves: (0..vcpus).map(|_| SeptEntry::new(0)).collect(),
        }
    }

    /// The S-EPT table page linked under the parent, and how many SEPT.ADDs ran.
    pub fn sept_link(&self) -> (u64, u32) {
        // SAFETY: loom runs model threads one at a time and panics on an access not
        // ordered after the last write, before this read happens.
        self.sept_link.with(|link| unsafe { *link })
    }

    pub fn is_linked(&self, page: usize) -> bool {
        // SAFETY: as in `sept_link`.
        self.pages[page].linked.with(|linked| unsafe { *linked })
    }

    /// TDH.MEM.SEPT.ADD of `pa` under the parent, by the holder of the parent's lock.
    fn sept_add(&self, pa: u64) {
        assert_eq!(
            self.parent.load(),
            Format::FROZEN,
            "SEPT.ADD ran while the parent entry was not frozen"
        );
        // SAFETY: as in `sept_link`; loom also panics on two unordered writers.
        self.sept_link.with_mut(|link| {
            let link = unsafe { &mut *link };
            assert_eq!(
                link.0, 0,
                "SEPT.ADD over a parent S-EPT entry already linked"
            );
            *link = (pa, link.1 + 1);
        });
    }

    fn page_at(&self, pa: u64) -> &TablePage {
        let found = self.pages.iter().find(|page| page.pa == pa);
        found.unwrap_or_else(|| panic!("the parent links {pa:#x}, no table page"))
    }
}

/// vCPU `vcpu` faults its GPA in: link its own table page under the parent if none is
/// linked yet (retrying while the parent is frozen), then install its leaf in whichever
/// page is linked, PAGE.AUG below the S-EPT table SEPT.ADD linked. Returns the pa of the
/// page its leaf went into.
pub fn fault_in_unlinked_region(region: &Region, vcpu: usize, frame: u64) -> u64 {
    let page = loop {
        let seen = region.parent.load();
        if Format::is_present(seen) {
            break region.page_at(Format::address(seen));
        }
        let own = &region.pages[vcpu];
        let linked = frozen::change_frozen::<Format, _, _, MmuError>(
            &mut &*region,
            |region| &region.parent,
            seen,
            |region| {
                region.sept_add(own.pa);
                // SAFETY: as in `Region::sept_link`.
                own.linked.with_mut(|linked| unsafe { *linked = true });
                Ok(Format::table(own.pa))
            },
        );
        match linked {
            Ok(()) => break own,
            Err(Refusal::Contended) => loom::thread::yield_now(),
            Err(other) => panic!("linking failed: {other:?}"),
        }
    };
    let installed = frozen::install::<Format, _, _>(
        &mut &*region,
        |_| &page.leaves[vcpu],
        leaf(frame),
        |region| {
            let (linked, _) = region.sept_link();
            assert_eq!(
                linked, page.pa,
                "PAGE.AUG below a table SEPT.ADD did not link"
            );
            region.sept_leaves[vcpu].aug(&page.leaves[vcpu], frame);
            Ok(())
        },
    );
    assert_eq!(installed, Ok(()), "only this vCPU faults its GPA");
    page.pa
}
