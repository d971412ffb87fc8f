//! The hypervisor checks at boot that the firmware's RAM holds every pool where the
//! build placed it: booted with less RAM than its configuration declares, the image
//! stops at once and names the pool and both ranges, instead of faulting later when
//! the workload first touches the missing memory.

use cloister_runner::{Outcome, RunOptions};
use cloister_tests::harness::{boot_with, describe, image};

/// Less than config/default.toml declares (512 MiB), and below the end of its
/// demo-private pool (0x6000000, 96 MiB); also below the runner's 64 MiB floor for
/// derived RAM sizes, which an explicit size must not be raised to.
const MEMORY_MIB: u64 = 48;

#[test]
fn too_little_ram_for_the_placed_pools_stops_the_boot_naming_the_pool() {
    let image = image("config/default.toml");
    let options = RunOptions {
        memory_mib: Some(MEMORY_MIB),
        ..RunOptions::default()
    };
    let result = boot_with(&image, options);
    let context = describe(&result);
    // Through the panic path's debug-exit (3, QEMU status 7), not a crash.
    assert_eq!(
        (&result.outcome, result.qemu_status),
        (&Outcome::HypervisorFailed, Some(7)),
        "{context}"
    );
    assert_eq!(result.summary, None, "the workload never ran\n{context}");
    for expected in [
        "pool 'demo-private' was placed at [0x2000000, 0x6000000) but that is not RAM here",
        "cloister: panic at",
    ] {
        assert!(
            result.console.contains(expected),
            "the console should contain {expected:?}\n{context}"
        );
    }
    let firmware_ram = firmware_ram(&result.console);
    assert!(
        !firmware_ram.is_empty(),
        "no `firmware RAM` lines\n{context}"
    );
    // The map really is the 48 MiB QEMU was given, not a size raised to some minimum.
    let top = firmware_ram.iter().map(|&(_, end)| end).max();
    assert!(
        top.is_some_and(|top| top <= MEMORY_MIB << 20),
        "firmware RAM {firmware_ram:x?} reaches beyond {MEMORY_MIB} MiB\n{context}"
    );
}

/// The `[base, end)` ranges of the console's `firmware RAM: [base, end)` lines.
fn firmware_ram(console: &str) -> Vec<(u64, u64)> {
    console
        .lines()
        .filter_map(|line| line.split_once("firmware RAM: [")?.1.strip_suffix(')'))
        .filter_map(|range| {
            let (base, end) = range.split_once(", ")?;
            Some((hex(base)?, hex(end)?))
        })
        .collect()
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}
