//! The firmware's RAM map must contain every pool where the build placed it: a
//! mismatch (e.g. QEMU started with less -m than the config declares) stops the boot
//! with the pool's name and both ranges, instead of faulting later at random.

use crate::generated::POOLS;
use cloister_x86::boot_info::{BootInfoError, RamMap, is_ram};
use cloister_x86::println;

/// The boot map and the hypervisor's own tables (`host_tables`) identity-map only the
/// low 4 GiB.
const IDENTITY_MAP_END: u64 = 1 << 32;

pub fn check_pools(map: Result<RamMap, BootInfoError>) {
    let map = map.unwrap_or_else(|e| panic!("cannot read the firmware memory map: {e:?}"));
    for pool in POOLS {
        let end = pool.base + pool.size;
        if !is_ram(&map, pool.base, pool.size) || end > IDENTITY_MAP_END {
            println!(
                "cloister: pool '{}' was placed at [{:#x}, {end:#x}) but that is not RAM here",
                pool.name, pool.base
            );
            for (base, size) in &map {
                println!("cloister:   firmware RAM: [{base:#x}, {:#x})", base + size);
            }
            panic!(
                "pool '{}' does not match the firmware memory map",
                pool.name
            );
        }
    }
}
