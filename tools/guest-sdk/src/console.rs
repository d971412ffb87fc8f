//! Console output through CONSOLE_WRITE, staged in the SDK's shared page.

use crate::hypercall::hypercall;
use crate::staging;
use cloister_abi::{Call, Error, PAGE_SIZE};
use core::fmt::Write;

/// Write `bytes` to the console; silently dropped when the workload has no shared memory
/// or may not use the console.
pub fn write_bytes(bytes: &[u8]) {
    for chunk in bytes.chunks(PAGE_SIZE as usize) {
        let (Some(gpa), Some(page)) = (staging::gpa(), staging::page()) else {
            return;
        };
        page[..chunk.len()].copy_from_slice(chunk);
        let len = chunk.len() as u64;
        // BUSY: a write the workload made from elsewhere is still draining; each retry
        // is an exit that drains more of it.
        loop {
            match hypercall(Call::ConsoleWrite, [gpa, len, 0, 0]) {
                Err(Ok(Error::Busy)) => continue,
                Ok(_) => staging::console_write_accepted(len),
                Err(_) => {}
            }
            break;
        }
    }
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

pub fn write_fmt(args: core::fmt::Arguments<'_>) {
    let _ = Console.write_fmt(args);
}
