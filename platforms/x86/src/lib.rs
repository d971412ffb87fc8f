//! x86-64 bring-up shared by every Cloister board: the 32-bit entry points for PVH and
//! Multiboot v1, the switch to long mode on an identity map of the low 4 GiB, SSE,
//! descriptor tables with an IST stack for every exception, a crash report for any CPU
//! exception in the hypervisor, the hypervisor's own page tables (which leave the
//! board's private pools out), the 16550 UART console, the defmt logger and the
//! preemption tick (the local APIC timer).
//!
//! The board provides `cloister_main(protocol, info)`, called in long mode on the boot
//! stack with interrupts off, and a fatal-exit hook ([`set_fatal_exit`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod boot;
pub mod boot_info;
pub mod console;
pub mod cpu;
mod exceptions;
pub mod logger;
pub mod paging;
pub mod timer;
pub mod uart;

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// How the hypervisor ended, for the board's exit hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A panic or CPU exception in the hypervisor itself.
    Hypervisor,
}

fn halt_forever(_: Failure) -> ! {
    loop {
        // SAFETY: hlt with interrupts off stops this CPU for good, which is the intent.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

static FATAL_EXIT: AtomicPtr<()> = AtomicPtr::new(halt_forever as *mut ());

/// Where panics and crash reports end: the board's way to stop (QEMU: isa-debug-exit).
pub fn set_fatal_exit(exit: fn(Failure) -> !) {
    FATAL_EXIT.store(exit as *mut (), Ordering::Relaxed);
}

pub fn fatal_exit(failure: Failure) -> ! {
    let ptr = FATAL_EXIT.load(Ordering::Relaxed);
    // SAFETY: FATAL_EXIT only ever holds `halt_forever` or a `fn(Failure) -> !` stored by
    // `set_fatal_exit`.
    let exit: fn(Failure) -> ! = unsafe { core::mem::transmute(ptr) };
    exit(failure)
}

/// The phase as one word, so that a report interrupting `set_phase` (a machine check
/// can) never pairs one phase's pointer with another's length: the pointer (the image
/// is below 4 GiB) in the high bits, the length in the low 16.
static PHASE: AtomicU64 = AtomicU64::new(0);

/// Name what the hypervisor is doing, for crash reports ("boot", "launch", "run").
pub fn set_phase(phase: &'static str) {
    debug_assert!(
        phase.as_ptr() as u64 >> 48 == 0,
        "phase outside the low 256 TiB"
    );
    let len = phase.len().min(0xffff) as u64;
    PHASE.store(((phase.as_ptr() as u64) << 16) | len, Ordering::Relaxed);
}

pub(crate) fn phase() -> &'static str {
    let word = PHASE.load(Ordering::Relaxed);
    if word == 0 {
        return "early boot";
    }
    let (ptr, len) = ((word >> 16) as *const u8, (word & 0xffff) as usize);
    // SAFETY: the word was packed by `set_phase` from a `&'static str` (at most 64 KiB
    // long, below 2^48) in one store, so the pair belongs together.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    core::str::from_utf8(bytes).unwrap_or("?")
}
