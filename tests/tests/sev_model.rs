//! SEV-SNP in model mode under QEMU: a workload converts memory through the GHCB's Page
//! State Change requests, with every nested mapping and hypervisor write checked
//! against the RMP model.

use cloister_tests::harness::{describe, model_line, run_to_clean_exit};

/// The convert workload (16 MiB to shared and back in batches, BUSY while the console
/// drains) on the GHCB transport. Its configuration allows no MEMORY_CONVERT call, so
/// every conversion is a Page State Change.
#[test]
fn snp_workload_converts_memory_through_page_state_changes_and_exits_0() {
    let result = run_to_clean_exit("tests/configs/convert-snp.toml");
    let context = describe(&result);
    assert!(
        result
            .console
            .contains("cloister: backend \"sev-snp\" in MODEL MODE"),
        "{context}"
    );
    for line in [
        "convert: 16 MiB converted to shared: ok",
        "convert: converted pages read as zero (scrubbed): ok",
        "convert: console write from converted memory: ok",
        "convert: BUSY while the console drains, then converted: ok",
        "convert: 16 MiB converted back to private: ok",
        "convert: private again: reads zero on touch: ok",
        "convert: console write from private memory refused: ok",
        "convert: 0 failed",
    ] {
        assert!(result.console.contains(line), "missing {line:?}\n{context}");
    }
    // At most 512 pages per exit: 16 MiB takes at least 8 requests.
    let calls = result
        .console
        .lines()
        .find_map(|l| l.split("convert: to-shared took ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no call count\n{context}"));
    assert!(calls >= 8, "{calls} requests\n{context}");
    let model = model_line(&result.console, "sev-snp")
        .unwrap_or_else(|| panic!("no model line\n{context}"));
    // 4096 pages were assigned on first touch, made shared, and assigned again when
    // touched as private memory: at least 3 RMPUPDATEs each.
    assert!(model.rmpupdates >= 3 * 4096, "{model:?}\n{context}");
    assert_eq!(model.quarantined, 0, "{context}");
}
