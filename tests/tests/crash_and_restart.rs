//! Every way a workload can die, in one boot: the crash-chain workload crashes
//! differently in each instance, and `on_crash = "restart"` starts the next one. The
//! hypervisor must report each stop with its reason, restart on the kept or fresh
//! private memory as configured, stop restarting at `max_restarts`, regain the CPU from
//! an endless loop with interrupts off (the watchdog), and never fail itself.

use cloister_runner::{BootProtocol, Machine, Outcome, RunResult, WorkloadEnd};
use cloister_tests::harness::{TIMEOUT, boot, describe, image};

/// What each instance of the crash chain is stopped for, in order (the workload's
/// CASES).
const EXPECTED_STOPS: [&str; 7] = [
    "stopped: triple fault (shutdown)",
    "stopped: triple fault (shutdown)",
    "stopped: triple fault (shutdown)",
    "stopped: unresponsive: no hypercall for 200 ms (watchdog)",
    "stopped: read access outside its memory at gpa=0x180000000",
    "stopped: read access outside its memory at gpa=0xfee00000",
    "stopped: halted with interrupts off",
];

fn boot_chain(config: &str, machine: Machine) -> RunResult {
    boot(
        &image(&format!("tests/configs/{config}.toml")),
        machine,
        BootProtocol::Pvh,
    )
}

/// The restart lines: `cloister: workload '<name>' <stop>; restarting (<n> of <max>,
/// memory <kept|fresh>)`, as (stop, n, max, memory).
fn restarts(console: &str) -> Vec<(String, u32, u32, String)> {
    console
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cloister: workload '")?;
            let (_, rest) = rest.split_once("' ")?;
            let (stop, rest) = rest.split_once("; restarting (")?;
            let (n, rest) = rest.split_once(" of ")?;
            let (max, rest) = rest.split_once(", memory ")?;
            let memory = rest.strip_suffix(')')?;
            Some((
                stop.to_string(),
                n.parse().ok()?,
                max.parse().ok()?,
                memory.to_string(),
            ))
        })
        .collect()
}

/// What each instance said it found in its counter page.
fn crashes_found(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter_map(|line| {
            let rest = line.split("crash-chain: instance found ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

fn assert_no_hypervisor_failure(result: &RunResult) {
    for failure in ["cloister: panic", "CPU exception in the hypervisor"] {
        assert!(
            !result.console.contains(failure),
            "the hypervisor failed\n{}",
            describe(result)
        );
    }
}

fn assert_chain_walks_every_case(result: &RunResult) {
    let context = describe(result);
    assert_eq!(result.outcome, Outcome::WorkloadExited(0), "{context}");
    assert_no_hypervisor_failure(result);
    let restarts = restarts(&result.console);
    assert_eq!(restarts.len(), EXPECTED_STOPS.len(), "{context}");
    for (i, ((stop, n, max, memory), expected)) in restarts.iter().zip(EXPECTED_STOPS).enumerate() {
        assert!(
            stop.starts_with(expected),
            "restart {}: {stop:?} should start {expected:?}\n{context}",
            i + 1
        );
        assert_eq!((*n, *max, memory.as_str()), (i as u32 + 1, 7, "kept"));
    }
    // Kept memory: each instance found the count the one before it left.
    assert_eq!(
        crashes_found(&result.console),
        (0..=7).collect::<Vec<u64>>(),
        "{context}"
    );
    assert!(
        result.console.contains("crash-chain: every case done"),
        "{context}"
    );
}

#[test]
fn every_crash_is_reported_and_restarted_on_the_kept_memory() {
    let result = boot_chain("crash-chain", Machine::Microvm);
    assert_chain_walks_every_case(&result);
    // A restart on kept memory prepares nothing again: every instance after the first
    // refaults the frames the first one prepared.
    let memory_lines: Vec<&str> = result
        .console
        .lines()
        .filter(|l| l.starts_with("cloister: memory: "))
        .collect();
    assert_eq!(memory_lines.len(), 8, "{}", describe(&result));
    for line in &memory_lines[1..] {
        assert!(
            line.contains("launch_prepared=0 fault_prepared=0"),
            "{line}\n{}",
            describe(&result)
        );
    }
    assert!(result.elapsed < TIMEOUT / 2, "{}", describe(&result));
}

#[test]
fn the_watchdog_and_restarts_work_on_the_pc_machine_with_its_firmware_timer() {
    // SeaBIOS leaves the PIT ticking into the 8259s, routed through LINT0 at vector 8:
    // with neither the PICs nor LINT0 masked, this run ends in the hypervisor's #DF
    // report (seen with both masks removed from cloister_x86::timer).
    let result = boot_chain("crash-chain", Machine::Pc);
    assert_chain_walks_every_case(&result);
}

#[test]
fn fresh_memory_restarts_from_zero_and_the_restart_limit_halts() {
    let result = boot_chain("crash-chain-fresh", Machine::Microvm);
    let context = describe(&result);
    assert_no_hypervisor_failure(&result);
    // max_restarts = 2: three instances, each finding zeroed memory, so each takes the
    // first case; the third stop is final.
    assert_eq!(result.outcome, Outcome::WorkloadStopped, "{context}");
    assert_eq!(crashes_found(&result.console), [0, 0, 0], "{context}");
    let restarts = restarts(&result.console);
    let seen: Vec<(u32, u32, &str)> = restarts
        .iter()
        .map(|(_, n, max, memory)| (*n, *max, memory.as_str()))
        .collect();
    assert_eq!(seen, [(1, 2, "fresh"), (2, 2, "fresh")], "{context}");
    match result.summary.as_ref().map(|s| &s.end) {
        Some(WorkloadEnd::Stopped(reason)) => {
            assert!(reason.contains("triple fault"), "{context}")
        }
        _ => panic!("no 'stopped' summary line\n{context}"),
    }
}
