//! The hypervisor's own page tables identity map the low 4 GiB except the private pools,
//! and the workload still runs: core reaches private frames through the platform's
//! window. (The fault on a direct read of a private frame is in crash_reports.rs.)

use cloister_runner::{BootProtocol, Machine, Outcome, RunResult};
use cloister_tests::harness::{boot, describe, image};

fn assert_logged(result: &RunResult, expected: &str) {
    assert!(
        result.log.iter().any(|line| line.text.contains(expected)),
        "the log should contain {expected:?}\n{}",
        describe(result)
    );
}

#[test]
fn the_default_appliance_runs_with_its_private_pool_out_of_the_host_tables() {
    let result = boot(
        &image("config/default.toml"),
        Machine::Microvm,
        BootProtocol::Pvh,
    );
    assert_eq!(
        result.outcome,
        Outcome::WorkloadExited(0),
        "{}",
        describe(&result)
    );
    assert_logged(
        &result,
        "private pool 'demo-private' [0x2000000, 0x6000000) is not in the hypervisor's page tables",
    );
    // 4 GiB is 2048 2 MiB regions; demo-private (64 MiB, 2 MiB aligned) takes 32 of them
    // out whole, so no 4 KiB pages are needed. Tables: PML4, PDPT, 4 PDs, window PD + PT.
    assert_logged(
        &result,
        "host page tables: 2016 2M + 0 4K mappings, 8 table pages",
    );
}
