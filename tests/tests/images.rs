//! Boot the images `cargo xtask test` built and check how each appliance ends.

use cloister_runner::{Machine, Outcome, RunResult, WorkloadEnd};
use cloister_tests::harness::{TIMEOUT, boot, describe, image};

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
fn the_default_appliance_runs_the_demo_to_a_clean_exit() {
    let result = boot(&image("config/default.toml"), Machine::Microvm);
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::WorkloadExited(0), "{context}");
    let summary = result
        .summary
        .as_ref()
        .unwrap_or_else(|| panic!("no summary line\n{context}"));
    assert_eq!(summary.name, "demo", "{context}");
    assert!(
        summary.npf > 0,
        "the demo touches memory populated on demand\n{context}"
    );
    assert!(
        summary.hypercalls > 0,
        "the demo writes through the console hypercall\n{context}"
    );
    assert!(
        result.console.contains("hello from the demo workload"),
        "{context}"
    );
    // Decoded defmt content proves defmt.x is linked: without it the log is silently empty.
    assert!(
        result.log.iter().any(|line| line.text.contains("cloister")),
        "{context}"
    );
    assert_eq!(result.malformed_log_frames, 0, "{context}");
}

#[test]
fn the_default_appliance_also_boots_on_the_pc_machine() {
    let result = boot(&image("config/default.toml"), Machine::Pc);
    assert_eq!(
        result.outcome,
        Outcome::WorkloadExited(0),
        "{}",
        describe(&result)
    );
}

#[test]
fn a_triple_fault_stops_the_workload() {
    let result = boot(&image("tests/configs/triple-fault.toml"), Machine::Microvm);
    assert_eq!(
        result.outcome,
        Outcome::WorkloadStopped,
        "{}",
        describe(&result)
    );
    assert!(
        stop_reason(&result).contains("triple fault"),
        "{}",
        describe(&result)
    );
    assert_prompt(&result);
}

#[test]
fn an_access_outside_memory_stops_the_workload_and_names_the_gpa() {
    let result = boot(
        &image("tests/configs/outside-memory.toml"),
        Machine::Microvm,
    );
    assert_eq!(
        result.outcome,
        Outcome::WorkloadStopped,
        "{}",
        describe(&result)
    );
    let reason = stop_reason(&result);
    assert!(
        reason.contains("outside its memory"),
        "{}",
        describe(&result)
    );
    // The workload touches 4 GiB; a longer number that merely starts the same won't do.
    let gpa = reason
        .split("gpa=0x")
        .nth(1)
        .map(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next());
    assert_eq!(gpa, Some(Some("100000000")), "{}", describe(&result));
    assert_prompt(&result);
}
