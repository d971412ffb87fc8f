//! Console output through CONSOLE_WRITE. The hypervisor only reads shared memory, so
//! text is staged in the first page of the first shared region, which the SDK reserves
//! for itself.

use crate::hypercall::hypercall;
use cloister_abi::{BootInfo, Call, PAGE_SIZE};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

static STAGING_GPA: AtomicU64 = AtomicU64::new(0);

pub(crate) fn init(info: &BootInfo) {
    if let Some(region) = info.shared_region() {
        STAGING_GPA.store(region.gpa, Ordering::Relaxed);
    }
}

/// Write `bytes` to the console; silently dropped when the workload has no shared memory
/// or may not use the console.
pub fn write_bytes(bytes: &[u8]) {
    let gpa = STAGING_GPA.load(Ordering::Relaxed);
    if gpa == 0 {
        return;
    }
    for chunk in bytes.chunks(PAGE_SIZE as usize) {
        // SAFETY: `gpa` is the first page of a shared region (identity mapped), reserved
        // for this staging buffer; the workload runs single-threaded.
        let staging = unsafe { core::slice::from_raw_parts_mut(gpa as *mut u8, chunk.len()) };
        staging.copy_from_slice(chunk);
        let _ = hypercall(Call::ConsoleWrite, [gpa, chunk.len() as u64, 0, 0]);
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
