//! Test-only failures, compiled in when the image is built with CLOISTER_SELFTEST: they
//! let integration tests see the crash report, the panic path and the absence of private
//! memory from the hypervisor's page tables on the real image.

use crate::host_tables;

/// Not identity mapped (the boot map ends at 4 GiB), so a read faults.
const UNMAPPED: u64 = 0x10_0000_0000;

/// The selftests that fail right after boot, on the boot map.
pub fn at_boot(selftest: &str) {
    match selftest {
        "page-fault" => {
            cloister_x86::set_phase("selftest page-fault");
            // SAFETY: none; the read is meant to fault and end in the crash report.
            let value = unsafe { (UNMAPPED as *const u64).read_volatile() };
            panic!("selftest read {value:#x} from an unmapped address");
        }
        "panic" => panic!("selftest panic"),
        _ => {}
    }
}

/// The selftests that need the hypervisor's own page tables in place.
pub fn after_host_tables(selftest: &str) {
    if selftest == "read-private" {
        cloister_x86::set_phase("selftest read-private");
        let pool = host_tables::first_private_pool().unwrap_or_else(|| {
            panic!("selftest read-private: the configuration has no private pool")
        });
        // SAFETY: none; the pool must be missing from the hypervisor's tables, so the read
        // faults and ends in the crash report with CR2 = the pool's base.
        let value = unsafe { (pool.base as *const u8).read_volatile() };
        panic!(
            "selftest read-private read {value:#x} at {:#x}: private pool '{}' is mapped in \
             the hypervisor's page tables",
            pool.base, pool.name
        );
    }
}
