//! Touches every 4 KiB page of a 64 MiB stretch of private memory: each must read as
//! zero on first touch (the hypervisor scrubbed it) and keep what was written.
#![no_std]
#![no_main]

use cloister_guest::abi::MemoryKind;
use cloister_guest::{BootInfo, entry, println};

entry!(main);

const START: u64 = 0x100_0000;
const LEN: u64 = 64 << 20;
const PAGE: u64 = 4096;

fn main(info: &'static BootInfo) -> i32 {
    let private = info
        .regions()
        .iter()
        .any(|r| r.kind() == Some(MemoryKind::Private) && r.contains(START, LEN));
    if !private {
        println!(
            "touch-memory: [{START:#x}, {:#x}) is not private memory",
            START + LEN
        );
        return 2;
    }
    let pages = LEN / PAGE;
    let mut dirty = 0u64;
    for i in 0..pages {
        let p = (START + i * PAGE) as *mut u64;
        // SAFETY: inside private memory (checked above), identity mapped, used by
        // nothing else in the workload.
        unsafe {
            if p.read_volatile() != 0 || p.add(511).read_volatile() != 0 {
                dirty += 1;
            }
            p.write_volatile(i);
        }
    }
    // SAFETY: as above.
    let kept =
        (0..pages).all(|i| unsafe { ((START + i * PAGE) as *const u64).read_volatile() } == i);
    println!(
        "touch-memory: touched {pages} pages, {dirty} not zero on first touch, contents kept: {kept}"
    );
    if dirty == 0 && kept { 0 } else { 1 }
}
