//! The virtual CPU as core sees it; implemented by each vendor backend.

use crate::exit::Exit;
use crate::hypercall::Request;

/// The workload's general-purpose registers, instruction pointer and flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// The architectural state a workload starts in (see `cloister_abi::boot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryState {
    pub rip: u64,
    pub rsp: u64,
    pub rdi: u64,
    pub cr3: u64,
}

/// The answer to an [`Exit::ConvertRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertReply {
    Done,
    /// Part done: ask again from `next` (the hypervisor converts in bounded steps).
    Retry {
        next: u64,
    },
    /// The range is not convertible memory, or its ends name different kinds.
    Invalid,
    /// The range is not 4 KiB aligned.
    Misaligned,
}

/// What a request left in a shared page asks for (see [`Vcpu::page_call`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCall {
    /// A hypercall; answer with [`PageReply::Hypercall`].
    Hypercall(Request),
    /// Convert `[gpa, gpa + len)`; answer with [`PageReply::Convert`].
    Convert {
        gpa: u64,
        len: u64,
        to_private: bool,
    },
    /// The backend answered in the page itself (a malformed request gets its error code
    /// there, as the protocol says).
    Answered,
    /// The request breaks the transport's rules beyond what the protocol can answer.
    Refused { what: &'static str },
}

/// Core's answer to a [`PageCall`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageReply {
    Hypercall(u64),
    Convert(ConvertReply),
}

/// The size of the page a [`crate::exit::Exit::PageRequest`] names.
pub const REQUEST_PAGE_SIZE: usize = 4096;

pub trait Vcpu {
    /// Enter the workload and return at its next exit.
    fn run(&mut self) -> Exit;
    fn regs(&self) -> &Regs;
    fn regs_mut(&mut self) -> &mut Regs;
    /// Deliver an exception to the workload on its next entry.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
    /// The call behind an [`Exit::Hypercall`], from the transport's registers.
    fn hypercall(&self) -> Request;
    /// Return `value` for the call behind the last [`Exit::Hypercall`] and move past it.
    fn complete_hypercall(&mut self, value: u64);
    /// Answer the last [`Exit::ConvertRequest`]. Backends whose transport has no such
    /// request never report one.
    fn complete_convert(&mut self, _reply: ConvertReply) {}
    /// The request behind an [`crate::exit::Exit::PageRequest`], read from a copy of the
    /// page. Backends whose transport has no request page never report one.
    fn page_call(&mut self, _page: &mut [u8; REQUEST_PAGE_SIZE]) -> PageCall {
        PageCall::Refused {
            what: "request page on a transport without one",
        }
    }
    /// Write `reply` to the copy of the page, which core then copies back.
    fn complete_page_call(&mut self, _page: &mut [u8; REQUEST_PAGE_SIZE], _reply: PageReply) {}
}

/// x86 exception vectors core injects.
pub mod vector {
    pub const UD: u8 = 6;
    pub const GP: u8 = 13;
}
