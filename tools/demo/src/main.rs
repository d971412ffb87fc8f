//! The demo workload: proves the boot protocol, the console, demand paging of private
//! memory and the exit hypercall.
#![no_std]
#![no_main]

use cloister_guest::abi::{ABI_VERSION, MemoryKind};
use cloister_guest::{BootInfo, entry, println};

entry!(main);

/// Pages touched beyond the image, each demand-faulted by the hypervisor.
const TOUCHED_PAGES: u64 = 64;
const TOUCH_BASE: u64 = 0x80_0000;

fn main(info: &'static BootInfo) -> i32 {
    println!(
        "hello from the demo workload '{}' (ABI {}.{})",
        info.name(),
        ABI_VERSION >> 16,
        ABI_VERSION & 0xffff
    );
    for region in info.regions() {
        let kind = match region.kind() {
            Some(MemoryKind::Private) => "private",
            Some(MemoryKind::Shared) => "shared",
            None => "unknown",
        };
        println!(
            "  memory [{:#x}, {:#x}) {kind}",
            region.gpa,
            region.gpa + region.size
        );
    }
    let Some(private) = info
        .regions()
        .iter()
        .find(|r| r.kind() == Some(MemoryKind::Private))
    else {
        println!("no private memory");
        return 1;
    };
    if !private.contains(TOUCH_BASE, TOUCHED_PAGES * 4096) {
        println!("private memory too small for the demo");
        return 1;
    }
    let page = |i: u64| (TOUCH_BASE + i * 4096) as *mut u64;
    for i in 0..TOUCHED_PAGES {
        // SAFETY: the page lies in private memory (checked above), identity mapped, and
        // nothing else in the workload uses it.
        unsafe {
            assert_eq!(page(i).read_volatile(), 0, "fresh memory must read as zero");
            page(i).write_volatile(i * 0x9e37_79b9);
        }
    }
    // SAFETY: as above.
    let intact = (0..TOUCHED_PAGES).all(|i| unsafe { page(i).read_volatile() } == i * 0x9e37_79b9);
    println!(
        "touched {TOUCHED_PAGES} fresh pages beyond the image: zeroed on first touch, contents kept: {intact}"
    );
    if intact { 0 } else { 1 }
}
