//! Exit-path costs as the workload sees them: a null hypercall, a first-touch fault, a
//! refault after a zap, and conversions batched or one range per call.
#![no_std]
#![no_main]

use cloister_guest::abi::hypercall::{ConvertRange, bench};
use cloister_guest::hypercall::raw_hypercall;
use cloister_guest::memory::{ConvertStats, to_private, to_shared};
use cloister_guest::{BootInfo, entry, println, time};

entry!(main);

const NULL_CALLS: u64 = 1000;
/// Not a call: the hypervisor decodes it and answers UNKNOWN_CALL.
const NULL_CALL: u64 = 0xffff;
const PAGE: u64 = 4096;
const TOUCH_START: u64 = 0x100_0000;
const TOUCH_PAGES: u64 = 256;
const CONVERT_START: u64 = 0x200_0000;
const CONVERT_MIB: u64 = 16;

fn touch_all() -> u64 {
    let mut total = 0;
    for page in 0..TOUCH_PAGES {
        let p = (TOUCH_START + page * PAGE) as *mut u64;
        let before = time::ticks();
        // SAFETY: the workload's own private memory, identity mapped.
        unsafe { p.write_volatile(page) };
        total += time::ticks() - before;
    }
    total / TOUCH_PAGES
}

fn main(_: &'static BootInfo) -> i32 {
    let before = time::ticks();
    for _ in 0..NULL_CALLS {
        raw_hypercall(NULL_CALL, [0; 4]);
    }
    println!(
        "bench: null_hypercall_ticks={}",
        (time::ticks() - before) / NULL_CALLS
    );

    println!("bench: fault_4k_ticks={}", touch_all());
    println!("bench: fault_4k_count={TOUCH_PAGES}");
    let zapped = raw_hypercall(bench::ZAP_PRIVATE, [0; 4]);
    if zapped as i64 <= 0 {
        println!(
            "bench: this image has no bench hooks (zap answered {})",
            zapped as i64
        );
        return 1;
    }
    println!("bench: refault_ticks={}", touch_all());

    let pages = CONVERT_MIB * 256;
    let batched = [ConvertRange {
        gpa: CONVERT_START,
        pages,
    }];
    let single: [ConvertRange; 1] = [ConvertRange {
        gpa: CONVERT_START,
        pages: 1,
    }];
    let report = |name: &str, ticks: u64, stats: ConvertStats| {
        println!(
            "bench: convert_{name}_ticks_per_mib={}",
            ticks / CONVERT_MIB
        );
        println!(
            "bench: convert_{name}_exits_per_gib={}",
            stats.calls * 1024 / CONVERT_MIB
        );
    };
    // Batched: one list, the hypervisor works through it 2 MiB per call.
    let start = time::ticks();
    let Ok(stats) = to_shared(&batched) else {
        return 1;
    };
    report("batched", time::ticks() - start, stats);
    if to_private(&batched).is_err() {
        return 1;
    }
    // One range per call: a call per page.
    let start = time::ticks();
    let mut calls = ConvertStats::default();
    for page in 0..pages {
        let range = [ConvertRange {
            gpa: CONVERT_START + page * PAGE,
            ..single[0]
        }];
        let Ok(stats) = to_shared(&range) else {
            return 1;
        };
        calls.calls += stats.calls;
    }
    report("single", time::ticks() - start, calls);
    0
}
