//! The test workloads (tests/workloads) end as they should: stopped by the hypervisor
//! for what they do wrong, or exiting after checking the hypervisor's behaviour.

use cloister_runner::{BootProtocol, Machine, Outcome, RunResult, WorkloadEnd};
use cloister_tests::harness::{TIMEOUT, boot, describe, image};

fn boot_test_config(name: &str) -> RunResult {
    let config = format!("tests/configs/{name}.toml");
    boot(&image(&config), Machine::Microvm, BootProtocol::Pvh)
}

fn stop_reason(result: &RunResult) -> &str {
    match result.summary.as_ref().map(|s| &s.end) {
        Some(WorkloadEnd::Stopped(reason)) => reason,
        _ => panic!("no 'stopped' summary line\n{}", describe(result)),
    }
}

/// The runs that should end quickly must not merely beat the timeout.
fn assert_prompt(result: &RunResult) {
    assert!(
        result.elapsed < TIMEOUT / 2,
        "took {:.1?}\n{}",
        result.elapsed,
        describe(result)
    );
}

#[test]
fn a_triple_fault_stops_the_workload() {
    let result = boot_test_config("triple-fault");
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::WorkloadStopped, "{context}");
    assert!(stop_reason(&result).contains("triple fault"), "{context}");
    assert_prompt(&result);
}

#[test]
fn an_access_outside_memory_stops_the_workload_and_names_the_gpa() {
    let result = boot_test_config("outside-memory");
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::WorkloadStopped, "{context}");
    let reason = stop_reason(&result);
    assert!(reason.contains("outside its memory"), "{context}");
    // The workload touches 4 GiB; a longer number that merely starts the same won't do.
    let gpa = reason
        .split("gpa=0x")
        .nth(1)
        .map(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next());
    assert_eq!(gpa, Some(Some("100000000")), "{context}");
    assert_prompt(&result);
}

#[test]
fn registers_survive_the_world_switch() {
    let result = boot_test_config("world-switch");
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::WorkloadExited(0), "{context}");
    // The workload counts what it checked and what changed across its exits.
    assert!(
        result.console.contains("0 changed"),
        "some register changed across a VM exit\n{context}"
    );
    assert_prompt(&result);
}
