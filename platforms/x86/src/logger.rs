//! defmt's global logger: binary log frames on their own UART, decoded on the host by
//! `cargo xtask`.

use crate::uart::Uart16550;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU16, Ordering};

static PORT: AtomicU16 = AtomicU16::new(0);
/// Held from `acquire` to `release`: defmt's API splits the critical section across
/// calls, which a guard-based lock cannot express.
static LOCK: AtomicBool = AtomicBool::new(false);

struct EncoderCell(UnsafeCell<defmt::Encoder>);
// SAFETY: the encoder is only touched between `acquire` and `release`, under LOCK.
unsafe impl Sync for EncoderCell {}
static ENCODER: EncoderCell = EncoderCell(UnsafeCell::new(defmt::Encoder::new()));

/// Start logging to the UART at `port`. Frames logged before this are dropped.
pub fn init(port: u16) {
    // Programming the UART is all that is needed; frames reattach by port.
    let _ = Uart16550::new(port);
    PORT.store(port, Ordering::Relaxed);
}

fn write_raw(bytes: &[u8]) {
    match PORT.load(Ordering::Relaxed) {
        0 => {}
        port => Uart16550::attach(port).write_bytes(bytes),
    }
}

#[defmt::global_logger]
struct Logger;

// SAFETY: acquire/release bracket every frame with LOCK held; interrupts are always off
// in the hypervisor, so a frame is never interrupted by another on this CPU.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        while LOCK.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: LOCK is held, so no other reference to the encoder exists.
        unsafe { (*ENCODER.0.get()).start_frame(write_raw) }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: defmt calls release only after acquire, so LOCK is held by us.
        unsafe {
            (*ENCODER.0.get()).end_frame(write_raw);
        }
        LOCK.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called between acquire and release, with LOCK held.
        unsafe { (*ENCODER.0.get()).write(bytes, write_raw) }
    }
}
