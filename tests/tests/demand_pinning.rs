//! Demand pinning in QEMU: private pages are prepared at first touch and read as zero,
//! and launch prepares the same frames whatever the size of private memory.

use cloister_runner::RunResult;
use cloister_tests::harness::{describe, run_to_clean_exit};

/// A counter from the `cloister: memory: ...` line the hypervisor prints before the
/// summary.
fn memory_counter(result: &RunResult, name: &str) -> u64 {
    let line = result
        .console
        .lines()
        .find_map(|l| l.strip_prefix("cloister: memory: "))
        .unwrap_or_else(|| panic!("no memory line\n{}", describe(result)));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

#[test]
fn pool_06_a_workload_touching_64_mib_takes_demand_faults_and_reads_zeros() {
    let result = run_to_clean_exit("tests/configs/touch-64m.toml");
    let context = describe(&result);
    assert!(
        result.console.contains(
            "touch-memory: touched 16384 pages, 0 not zero on first touch, contents kept: true"
        ),
        "{context}"
    );
    let npf = result.summary.as_ref().map_or(0, |s| s.npf);
    assert!(npf >= 16384, "one nested fault per touched page\n{context}");
    assert!(
        memory_counter(&result, "fault_prepared") >= 16384,
        "{context}"
    );
    assert!(memory_counter(&result, "launch_prepared") < 16, "{context}");
}

#[test]
fn pin_08_launch_prepares_the_same_frames_for_64_mib_and_1_gib() {
    let small = run_to_clean_exit("tests/configs/launch-64m.toml");
    let large = run_to_clean_exit("tests/configs/launch-1g.toml");
    let (a, b) = (
        memory_counter(&small, "launch_prepared"),
        memory_counter(&large, "launch_prepared"),
    );
    assert_eq!(a, b, "launch work must not grow with memory size");
    assert!(a <= 8, "only the image, boot info and page tables: {a}");
    // 2 bits of state per 4 KiB page: the metadata does grow, 16x for 16x the memory.
    assert_eq!(
        memory_counter(&small, "metadata_bytes") * 16,
        memory_counter(&large, "metadata_bytes")
    );
}

#[test]
fn upfront_pinning_prepares_every_private_frame_at_launch() {
    let result = run_to_clean_exit("tests/configs/launch-64m-upfront.toml");
    assert_eq!(
        memory_counter(&result, "launch_prepared"),
        (64 << 20) / 4096
    );
    assert_eq!(
        memory_counter(&result, "fault_prepared"),
        0,
        "every fault found its frame prepared"
    );
}
