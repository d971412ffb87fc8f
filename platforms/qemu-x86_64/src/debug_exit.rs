//! Leaving QEMU with a status: isa-debug-exit at port 0xf4 turns a write of V into the
//! QEMU exit status (V << 1) | 1. Without the device (real hardware) the CPU halts.

/// The values written to the device; `cargo xtask` maps them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    WorkloadSucceeded = 0,
    WorkloadFailed = 1,
    WorkloadStopped = 2,
    HypervisorFailed = 3,
    /// The image's backend cannot run on this CPU (TDX under QEMU's emulation); the
    /// console says why. QEMU exits with status 9.
    BackendUnavailable = 4,
}

const DEBUG_EXIT_PORT: u16 = 0xf4;

pub fn exit(outcome: Outcome) -> ! {
    // SAFETY: a write to the debug-exit port ends QEMU; elsewhere the port is unused.
    unsafe { x86::io::outb(DEBUG_EXIT_PORT, outcome as u8) };
    loop {
        // SAFETY: nothing is left to do; stop the CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

pub fn fatal(_: cloister_x86::Failure) -> ! {
    exit(Outcome::HypervisorFailed)
}
