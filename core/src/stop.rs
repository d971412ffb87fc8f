//! Why a workload stopped for good.

use crate::elf::ElfError;
use crate::exit::Access;
use crate::mmu::{MmuError, VendorError};
use cloister_privmem::PrivMemError;
use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The workload called EXIT.
    Exited { status: u32 },
    /// Triple fault: an exception the workload could not handle.
    TripleFault { rip: u64 },
    /// The workload touched a GPA that is not in its memory map.
    OutsideMemory { gpa: u64, access: Access, rip: u64 },
    /// The private memory object refused the page: a private access to a page converted
    /// to shared (nothing is mapped), a poisoned page, or a vendor failure.
    PrivateMemory {
        gpa: u64,
        access: Access,
        error: PrivMemError,
    },
    /// HLT with nothing that could wake the workload.
    Halted { rip: u64 },
    /// The CPU refused the workload's state on entry.
    VmrunFailed { code: u64 },
    /// The workload used something Cloister does not emulate.
    Unsupported { what: &'static str, rip: u64 },
    /// An exit the backend could not decode.
    UnknownExit {
        code: u64,
        info1: u64,
        info2: u64,
        rip: u64,
    },
    /// The workload image could not be loaded.
    BadImage { error: ElfError },
    /// The first 2 MiB of guest-physical space (boot info, page tables, stack) is not
    /// private memory.
    NoBootArea,
    /// The image does not fit the workload's memory map.
    ImageOutsideMemory { gpa: u64, size: u64 },
    /// A hypervisor-side page-table failure (table budget spent, inconsistent entry, an
    /// external table (TDX S-EPT) refusing a change).
    Mmu { error: MmuError, gpa: u64 },
    /// A private access to shared memory (`private`) or a shared access to private
    /// memory, for vendors whose accesses say which they mean (TDX). Nothing is mapped:
    /// the workload converts memory explicitly.
    KindMismatch {
        gpa: u64,
        access: Access,
        private: bool,
        rip: u64,
    },
    /// The workload touched a private page it never accepted (TDX: PENDING).
    Unaccepted { gpa: u64, rip: u64 },
    /// The hardware's ownership table refused an access or a mapping (SEV-SNP: an RMP
    /// fault) for a reason other than a page-size mismatch, which core resolves.
    OwnershipFault {
        gpa: u64,
        error: VendorError,
        rip: u64,
    },
    /// The workload broke its transport's rules (SEV-SNP: a GHCB that is not shared
    /// memory, a request the protocol does not have).
    BadTransport { what: &'static str, rip: u64 },
    /// The workload asked to be terminated through its transport (the GHCB's
    /// termination request), with the reason it gave.
    TerminationRequest { reason: u64 },
    /// The watchdog fired: no hypercall for `limit_ms` (the workload may be looping
    /// with its interrupts off; the preemption tick took the CPU back).
    Unresponsive { limit_ms: u64, rip: u64 },
}

impl Stop {
    /// The workload ended by itself with status 0.
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::Exited { status: 0 })
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited { status } => write!(f, "exited {status}"),
            Self::TripleFault { rip } => {
                write!(f, "stopped: triple fault (shutdown) at rip={rip:#x}")
            }
            Self::OutsideMemory { gpa, access, rip } => write!(
                f,
                "stopped: {} access outside its memory at gpa={gpa:#x} (rip={rip:#x})",
                access.name()
            ),
            Self::PrivateMemory { gpa, access, error } => write!(
                f,
                "stopped: {} access to private memory at gpa={gpa:#x} refused: {error}",
                access.name()
            ),
            Self::Halted { rip } => {
                write!(f, "stopped: halted with interrupts off at rip={rip:#x}")
            }
            Self::VmrunFailed { code } => {
                write!(f, "stopped: VM entry failed (exit code {code:#x})")
            }
            Self::Unsupported { what, rip } => {
                write!(f, "stopped: unsupported {what} at rip={rip:#x}")
            }
            Self::UnknownExit {
                code,
                info1,
                info2,
                rip,
            } => write!(
                f,
                "stopped: unhandled exit {code:#x} (info1={info1:#x} info2={info2:#x}) at rip={rip:#x}"
            ),
            Self::BadImage { error } => write!(
                f,
                "stopped: could not launch: bad image: {}",
                error.describe()
            ),
            Self::NoBootArea => write!(
                f,
                "stopped: could not launch: guest-physical [0, {:#x}) must be private memory (boot info, page tables, stack)",
                cloister_abi::boot::IMAGE_MIN_GPA
            ),
            Self::ImageOutsideMemory { gpa, size } => write!(
                f,
                "stopped: could not launch: image segment gpa={gpa:#x} size={size:#x} is not inside private memory above the boot area"
            ),
            Self::Mmu {
                error: MmuError::External(e),
                gpa,
            } => write!(
                f,
                "stopped: the vendor (firmware or external page table) refused a change at gpa={gpa:#x}: {} ({:#x})",
                e.name, e.code
            ),
            Self::Mmu { error, gpa } => {
                write!(f, "stopped: page-table error {error:?} at gpa={gpa:#x}")
            }
            Self::KindMismatch {
                gpa,
                access,
                private,
                rip,
            } => {
                let (asked, is) = if private {
                    ("private", "shared")
                } else {
                    ("shared", "private")
                };
                write!(
                    f,
                    "stopped: {asked} {} access to {is} memory at gpa={gpa:#x} (rip={rip:#x}); convert it first",
                    access.name()
                )
            }
            Self::Unaccepted { gpa, rip } => write!(
                f,
                "stopped: access to private memory it never accepted at gpa={gpa:#x} (rip={rip:#x})"
            ),
            Self::OwnershipFault { gpa, error, rip } => write!(
                f,
                "stopped: {} ({:#x}) at gpa={gpa:#x} (rip={rip:#x})",
                error.name, error.code
            ),
            Self::BadTransport { what, rip } => {
                write!(f, "stopped: transport misuse: {what} at rip={rip:#x}")
            }
            Self::TerminationRequest { reason } => {
                write!(f, "stopped: it asked to be terminated (reason {reason:#x})")
            }
            Self::Unresponsive { limit_ms, rip } => write!(
                f,
                "stopped: unresponsive: no hypercall for {limit_ms} ms (watchdog) at rip={rip:#x}"
            ),
        }
    }
}
