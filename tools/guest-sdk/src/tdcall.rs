//! The TDX side of the transport: TDCALL to the TDX module, for TDG.VP.VMCALL (calls to
//! Cloister and MapGPA) and TDG.MEM.PAGE.ACCEPT. Used only when the boot info names the
//! TDVMCALL transport; TDCALL raises #UD outside a TD.
//!
//! Not run anywhere yet: QEMU's emulation has no TDX.

use core::arch::asm;

/// TDCALL leaves (RAX).
const TDG_VP_VMCALL: u64 = 0;
const TDG_MEM_PAGE_ACCEPT: u64 = 6;

/// RCX of TDG.VP.VMCALL: the registers the VMM sees and may write, one bit per
/// register number: R10 to R14.
const EXPOSED_R10_TO_R14: u64 = 0x7c00;

/// MapGPA: a standard TDVMCALL (R10 = 0) with sub-function 0x10001 in R11.
const MAP_GPA: u64 = 0x1_0001;

/// TDVMCALL statuses of MapGPA (R10 on return).
pub const VMCALL_SUCCESS: u64 = 0;
pub const VMCALL_RETRY: u64 = 1;
pub const VMCALL_INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
pub const VMCALL_ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;

/// The shared bit of a GPA (4-level EPT, 48-bit guest physical addresses): set, the
/// access goes to shared memory; clear, to private memory.
pub const SHARED_BIT: u64 = 1 << 47;

/// TDG.MEM.PAGE.ACCEPT completion status: the class and code are the upper 32 bits.
const STATUS_CODE: u64 = 0xffff_ffff_0000_0000;
/// Bit 63: an error (a clear bit 63 with a non-zero code, such as "already accepted",
/// is not one).
const STATUS_ERROR: u64 = 1 << 63;
/// TDX_PAGE_SIZE_MISMATCH: the page is mapped with another size than accepted.
const PAGE_SIZE_MISMATCH: u64 = 0xc000_0b0b_0000_0000;

const PAGE_4K: u64 = 1 << 12;
const PAGE_2M: u64 = 1 << 21;

/// TDG.VP.VMCALL with R10..R14 = `r10`, `args`; returns R10 and R11 as the VMM left
/// them.
fn vmcall(r10: u64, args: [u64; 4]) -> (u64, u64) {
    let (status, r10_out, r11_out): (u64, u64, u64);
    // SAFETY: the caller runs in a TD (the boot info said so). TDG.VP.VMCALL exits to
    // the VMM through the TDX module, which passes only the registers RCX exposes
    // (R10-R14) and restores every other one; the VMM may write the exposed ones, and
    // the module RCX. It reads and writes memory the call names (no `nomem`) and does
    // not use our stack.
    unsafe {
        asm!(
            ".byte 0x66, 0x0f, 0x01, 0xcc", // TDCALL
            inout("rax") TDG_VP_VMCALL => status,
            inout("rcx") EXPOSED_R10_TO_R14 => _,
            inout("r10") r10 => r10_out,
            inout("r11") args[0] => r11_out,
            inout("r12") args[1] => _,
            inout("r13") args[2] => _,
            inout("r14") args[3] => _,
            options(nostack),
        );
    }
    if status != 0 {
        // TDG.VP.VMCALL fails only for a malformed RCX, which is a constant here: a
        // bug, and there is nobody to report it to but the hypervisor.
        tdcall_failed();
    }
    (r10_out, r11_out)
}

/// A Cloister call: a vendor-specific TDVMCALL (R10 = the call number, non-zero),
/// arguments in R11..R14, result in R10. Kept out of line, with the arguments in
/// registers, so the VMMCALL path that tests for it costs no more than the test.
#[cold]
#[inline(never)]
pub(crate) fn hypercall(number: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    vmcall(number, [a0, a1, a2, a3]).0
}

/// MapGPA over `[gpa, gpa + len)`: to shared when `gpa` has [`SHARED_BIT`], else to
/// private. Repeats the call from where the hypervisor stopped while it answers RETRY;
/// returns the number of TDVMCALLs made, or the failing status.
pub(crate) fn map_gpa(gpa: u64, len: u64) -> Result<u64, u64> {
    let end = gpa.checked_add(len).ok_or(VMCALL_INVALID_OPERAND)?;
    let mut next = gpa;
    let mut calls = 0;
    loop {
        calls += 1;
        match vmcall(0, [MAP_GPA, next, end - next, 0]) {
            (VMCALL_SUCCESS, _) => return Ok(calls),
            // The hypervisor converts a bounded chunk per exit (or none, when part of the
            // range is busy) and names where to go on, in R12's form; the direction stays
            // the request's whatever the shared bit of R11. Anything outside the range
            // left would loop forever.
            (VMCALL_RETRY, resume) => {
                let resume = resume & !SHARED_BIT | gpa & SHARED_BIT;
                if !(next..end).contains(&resume) {
                    return Err(VMCALL_RETRY);
                }
                next = resume;
            }
            (status, _) => return Err(status),
        }
    }
}

/// TDG.MEM.PAGE.ACCEPT every page of `[gpa, gpa + len)` (both 4 KiB aligned): 2 MiB at
/// a time where aligned, 4 KiB where the page is mapped smaller. Returns the failing
/// TDX status.
pub(crate) fn accept(gpa: u64, len: u64) -> Result<(), u64> {
    let end = gpa + len;
    let mut at = gpa;
    while at < end {
        if at.is_multiple_of(PAGE_2M) && end - at >= PAGE_2M {
            match accept_page(at, 1) {
                Ok(()) => {
                    at += PAGE_2M;
                    continue;
                }
                Err(status) if status & STATUS_CODE == PAGE_SIZE_MISMATCH => {}
                Err(status) => return Err(status),
            }
        }
        accept_page(at, 0)?;
        at += PAGE_4K;
    }
    Ok(())
}

/// TDG.MEM.PAGE.ACCEPT of the page at `gpa`, `level` 0 (4 KiB) or 1 (2 MiB).
fn accept_page(gpa: u64, level: u64) -> Result<(), u64> {
    let status: u64;
    // SAFETY: the caller runs in a TD. TDG.MEM.PAGE.ACCEPT (RCX = GPA | level) makes a
    // pending private page usable, zeroing it, and writes RAX, and RCX and RDX with
    // error details; it does not use our stack. It writes the page (no `nomem`): the
    // caller gives up its contents.
    unsafe {
        asm!(
            ".byte 0x66, 0x0f, 0x01, 0xcc", // TDCALL
            inout("rax") TDG_MEM_PAGE_ACCEPT => status,
            inout("rcx") gpa | level => _,
            out("rdx") _,
            options(nostack),
        );
    }
    if status & STATUS_ERROR == 0 {
        Ok(())
    } else {
        Err(status)
    }
}

fn tdcall_failed() -> ! {
    loop {
        // SAFETY: UD2 only raises #UD; with no IDT the workload stops (triple fault).
        unsafe { asm!("ud2", options(nomem, nostack)) };
    }
}
