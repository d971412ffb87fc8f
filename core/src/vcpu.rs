//! The virtual CPU as core sees it; implemented by each vendor backend.

use crate::exit::Exit;

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

pub trait Vcpu {
    /// Enter the workload and return at its next exit.
    fn run(&mut self) -> Exit;
    fn regs(&self) -> &Regs;
    fn regs_mut(&mut self) -> &mut Regs;
    /// Deliver an exception to the workload on its next entry.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
}

/// x86 exception vectors core injects.
pub mod vector {
    pub const UD: u8 = 6;
    pub const GP: u8 = 13;
}
