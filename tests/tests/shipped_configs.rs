//! The shipped appliance configurations besides the default boot and run their
//! workload to a clean exit, with the RAM their `platform.ram` declares.

use cloister_runner::{BootProtocol, Machine, Outcome};
use cloister_tests::harness::{boot, describe, image};

#[test]
fn the_edge_gateway_appliance_runs_its_workload_to_a_clean_exit() {
    let image = image("config/edge-gateway.toml");
    // QEMU's -m comes from platform.ram: 2560M, room for the 2 GiB private pool.
    assert_eq!(image.memory_mib, 2560);
    let result = boot(&image, Machine::Microvm, BootProtocol::Pvh);
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::WorkloadExited(0), "{context}");
    let summary = result
        .summary
        .as_ref()
        .unwrap_or_else(|| panic!("no summary line\n{context}"));
    assert_eq!(summary.name, "gateway", "{context}");
    assert!(
        result.console.contains("hello from the demo workload"),
        "{context}"
    );
    // Its 2 GiB private pool (2 MiB aligned) is left out of the hypervisor's identity map:
    // 1024 of the 2048 2 MiB regions below 4 GiB.
    assert!(
        result.log.iter().any(|line| line
            .text
            .contains("host page tables: 1024 2M + 0 4K mappings")),
        "{context}"
    );
}
