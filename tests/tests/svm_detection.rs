//! On a CPU without SVM or without nested paging the hypervisor refuses to start and
//! says which feature is missing, instead of faulting on the first SVM instruction.
//! QEMU takes the last `-cpu`, so the extra argument replaces the runner's EPYC model.

use cloister_runner::{Outcome, RunOptions, RunResult};
use cloister_tests::harness::{boot_with, describe, image};

fn boot_default_on(cpu: &str) -> RunResult {
    let options = RunOptions {
        extra_qemu_args: vec!["-cpu".into(), cpu.into()],
        ..RunOptions::default()
    };
    boot_with(&image("config/default.toml"), options)
}

#[test]
fn a_cpu_without_svm_is_refused_with_the_missing_feature_named() {
    let result = boot_default_on("qemu64,-svm");
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::HypervisorFailed, "{context}");
    assert!(
        result
            .console
            .contains("this CPU has no AMD SVM (CPUID 0x80000001 ECX bit 2)"),
        "{context}"
    );
    assert!(result.summary.is_none(), "no workload ran\n{context}");
}

#[test]
fn a_cpu_without_nested_paging_is_refused_with_the_missing_feature_named() {
    let result = boot_default_on("qemu64,+svm");
    let context = describe(&result);
    assert_eq!(result.outcome, Outcome::HypervisorFailed, "{context}");
    assert!(
        result
            .console
            .contains("this CPU has SVM but no nested paging"),
        "{context}"
    );
    assert!(result.summary.is_none(), "no workload ran\n{context}");
}
