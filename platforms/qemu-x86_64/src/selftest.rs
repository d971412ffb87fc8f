//! Test-only failures, compiled in when the image is built with CLOISTER_SELFTEST: they
//! let integration tests see the crash report and the panic path on the real image.

/// Not identity mapped (the boot map ends at 4 GiB), so a read faults.
const UNMAPPED: u64 = 0x10_0000_0000;

pub fn run(selftest: &str) {
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
