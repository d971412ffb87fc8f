//! Choosing QEMU's accelerator. The hypervisor needs SVM with nested paging in its
//! guest CPU: TCG emulates both anywhere; KVM only provides them when the host CPU has
//! SVM and kvm_amd allows nesting. (A /dev/kvm alone is not enough: on a paravirtual
//! backend `-cpu host` aborts.)

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's emulator, with an EPYC CPU model plus SVM and nested paging.
    Tcg,
    /// Hardware virtualization with nested SVM.
    Kvm,
}

impl Accel {
    /// KVM when this host can run an SVM hypervisor under it, else TCG.
    pub fn detect() -> Accel {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let nested =
            std::fs::read_to_string("/sys/module/kvm_amd/parameters/nested").unwrap_or_default();
        if kvm_can_nest_svm(&cpuinfo, &nested, Path::new("/dev/kvm").exists()) {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// QEMU's `-accel` and `-cpu` arguments.
    pub(crate) fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Tcg => ["-accel", "tcg", "-cpu", "EPYC,+svm,+npt"],
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
        }
    }
}

/// All three must hold: the CPU flag `svm`, kvm_amd's `nested` parameter on ("1" or
/// "Y", depending on the kernel version), and the KVM device.
fn kvm_can_nest_svm(cpuinfo: &str, nested_param: &str, dev_kvm_exists: bool) -> bool {
    let has_svm = cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "svm"));
    let nested = matches!(nested_param.trim(), "1" | "Y" | "y");
    has_svm && nested && dev_kvm_exists
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVM_CPU: &str = "processor\t: 0\nflags\t\t: fpu vme svm npt\nbugs\t\t: sysret_ss_attrs\n";

    #[test]
    fn kvm_needs_svm_nesting_and_the_device() {
        assert!(kvm_can_nest_svm(SVM_CPU, "1\n", true));
        assert!(kvm_can_nest_svm(SVM_CPU, "Y\n", true));
        assert!(!kvm_can_nest_svm(SVM_CPU, "0\n", true));
        assert!(!kvm_can_nest_svm(SVM_CPU, "", true), "kvm_amd not loaded");
        assert!(!kvm_can_nest_svm(SVM_CPU, "1", false));
        assert!(
            !kvm_can_nest_svm("flags\t\t: fpu vmx svm_lock\n", "1", true),
            "only whole flags count"
        );
    }

    #[test]
    fn tcg_emulates_svm_with_nested_paging() {
        assert_eq!(
            Accel::Tcg.args(),
            ["-accel", "tcg", "-cpu", "EPYC,+svm,+npt"]
        );
    }
}
