//! Converts 16 MiB of private memory to shared and back in batches, checking the data
//! rules at each step, and provokes BUSY by converting a page back while a console
//! write still drains from it.
#![no_std]
#![no_main]

use cloister_guest::abi::hypercall::ConvertRange;
use cloister_guest::abi::{Call, Error};
use cloister_guest::hypercall::hypercall;
use cloister_guest::memory::{to_private, to_shared};
use cloister_guest::{BootInfo, entry, println};

entry!(main);

const START: u64 = 0x100_0000;
const LEN: u64 = 16 << 20;
const PAGE: u64 = 4096;
const PAGES: u64 = LEN / PAGE;

fn word(page: u64) -> *mut u64 {
    (START + page * PAGE) as *mut u64
}

/// Pages whose first word is not zero.
fn nonzero_pages() -> u64 {
    // SAFETY: [START, START + LEN) is the workload's own memory (private or converted),
    // identity mapped.
    (0..PAGES)
        .filter(|&p| unsafe { word(p).read_volatile() } != 0)
        .count() as u64
}

fn fill(tag: u64) {
    for p in 0..PAGES {
        // SAFETY: as in nonzero_pages.
        unsafe { word(p).write_volatile(tag | p) };
    }
}

fn main(_: &'static BootInfo) -> i32 {
    let mut failures = 0u32;
    let mut check = |what: &str, ok: bool| {
        println!("convert: {what}: {}", if ok { "ok" } else { "FAILED" });
        failures += u32::from(!ok);
    };
    fill(0xa000_0000_0000_0000);
    check("private memory holds the pattern", nonzero_pages() == PAGES);

    // 8 ranges of 2 MiB; the first two contiguous pairs merge.
    let ranges: [ConvertRange; 8] = core::array::from_fn(|i| ConvertRange {
        gpa: START + i as u64 * (2 << 20),
        pages: 512,
    });
    let shared = to_shared(&ranges);
    check("16 MiB converted to shared", shared.is_ok());
    let calls = shared.map_or(0, |s| s.calls);
    println!("convert: to-shared took {calls} calls");
    check("at most 2 MiB per call", calls >= 8);
    check(
        "converted pages read as zero (scrubbed)",
        nonzero_pages() == 0,
    );

    fill(0x5000_0000_0000_0000);
    let line = b"convert: console output from converted memory\n";
    // SAFETY: START is converted to shared and ours.
    unsafe { core::ptr::copy_nonoverlapping(line.as_ptr(), START as *mut u8, line.len()) };
    check(
        "console write from converted memory",
        hypercall(Call::ConsoleWrite, [START, line.len() as u64, 0, 0]) == Ok(line.len() as u64),
    );

    // A long console write drains over several exits; converting its page back to
    // private meanwhile must get BUSY until it is out.
    let last = START + LEN - PAGE;
    let text = [b'.'; 4095];
    // SAFETY: the last page is converted to shared and ours.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), last as *mut u8, text.len());
        ((last + 4095) as *mut u8).write_volatile(b'\n');
    }
    let accepted = hypercall(Call::ConsoleWrite, [last, 4096, 0, 0]) == Ok(4096);
    let back = to_private(&[ConvertRange {
        gpa: last,
        pages: 1,
    }]);
    check("long console write accepted", accepted);
    let busy = back.map_or(0, |s| s.busy);
    println!("convert: to-private of the draining page was busy {busy} times");
    check(
        "BUSY while the console drains, then converted",
        back.is_ok() && busy >= 1,
    );

    check(
        "16 MiB converted back to private",
        to_private(&ranges).is_ok(),
    );
    check("private again: reads zero on touch", nonzero_pages() == 0);
    check(
        "console write from private memory refused",
        hypercall(Call::ConsoleWrite, [START, 8, 0, 0]) == Err(Ok(Error::NotShared)),
    );
    println!("convert: {failures} failed");
    if failures == 0 { 0 } else { 1 }
}
