//! The SDK's staging page: the first page of the first shared region, through which
//! every hypercall buffer passes (the hypervisor reads and writes only shared memory).
//! Workloads must not use that page themselves.

use crate::hypercall::hypercall;
use cloister_abi::hypercall::CONSOLE_DRAIN_PER_EXIT;
use cloister_abi::{BootInfo, Call, Error, PAGE_SIZE};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static STAGING_GPA: AtomicU64 = AtomicU64::new(0);

pub(crate) fn init(info: &BootInfo) {
    if let Some(region) = info.shared_region() {
        STAGING_GPA.store(region.gpa, Ordering::Relaxed);
    }
}

/// Guest-physical address of the staging page, if the workload has shared memory.
pub(crate) fn gpa() -> Option<u64> {
    match STAGING_GPA.load(Ordering::Relaxed) {
        0 => None,
        gpa => Some(gpa),
    }
}

/// Set while a console write from the staging page may still be draining.
static IN_FLIGHT: AtomicBool = AtomicBool::new(false);

/// Note that a console write of `len` bytes from the staging page was accepted: writes
/// longer than one exit's drain budget are still being read by the hypervisor.
pub(crate) fn console_write_accepted(len: u64) {
    if len > CONSOLE_DRAIN_PER_EXIT {
        IN_FLIGHT.store(true, Ordering::Relaxed);
    }
}

/// The staging page, for one call at a time. If a long console write from it may still
/// be draining, waits until the console is idle first.
pub(crate) fn page() -> Option<&'static mut [u8; PAGE_SIZE as usize]> {
    let gpa = gpa()?;
    if IN_FLIGHT.swap(false, Ordering::Relaxed) {
        // An empty write answers BUSY while an earlier one drains; each try is an exit,
        // and every exit drains more.
        while hypercall(Call::ConsoleWrite, [gpa, 0, 0, 0]) == Err(Ok(Error::Busy)) {}
    }
    // SAFETY: the page is identity mapped shared memory reserved for the SDK; workloads
    // are single-threaded and the SDK never holds two references at once (each user
    // takes it, makes one hypercall, and drops it).
    Some(unsafe { &mut *(gpa as *mut [u8; PAGE_SIZE as usize]) })
}
