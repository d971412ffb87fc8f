//! Reads a guest-physical address that no memory region covers. The initial identity
//! map covers it, so the access reaches the hypervisor as a nested page fault.
#![no_std]
#![no_main]

use cloister_guest::{BootInfo, entry, println};

entry!(main);

const OUTSIDE: u64 = 0x1_0000_0000;

fn main(info: &'static BootInfo) -> i32 {
    if info.regions().iter().any(|r| r.contains(OUTSIDE, 8)) {
        println!("outside-memory: {OUTSIDE:#x} is inside a region; fix the test config");
        return 2;
    }
    println!("outside-memory: reading {OUTSIDE:#x}");
    // SAFETY: deliberately reads memory that does not exist; the hypervisor stops us.
    let value = unsafe { (OUTSIDE as *const u64).read_volatile() };
    println!("outside-memory: read {value:#x}; the hypervisor should have stopped this");
    1
}
