//! The default image boots by each entry point and on each machine, and runs the demo
//! to a clean exit every time.

use cloister_runner::{BootProtocol, Machine, Outcome, RunResult};
use cloister_tests::harness::{boot, describe, image};

fn boot_default(machine: Machine, protocol: BootProtocol) -> RunResult {
    boot(&image("config/default.toml"), machine, protocol)
}

/// The demo's whole run, entered through the entry point the console names.
fn assert_clean_demo_run(result: &RunResult, entered: &str) {
    let context = describe(result);
    assert!(
        result.console.contains(entered),
        "the console should say {entered:?}\n{context}"
    );
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
fn the_default_appliance_boots_via_pvh_on_microvm() {
    let result = boot_default(Machine::Microvm, BootProtocol::Pvh);
    assert_clean_demo_run(&result, "booted via PVH");
}

#[test]
fn the_default_appliance_boots_via_multiboot_on_microvm() {
    let result = boot_default(Machine::Microvm, BootProtocol::Multiboot);
    assert_clean_demo_run(&result, "booted via Multiboot");
}

#[test]
fn the_default_appliance_boots_via_pvh_on_pc() {
    let result = boot_default(Machine::Pc, BootProtocol::Pvh);
    assert_clean_demo_run(&result, "booted via PVH");
}
