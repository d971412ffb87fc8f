//! The hypervisor's own page tables on this board: the low 4 GiB identity mapped except
//! every private pool, so the hypervisor reaches a private frame only through the
//! platform's window, one frame for one call (`BoardHost::with_frame`), and a stray read
//! through a private frame's physical address faults.

use crate::PoolSpec;
use crate::generated::POOLS;
use cloister_abi::MemoryKind;
use core::ops::Range;

/// Switch from the boot map to tables without the private pools. Call once, after the
/// boot-time checks and before anything touches private memory.
pub fn switch() {
    let mut excluded = [const { 0..0 }; POOLS.len()];
    let mut count = 0;
    for pool in private_pools() {
        excluded[count] = range(pool);
        count += 1;
    }
    let stats = cloister_x86::paging::init(&excluded[..count]);
    for pool in private_pools() {
        defmt::info!(
            "private pool '{=str}' [{=u64:#x}, {=u64:#x}) is not in the hypervisor's page tables",
            pool.name,
            pool.base,
            pool.base + pool.size
        );
    }
    defmt::info!(
        "host page tables: {=u32} 2M + {=u32} 4K mappings, {=u32} table pages",
        stats.mappings_2m,
        stats.mappings_4k,
        stats.table_pages
    );
}

/// Whether the frame at `pa` belongs to a private pool (and so is reachable only through
/// the window).
pub fn is_private(pa: u64) -> bool {
    private_pools().any(|pool| range(pool).contains(&pa))
}

/// The first private pool, if the configuration has one.
pub fn first_private_pool() -> Option<&'static PoolSpec> {
    private_pools().next()
}

fn private_pools() -> impl Iterator<Item = &'static PoolSpec> {
    POOLS.iter().filter(|pool| pool.kind == MemoryKind::Private)
}

fn range(pool: &PoolSpec) -> Range<u64> {
    pool.base..pool.base + pool.size
}
