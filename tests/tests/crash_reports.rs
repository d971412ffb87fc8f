//! Selftest images fail on purpose right after boot: the hypervisor's own failures end
//! the run as hypervisor failures (debug-exit 3, QEMU status 7) with a report on the
//! console that says what happened. One of them proves that private memory is not in
//! the hypervisor's own page tables: reading it faults instead of reading.

use cloister_runner::{BootProtocol, Machine, Outcome, RunResult, Selftest};
use cloister_tests::harness::{boot, describe, selftest_image};

fn boot_selftest(selftest: Selftest) -> RunResult {
    let image = selftest_image("config/default.toml", selftest);
    boot(&image, Machine::Microvm, BootProtocol::Pvh)
}

/// A hypervisor failure reported through debug-exit, with no workload summary.
fn assert_hypervisor_failure(result: &RunResult) {
    let context = describe(result);
    assert_eq!(
        (&result.outcome, result.qemu_status),
        (&Outcome::HypervisorFailed, Some(7)),
        "{context}"
    );
    assert_eq!(result.summary, None, "{context}");
}

fn assert_console_has(result: &RunResult, expected: &[&str]) {
    for text in expected {
        assert!(
            result.console.contains(text),
            "the console should contain {text:?}\n{}",
            describe(result)
        );
    }
}

#[test]
fn a_page_fault_in_the_hypervisor_prints_a_crash_report() {
    let result = boot_selftest(Selftest::PageFault);
    assert_hypervisor_failure(&result);
    assert_console_has(
        &result,
        &[
            "CPU exception in the hypervisor",
            "#PF page fault (vector 14)",
            "while: selftest page-fault",
            "rip: 0x",
            // The selftest reads 64 GiB, beyond the boot map's 4 GiB.
            "cr2: 0x0000001000000000",
        ],
    );
}

#[test]
fn a_panic_in_the_hypervisor_prints_where_and_why() {
    let result = boot_selftest(Selftest::Panic);
    assert_hypervisor_failure(&result);
    assert_console_has(
        &result,
        &[
            "cloister: panic at platforms/qemu-x86_64/src/selftest.rs:",
            "selftest panic",
        ],
    );
}

#[test]
fn pool_03_reading_a_private_frame_in_the_hypervisor_faults_at_its_address() {
    let result = boot_selftest(Selftest::ReadPrivate);
    assert_hypervisor_failure(&result);
    assert_console_has(
        &result,
        &[
            "CPU exception in the hypervisor",
            "#PF page fault (vector 14)",
            "while: selftest read-private",
            // config/default.toml's private pool demo-private is placed at 32 MiB; the
            // selftest reads its first byte through that physical address.
            "cr2: 0x0000000002000000",
        ],
    );
    // A supervisor read of a page that is not present: P, W/R and U/S all clear.
    assert!(
        result
            .console
            .lines()
            .any(|line| line.trim() == "error code: 0x0"),
        "the fault should be a read of a not-present page\n{}",
        describe(&result)
    );
    assert!(
        !result
            .console
            .contains("is mapped in the hypervisor's page tables"),
        "the read must fault, not return\n{}",
        describe(&result)
    );
}
