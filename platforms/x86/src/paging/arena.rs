//! Table pages for the hypervisor's own page tables: a static, page-aligned arena in
//! .bss, which the tables identity map like the rest of the image, so a table's address
//! is also its physical address both before and after the switch. Pages are handed out
//! once each and never freed: the tables are built once at boot.
//!
//! Bound: [`FIXED_TABLES`] pages every map needs, plus one page table per 2 MiB region
//! that is only partly excluded. An excluded range makes at most two such regions (the
//! ones holding its two ends), none if both ends are 2 MiB aligned, so
//! [`MAX_SPLIT_REGIONS`] = 32 covers 16 private pools of any 4 KiB alignment and any
//! number of 2 MiB-aligned ones. Needing more is a boot-time panic that says so; the
//! arena costs 4 KiB of .bss per page.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

pub(super) const ENTRIES: usize = 512;

/// One table page: 512 entries.
#[repr(C, align(4096))]
pub(super) struct Table(pub(super) [u64; ENTRIES]);

impl Table {
    /// Its physical address: the arena is identity mapped.
    pub(super) fn pa(&self) -> u64 {
        core::ptr::from_ref(self) as u64
    }
}

/// PML4, one PDPT, four page directories for [0, 4 GiB), and the window's PD and PT.
pub(super) const FIXED_TABLES: usize = 8;

/// How many partly excluded 2 MiB regions (each needing its own page table) the arena
/// has room for.
pub const MAX_SPLIT_REGIONS: usize = 32;

const CAPACITY: usize = FIXED_TABLES + MAX_SPLIT_REGIONS;

struct Arena(UnsafeCell<[Table; CAPACITY]>);

// SAFETY: `alloc` hands each page out at most once (the index comes from an atomic
// counter), so no two references to one page ever exist.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([const { Table([0; ENTRIES]) }; CAPACITY]));
static USED: AtomicUsize = AtomicUsize::new(0);

/// A zeroed table page, never handed out again.
pub(super) fn alloc() -> &'static mut Table {
    let index = USED.fetch_add(1, Ordering::Relaxed);
    if index >= CAPACITY {
        panic!(
            "host page tables: the table arena ({CAPACITY} pages) is full: more than \
             {MAX_SPLIT_REGIONS} 2 MiB regions are partly excluded; align private pools \
             to 2 MiB or raise MAX_SPLIT_REGIONS in platforms/x86/src/paging/arena.rs"
        );
    }
    // SAFETY: `index` is in bounds and was handed out by no earlier call (see the Sync
    // impl), so this is the only reference to that page, for the rest of the run.
    let table = unsafe { &mut *ARENA.0.get().cast::<Table>().add(index) };
    // .bss is zero when loaded; clearing again costs little and assumes nothing.
    table.0.fill(0);
    table
}

/// Table pages handed out so far.
pub(super) fn used() -> usize {
    USED.load(Ordering::Relaxed).min(CAPACITY)
}
