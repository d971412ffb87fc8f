//! Building the identity map of [0, 4 GiB) around the excluded ranges, and switching
//! CR3 to it.

use super::arena::{self, ENTRIES, Table};
use super::{entries, window};
use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

const SIZE_4K: u64 = 1 << 12;
const SIZE_2M: u64 = 1 << 21;
const SIZE_1G: u64 = 1 << 30;
/// The identity map covers what the boot map covered: the board checks at boot that
/// every pool lies below this.
const IDENTITY_END: u64 = 4 * SIZE_1G;
const PDS: usize = (IDENTITY_END / SIZE_1G) as usize;

/// What the tables hold, for the boot log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct HostTableStats {
    /// 2 MiB identity mappings.
    pub mappings_2m: u32,
    /// 4 KiB identity mappings (the non-excluded parts of partly excluded 2 MiB regions).
    pub mappings_4k: u32,
    /// Table pages the tables use, window included.
    pub table_pages: u32,
}

unsafe extern "C" {
    // From the board's linker script (see boot.rs).
    static __image_start: u8;
    static __bss_end: u8;
}

static BUILT: AtomicBool = AtomicBool::new(false);

/// Build the hypervisor's own tables and switch to them: [0, 4 GiB) identity mapped,
/// except every 4 KiB page that intersects a range of `excluded`, plus the window.
/// Call once, at boot, after the last access to anything inside `excluded`.
///
/// Panics if called twice, if an excluded range overlaps the hypervisor image (code,
/// stacks, heap and these tables must stay mapped), or if the table arena is too small
/// (see `MAX_SPLIT_REGIONS`).
pub fn init(excluded: &[Range<u64>]) -> HostTableStats {
    assert!(
        !BUILT.swap(true, Ordering::Relaxed),
        "host page tables: built twice"
    );
    check_image_is_kept(excluded);
    let mut stats = HostTableStats {
        mappings_2m: 0,
        mappings_4k: 0,
        table_pages: 0,
    };
    let pml4 = arena::alloc();
    let pdpt = arena::alloc();
    pml4.0[0] = entries::pml4_table(pdpt.pa());
    for (gib, pdpt_entry) in pdpt.0[..PDS].iter_mut().enumerate() {
        let pd = arena::alloc();
        *pdpt_entry = entries::pdpt_table(pd.pa());
        let mut index = 0;
        while index < ENTRIES {
            let base = gib as u64 * SIZE_1G + index as u64 * SIZE_2M;
            // Skip a wholly excluded stretch in one step: its entries stay zero, and
            // the cost of building stays independent of how much is excluded.
            if let Some(range) = excluded
                .iter()
                .find(|r| r.start <= base && base + SIZE_2M <= r.end)
            {
                let covered = (range.end - base) / SIZE_2M;
                index += covered.min((ENTRIES - index) as u64) as usize;
                continue;
            }
            pd.0[index] = map_2m_region(base, excluded, &mut stats);
            index += 1;
        }
    }
    window::install(pdpt);
    stats.table_pages = arena::used() as u32;
    // SAFETY: the new tables translate every address the hypervisor uses exactly as the
    // boot map did: its image (code, data, stacks, heap, these tables), checked above to
    // be outside `excluded`, and any other non-excluded address below 4 GiB, identity
    // mapped and write-back. Only the excluded pages, which the caller no longer
    // accesses, and nothing else disappear. CR4.PGE is off, so the write flushes the TLB.
    unsafe { x86::controlregs::cr3_write(pml4.pa()) };
    stats
}

/// The PD entry for the 2 MiB region at `base`: a 2 MiB page if nothing in it is
/// excluded, else a page table of its non-excluded 4 KiB pages (none at all, and no
/// table, if every page is excluded).
fn map_2m_region(base: u64, excluded: &[Range<u64>], stats: &mut HostTableStats) -> u64 {
    if !intersects(excluded, base, SIZE_2M) {
        stats.mappings_2m += 1;
        return entries::pd_2m_page(base);
    }
    let mut pt: Option<&mut Table> = None;
    for index in 0..ENTRIES {
        let page = base + index as u64 * SIZE_4K;
        if intersects(excluded, page, SIZE_4K) {
            continue;
        }
        let table = pt.get_or_insert_with(arena::alloc);
        table.0[index] = entries::pt_4k_page(page, true);
        stats.mappings_4k += 1;
    }
    pt.map_or(0, |table| entries::pd_table(table.pa()))
}

fn intersects(excluded: &[Range<u64>], base: u64, size: u64) -> bool {
    excluded
        .iter()
        .any(|range| range.start < base + size && base < range.end)
}

fn check_image_is_kept(excluded: &[Range<u64>]) {
    let start = core::ptr::addr_of!(__image_start) as u64;
    let end = core::ptr::addr_of!(__bss_end) as u64;
    if let Some(range) = excluded
        .iter()
        .find(|range| range.start < end && start < range.end)
    {
        panic!(
            "host page tables: excluded range [{:#x}, {:#x}) overlaps the hypervisor \
             image [{start:#x}, {end:#x})",
            range.start, range.end
        );
    }
}
