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

use core::sync::atomic::{AtomicPtr, Ordering};

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

static PHASE: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static PHASE_LEN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Name what the hypervisor is doing, for crash reports ("boot", "launch", "run").
pub fn set_phase(phase: &'static str) {
    PHASE_LEN.store(phase.len(), Ordering::Relaxed);
    PHASE.store(phase.as_ptr().cast_mut(), Ordering::Relaxed);
}

pub(crate) fn phase() -> &'static str {
    let ptr = PHASE.load(Ordering::Relaxed);
    if ptr.is_null() {
        return "early boot";
    }
    // SAFETY: PHASE/PHASE_LEN come from a `&'static str` in `set_phase`; a torn read of
    // the pair cannot happen on one CPU with interrupts off.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, PHASE_LEN.load(Ordering::Relaxed)) };
    core::str::from_utf8(bytes).unwrap_or("?")
}
