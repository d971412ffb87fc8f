//! Turning SVM on: detection (CPUID 0x8000_0001 / 0x8000_000A, VM_CR), EFER.SVME and
//! the host save area.

use crate::phys;
use crate::vmcb::{EFER_SVME, Vmcb};
use alloc::boxed::Box;
use core::arch::x86_64::__cpuid;
use core::fmt;
use x86::msr::{IA32_EFER, rdmsr, wrmsr};

const VM_CR: u32 = 0xc001_0114;
const VM_CR_SVMDIS: u64 = 1 << 4;
const VM_HSAVE_PA: u32 = 0xc001_0117;
const EXT1_ECX_SVM: u32 = 1 << 2;
const SVM_EDX_NESTED_PAGING: u32 = 1 << 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    /// CPUID 0x8000_0001 ECX.SVM is clear.
    NoSvm,
    /// CPUID 0x8000_000A EDX.NP is clear.
    NoNestedPaging,
    /// Firmware disabled SVM (VM_CR.SVMDIS).
    DisabledByFirmware,
}

impl fmt::Display for SvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSvm => "this CPU has no AMD SVM (CPUID 0x80000001 ECX bit 2); under QEMU use -cpu EPYC,+svm,+npt",
            Self::NoNestedPaging => "this CPU has SVM but no nested paging (CPUID 0x8000000A EDX bit 0); under QEMU add +npt",
            Self::DisabledByFirmware => "SVM is disabled by firmware (VM_CR.SVMDIS); enable virtualization in the BIOS",
        })
    }
}

/// Proof that SVM is on for this CPU; owns the host save area VMRUN uses.
pub struct Svm {
    host_save_area: Box<Vmcb>,
    /// Host state VMRUN does not save (FS, GS, TR, LDTR, syscall MSRs), kept by VMSAVE
    /// and restored by VMLOAD after every exit.
    pub(crate) host_vmsave_area: Box<Vmcb>,
}

impl Svm {
    /// What the CPU offers, without changing anything.
    pub fn detect() -> Result<(), SvmError> {
        // CPUID is unprivileged and side-effect free.
        let max_ext = __cpuid(0x8000_0000).eax;
        if max_ext < 0x8000_000a || __cpuid(0x8000_0001).ecx & EXT1_ECX_SVM == 0 {
            return Err(SvmError::NoSvm);
        }
        if __cpuid(0x8000_000a).edx & SVM_EDX_NESTED_PAGING == 0 {
            return Err(SvmError::NoNestedPaging);
        }
        Ok(())
    }

    /// Enable SVM on this CPU.
    pub fn enable() -> Result<Self, SvmError> {
        Self::detect()?;
        // SAFETY: VM_CR exists on every CPU that reports SVM (checked above).
        if unsafe { rdmsr(VM_CR) } & VM_CR_SVMDIS != 0 {
            return Err(SvmError::DisabledByFirmware);
        }
        let host_save_area = Box::new(Vmcb::ZERO);
        let host_vmsave_area = Box::new(Vmcb::ZERO);
        // SAFETY: SVM is supported and not disabled. Setting EFER.SVME only makes the SVM
        // instructions legal; VM_HSAVE_PA gets a page-aligned page that this struct owns
        // for as long as SVM is enabled (Svm is never dropped while a VM runs).
        unsafe {
            wrmsr(IA32_EFER, rdmsr(IA32_EFER) | EFER_SVME);
            wrmsr(VM_HSAVE_PA, phys(&*host_save_area));
        }
        let svm = Self {
            host_save_area,
            host_vmsave_area,
        };
        // SAFETY: EFER.SVME is set and the area is a page-aligned, owned page.
        unsafe { crate::trampoline::vmsave(phys(&*svm.host_vmsave_area)) };
        Ok(svm)
    }

    pub fn host_save_area_pa(&self) -> u64 {
        phys(&*self.host_save_area)
    }
}
