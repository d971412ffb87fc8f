//! The shipped appliance configurations besides the default boot and run their
//! workload to a clean exit, with the RAM their `platform.ram` declares; the TDX one
//! boots and says that TDX cannot run here.

use cloister_runner::{BootProtocol, Machine, Outcome};
use cloister_tests::harness::{boot, describe, image, model_line};

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

/// TDX cannot run under QEMU's emulation (no SEAM mode, no TDX module): the TDX image
/// boots, says so in one plain line and leaves QEMU with the backend-unavailable value,
/// which `cargo xtask run` turns into status 2 (tools/xtask/src/exit_status.rs).
#[test]
fn the_tdx_appliance_says_plainly_that_tdx_cannot_run_under_qemu() {
    let image = image("config/tdx.toml");
    let result = boot(&image, Machine::Microvm, BootProtocol::Pvh);
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::BackendUnavailable, "{context}");
    // isa-debug-exit value 4.
    assert_eq!(result.qemu_status, Some(9), "{context}");
    assert!(result.summary.is_none(), "no workload ran\n{context}");
    let last = result.console.lines().rev().find(|l| !l.trim().is_empty());
    assert_eq!(
        last,
        Some(
            "cloister: backend \"tdx\" cannot run here: TDX needs a CPU with SEAM mode and a \
             loaded TDX module, and QEMU's emulation provides neither (the TDX backend is \
             tested against its software model: cargo test -p cloister-tdx)"
        ),
        "{context}"
    );
    // The reason from the detection, in the log: QEMU's CPUs have no SEAM range register.
    assert!(
        result.log.iter().any(|line| line
            .text
            .contains("TDX unavailable: the CPU has no SEAM range register")),
        "{context}"
    );
    // Nothing SVM ran.
    assert!(
        !result
            .log
            .iter()
            .any(|line| line.text.contains("SVM enabled")),
        "{context}"
    );
}

/// QEMU has no SEV: the SEV and SEV-SNP images run their workload in model mode, say so
/// at boot, and report the model's counters before the summary.
#[test]
fn the_sev_and_sev_snp_appliances_run_in_model_mode_and_say_so() {
    for (config, name, workload) in [
        ("config/sev.toml", "sev", "sealed-service"),
        ("config/sev-snp.toml", "sev-snp", "attested-service"),
    ] {
        let image = image(config);
        let result = boot(&image, Machine::Microvm, BootProtocol::Pvh);
        let context = describe(&result);
        assert_eq!(result.outcome, Outcome::WorkloadExited(0), "{context}");
        assert!(
            result.console.contains(&format!(
                "cloister: backend \"{name}\" in MODEL MODE: QEMU has no {name}; the PSP \
                 firmware, the RMP and the caches are software models in the hypervisor \
                 (nothing here is hardware-tested)"
            )),
            "{context}"
        );
        assert!(
            result
                .console
                .contains(&format!("hello from the demo workload '{workload}'")),
            "{context}"
        );
        let model =
            model_line(&result.console, name).unwrap_or_else(|| panic!("no model line\n{context}"));
        // Launch wrote the image, boot info, page tables and stack: each went through
        // LAUNCH_UPDATE(_DATA) once.
        assert!(model.launch_pages >= 5, "{model:?}\n{context}");
        if name == "sev-snp" {
            // 2 MiB RMP entries on demand: a handful of RMPUPDATEs for 2 MiB blocks.
            assert!(model.assigned_frames >= 512, "{model:?}\n{context}");
            assert!(model.rmpupdates < 64, "{model:?}\n{context}");
        } else {
            assert_eq!(model.rmpupdates, 0, "SEV has no RMP\n{context}");
        }
    }
}
