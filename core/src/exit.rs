//! Why the workload stopped running: the arch-neutral decoding of a VM exit.

/// The kind of memory access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Execute => "execute",
        }
    }
}

/// One VM exit, decoded by the backend. Instruction lengths travel with the exit because
/// only the backend knows them (the instruction that trapped differs per vendor, and
/// some CPUs do not report the next RIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Exit {
    /// A second-level (nested) page fault at `gpa`.
    NestedPageFault {
        gpa: u64,
        access: Access,
        /// The second-level entry was present: a permission fault, not a missing page.
        present: bool,
    },
    /// The workload asked for a hypercall; [`crate::vcpu::Vcpu::hypercall`] reads it
    /// the way the backend's transport carries it.
    Hypercall,
    /// The workload asked to convert `[gpa, gpa + len)` to private or shared memory by
    /// its transport's own request (TDX MapGPA); answered with
    /// [`crate::vcpu::Vcpu::complete_convert`].
    ConvertRequest {
        gpa: u64,
        len: u64,
        to_private: bool,
    },
    /// The workload touched a private page that is mapped but that it never accepted
    /// (TDX: a PENDING page). A workload error, never answered by mapping it again.
    UnacceptedAccess { gpa: u64 },
    /// The hardware's ownership table refused an access to `gpa` (SEV-SNP: a nested
    /// page fault with the RMP bit). `size_mismatch`: the access or mapping is 4 KiB
    /// inside a 2 MiB ownership entry, which the hypervisor splits.
    OwnershipFault {
        gpa: u64,
        size_mismatch: bool,
        /// What the hardware reported (SVM: EXITINFO1), for the stop message.
        code: u64,
    },
    /// The workload left a request in its shared page at `gpa` (SEV-SNP: the GHCB).
    /// Core copies the page in, hands it to [`crate::vcpu::Vcpu::page_call`], and
    /// copies it back after [`crate::vcpu::Vcpu::complete_page_call`].
    PageRequest { gpa: u64 },
    /// The workload asked to be terminated, through its transport.
    TerminationRequest { reason: u64 },
    /// Port I/O. For writes the value is in RAX; reads return their value in RAX.
    Io {
        port: u16,
        size: u8,
        write: bool,
        string: bool,
        next_rip: u64,
    },
    /// HLT with interrupts intercepted.
    Hlt,
    /// Triple fault: the workload's CPU shut down.
    Shutdown,
    /// CPUID; leaf in EAX, subleaf in ECX.
    Cpuid { insn_len: u64 },
    /// RDMSR (`write == false`) or WRMSR; index in ECX, value in EDX:EAX.
    Msr { write: bool, insn_len: u64 },
    /// A physical interrupt arrived while the workload ran.
    Interrupt,
    /// A non-maskable interrupt arrived while the workload ran.
    Nmi,
    /// The CPU refused to enter the workload: its state is invalid.
    VmrunFailed { code: u64 },
    /// An exit the backend does not decode.
    Unknown { code: u64, info1: u64, info2: u64 },
}
