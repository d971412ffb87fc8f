//! `_start`: align the stack, check the boot info, run the workload, exit.

use crate::hypercall::exit;
use cloister_abi::boot::BOOT_INFO_MAGIC;
use cloister_abi::{ABI_MAJOR, BootInfo};
use core::arch::global_asm;

/// Exit status when the hypervisor's ABI major version or boot info is not ours.
pub const STATUS_ABI_MISMATCH: u32 = 0xab1;
/// Exit status after a panic.
pub const STATUS_PANIC: u32 = 101;

global_asm!(
    ".pushsection .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".popsection",
    start = sym start,
);

unsafe extern "C" {
    fn cloister_workload_main(info: &'static BootInfo) -> i32;
}

extern "C" fn start(info: *const BootInfo) -> ! {
    // SAFETY: the boot protocol puts a BootInfo at RDI, in private memory that nothing
    // else writes.
    let info: &'static BootInfo = unsafe { &*info };
    // The transport first: every call, even the exit below, goes through it. Features
    // mean nothing in a boot info that is not one.
    if info.magic == BOOT_INFO_MAGIC {
        crate::hypercall::init(info);
    }
    crate::staging::init(info);
    if info.magic != BOOT_INFO_MAGIC || info.abi_version >> 16 != ABI_MAJOR {
        exit(STATUS_ABI_MISMATCH);
    }
    // SAFETY: defined by the workload through `entry!`, with this signature.
    let status = unsafe { cloister_workload_main(info) };
    exit(status as u32)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::println!("workload panic: {info}");
    exit(STATUS_PANIC)
}
