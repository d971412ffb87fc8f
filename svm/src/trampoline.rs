//! The world switch. One asm function enters the guest and returns at its next exit,
//! saving and restoring everything VMRUN itself does not: the guest's GPRs (but RAX and
//! RSP, which live in the VMCB), the guest's x87/SSE state (the hypervisor's Rust code
//! uses SSE), and the VMLOAD/VMSAVE state (FS, GS, TR, LDTR, syscall MSRs).
//!
//! The hypervisor runs with interrupts off, but enters the guest with IF set (GIF still
//! clear), so that a host interrupt arriving while the guest runs is an INTR exit
//! whatever the guest's own IF (V_INTR_MASKING). After the exit, with GIF set again, one
//! STI; NOP; CLI window lets the interrupt that caused it be taken on the host's IDT.

use cloister_core::vcpu::Regs;
use core::arch::{asm, global_asm};
use core::mem::offset_of;

/// FXSAVE images of the guest's and the host's x87/SSE state.
#[repr(C, align(16))]
pub struct FpuAreas {
    pub guest: [u8; 512],
    pub host: [u8; 512],
}

impl FpuAreas {
    /// The guest's reset state: FCW 0x37f, MXCSR 0x1f80, everything else zero.
    pub fn reset() -> Self {
        let mut guest = [0u8; 512];
        guest[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        guest[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        Self {
            guest,
            host: [0; 512],
        }
    }
}

unsafe extern "sysv64" {
    /// Enter the guest described by the VMCB at `vmcb_pa` and return at its next exit.
    fn cloister_svm_run(vmcb_pa: u64, regs: *mut Regs, host_vmsave_pa: u64, fpu: *mut FpuAreas);
}

/// # Safety
/// SVM is enabled with a host save area; `vmcb_pa` is a valid, initialised VMCB whose
/// nested table and permission maps stay alive; `host_vmsave_pa` holds a VMSAVE of the
/// host's own state.
pub unsafe fn run(vmcb_pa: u64, regs: &mut Regs, host_vmsave_pa: u64, fpu: &mut FpuAreas) {
    // SAFETY: forwarded from the caller; the pointers come from live references.
    unsafe { cloister_svm_run(vmcb_pa, regs, host_vmsave_pa, fpu) }
}

/// # Safety
/// SVM is enabled and `pa` is a page-aligned page the caller owns.
pub unsafe fn vmsave(pa: u64) {
    // SAFETY: per the caller.
    unsafe { asm!("vmsave rax", in("rax") pa, options(nostack)) }
}

global_asm!(
    ".pushsection .text.cloister_svm_run, \"ax\"",
    ".global cloister_svm_run",
    "cloister_svm_run:",
    // Callee-saved registers of the SysV ABI; the guest will clobber them all.
    "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
    // Frame: [rsp] regs, [rsp+8] vmcb, [rsp+16] host vmsave area, [rsp+24] fpu.
    "push rcx", "push rdx", "push rdi", "push rsi",
    "fxsave64 [rcx + {host_fpu}]",
    "fxrstor64 [rcx + {guest_fpu}]",
    // No interrupt may be taken between loading guest state and VMRUN.
    "clgi",
    "mov rax, rdi",
    "vmload rax",
    "mov rbx, [rsi + {rbx}]", "mov rcx, [rsi + {rcx}]", "mov rdx, [rsi + {rdx}]",
    "mov rdi, [rsi + {rdi}]", "mov rbp, [rsi + {rbp}]",
    "mov r8, [rsi + {r8}]", "mov r9, [rsi + {r9}]", "mov r10, [rsi + {r10}]",
    "mov r11, [rsi + {r11}]", "mov r12, [rsi + {r12}]", "mov r13, [rsi + {r13}]",
    "mov r14, [rsi + {r14}]", "mov r15, [rsi + {r15}]",
    "mov rsi, [rsi + {rsi}]",
    // The host's IF at VMRUN decides whether host interrupts reach it as exits.
    "sti",
    "vmrun rax",
    // #VMEXIT: RAX, RSP and RFLAGS are the host's again; every other GPR is the guest's.
    // GIF is clear, so nothing is taken before interrupts are off again.
    "cli",
    "push rsi",
    "mov rsi, [rsp + 8]",
    "mov [rsi + {rbx}], rbx", "mov [rsi + {rcx}], rcx", "mov [rsi + {rdx}], rdx",
    "mov [rsi + {rdi}], rdi", "mov [rsi + {rbp}], rbp",
    "mov [rsi + {r8}], r8", "mov [rsi + {r9}], r9", "mov [rsi + {r10}], r10",
    "mov [rsi + {r11}], r11", "mov [rsi + {r12}], r12", "mov [rsi + {r13}], r13",
    "mov [rsi + {r14}], r14", "mov [rsi + {r15}], r15",
    "pop qword ptr [rsi + {rsi}]",
    "vmsave rax",
    "mov rax, [rsp + 16]",
    "vmload rax",
    "stgi",
    // Take a pending host interrupt (the preemption tick) here, at a known point.
    "sti", "nop", "cli",
    "mov rcx, [rsp + 24]",
    "fxsave64 [rcx + {guest_fpu}]",
    "fxrstor64 [rcx + {host_fpu}]",
    "add rsp, 32",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
    "ret",
    ".popsection",
    rbx = const offset_of!(Regs, rbx),
    rcx = const offset_of!(Regs, rcx),
    rdx = const offset_of!(Regs, rdx),
    rsi = const offset_of!(Regs, rsi),
    rdi = const offset_of!(Regs, rdi),
    rbp = const offset_of!(Regs, rbp),
    r8 = const offset_of!(Regs, r8),
    r9 = const offset_of!(Regs, r9),
    r10 = const offset_of!(Regs, r10),
    r11 = const offset_of!(Regs, r11),
    r12 = const offset_of!(Regs, r12),
    r13 = const offset_of!(Regs, r13),
    r14 = const offset_of!(Regs, r14),
    r15 = const offset_of!(Regs, r15),
    guest_fpu = const offset_of!(FpuAreas, guest),
    host_fpu = const offset_of!(FpuAreas, host),
);
