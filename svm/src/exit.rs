//! Decoding SVM exit codes (APM vol. 2, appendix C) into core's `Exit`.

use crate::vmcb::{Vmcb, control};
use cloister_core::{Access, Exit};

pub const EXIT_INTR: u64 = 0x60;
pub const EXIT_NMI: u64 = 0x61;
pub const EXIT_CPUID: u64 = 0x72;
pub const EXIT_HLT: u64 = 0x78;
pub const EXIT_IOIO: u64 = 0x7b;
pub const EXIT_MSR: u64 = 0x7c;
pub const EXIT_SHUTDOWN: u64 = 0x7f;
pub const EXIT_VMMCALL: u64 = 0x81;
pub const EXIT_NPF: u64 = 0x400;
/// VMEXIT_INVALID: the APM's 64-bit -1; QEMU stores a 32-bit -1.
const EXIT_INVALID: [u64; 2] = [u64::MAX, 0xffff_ffff];

const NPF_PRESENT: u64 = 1 << 0;
const NPF_WRITE: u64 = 1 << 1;
const NPF_FETCH: u64 = 1 << 4;
/// SEV-SNP: the RMP check failed, and why (APM vol. 2, 15.36.10; Linux
/// `PFERR_GUEST_RMP_MASK`, `PFERR_GUEST_SIZEM_MASK`). QEMU never sets them.
const NPF_RMP: u64 = 1 << 31;
const NPF_SIZE_MISMATCH: u64 = 1 << 35;

const IOIO_IN: u64 = 1 << 0;
const IOIO_STRING: u64 = 1 << 2;

/// CPUID, RDMSR and WRMSR are two bytes; VMMCALL three. QEMU's TCG reports no next RIP
/// for them, so the lengths are fixed here.
const CPUID_LEN: u64 = 2;
const MSR_LEN: u64 = 2;
pub(crate) const VMMCALL_LEN: u64 = 3;
/// VMGEXIT is REP VMMCALL (F3 0F 01 D9); outside an SEV-ES guest it exits as VMMCALL.
pub(crate) const VMGEXIT_LEN: u64 = 4;

pub fn decode(vmcb: &Vmcb) -> Exit {
    let code = vmcb.read_u64(control::EXIT_CODE);
    let info1 = vmcb.read_u64(control::EXIT_INFO1);
    let info2 = vmcb.read_u64(control::EXIT_INFO2);
    match code {
        EXIT_NPF if info1 & NPF_RMP != 0 => Exit::OwnershipFault {
            gpa: info2,
            size_mismatch: info1 & NPF_SIZE_MISMATCH != 0,
            code: info1,
        },
        EXIT_NPF => Exit::NestedPageFault {
            gpa: info2,
            access: if info1 & NPF_FETCH != 0 {
                Access::Execute
            } else if info1 & NPF_WRITE != 0 {
                Access::Write
            } else {
                Access::Read
            },
            present: info1 & NPF_PRESENT != 0,
        },
        EXIT_VMMCALL => Exit::Hypercall,
        EXIT_IOIO => Exit::Io {
            port: (info1 >> 16) as u16,
            // SZ8, SZ16, SZ32 are bits 4, 5, 6.
            size: ((info1 >> 4) & 0x7) as u8,
            write: info1 & IOIO_IN == 0,
            string: info1 & IOIO_STRING != 0,
            next_rip: info2,
        },
        EXIT_HLT => Exit::Hlt,
        EXIT_SHUTDOWN => Exit::Shutdown,
        EXIT_CPUID => Exit::Cpuid {
            insn_len: CPUID_LEN,
        },
        EXIT_MSR => Exit::Msr {
            write: info1 & 1 != 0,
            insn_len: MSR_LEN,
        },
        EXIT_INTR => Exit::Interrupt,
        EXIT_NMI => Exit::Nmi,
        c if EXIT_INVALID.contains(&c) => Exit::VmrunFailed { code },
        _ => Exit::Unknown { code, info1, info2 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: u64, info1: u64, info2: u64) -> Exit {
        let mut vmcb = Vmcb::ZERO;
        vmcb.write_u64(control::EXIT_CODE, code);
        vmcb.write_u64(control::EXIT_INFO1, info1);
        vmcb.write_u64(control::EXIT_INFO2, info2);
        decode(&vmcb)
    }

    #[test]
    fn nested_page_faults_carry_gpa_and_access() {
        assert_eq!(
            exit(EXIT_NPF, (1 << 32) | NPF_WRITE, 0x1234_5000),
            Exit::NestedPageFault {
                gpa: 0x1234_5000,
                access: Access::Write,
                present: false
            }
        );
        assert_eq!(
            exit(EXIT_NPF, NPF_PRESENT | NPF_FETCH, 0x1000),
            Exit::NestedPageFault {
                gpa: 0x1000,
                access: Access::Execute,
                present: true
            }
        );
    }

    #[test]
    fn rmp_nested_page_faults_say_whether_the_size_mismatched() {
        let size = NPF_RMP | NPF_SIZE_MISMATCH | NPF_WRITE;
        assert_eq!(
            exit(EXIT_NPF, size, 0x20_3000),
            Exit::OwnershipFault {
                gpa: 0x20_3000,
                size_mismatch: true,
                code: size,
            }
        );
        assert!(matches!(
            exit(EXIT_NPF, NPF_RMP | NPF_PRESENT, 0x1000),
            Exit::OwnershipFault {
                size_mismatch: false,
                ..
            }
        ));
    }

    #[test]
    fn port_io_decodes_port_size_direction_and_next_rip() {
        // OUT dx, al to 0x3f8: SZ8, not IN.
        assert_eq!(
            exit(EXIT_IOIO, (0x3f8 << 16) | (1 << 4), 0x20_0010),
            Exit::Io {
                port: 0x3f8,
                size: 1,
                write: true,
                string: false,
                next_rip: 0x20_0010
            }
        );
        // IN eax, dx: SZ32, IN.
        assert_eq!(
            exit(EXIT_IOIO, (0x60 << 16) | (1 << 6) | IOIO_IN, 7),
            Exit::Io {
                port: 0x60,
                size: 4,
                write: false,
                string: false,
                next_rip: 7
            }
        );
    }

    #[test]
    fn failed_vmrun_is_recognised_in_both_encodings() {
        assert_eq!(exit(u64::MAX, 0, 0), Exit::VmrunFailed { code: u64::MAX });
        assert_eq!(
            exit(0xffff_ffff, 0, 0),
            Exit::VmrunFailed { code: 0xffff_ffff }
        );
    }

    #[test]
    fn the_rest_of_the_table() {
        assert_eq!(exit(EXIT_VMMCALL, 0, 0), Exit::Hypercall);
        assert_eq!(exit(EXIT_HLT, 0, 0), Exit::Hlt);
        assert_eq!(exit(EXIT_SHUTDOWN, 0, 0), Exit::Shutdown);
        assert_eq!(exit(EXIT_CPUID, 0, 0), Exit::Cpuid { insn_len: 2 });
        assert_eq!(
            exit(EXIT_MSR, 1, 0),
            Exit::Msr {
                write: true,
                insn_len: 2
            }
        );
        assert_eq!(exit(EXIT_INTR, 0, 0), Exit::Interrupt);
        assert_eq!(exit(EXIT_NMI, 0, 0), Exit::Nmi);
        assert_eq!(
            exit(0x8d, 1, 2),
            Exit::Unknown {
                code: 0x8d,
                info1: 1,
                info2: 2
            }
        );
    }
}
