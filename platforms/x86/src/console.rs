//! The text console: hypervisor messages and workload output on one UART.

use crate::uart::Uart16550;
use core::fmt::Write;
use core::sync::atomic::{AtomicU16, Ordering};
use spinning_top::Spinlock;

static CONSOLE: Spinlock<Option<Uart16550>> = Spinlock::new(None);
static PORT: AtomicU16 = AtomicU16::new(0);

pub fn init(port: u16) {
    PORT.store(port, Ordering::Relaxed);
    *CONSOLE.lock() = Some(Uart16550::new(port));
}

pub fn write_bytes(bytes: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        uart.write_bytes(bytes);
    }
}

pub fn write_fmt(args: core::fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// The console for crash paths: never waits for a lock the crashed code may hold.
pub fn emergency() -> Option<Uart16550> {
    match PORT.load(Ordering::Relaxed) {
        0 => None,
        port => Some(Uart16550::attach(port)),
    }
}

/// Print a line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
