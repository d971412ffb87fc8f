//! Reads the time-stamp counter first thing: under icount, the instructions from the
//! hypervisor's entry (its `entry tsc=` log line) to here are the launch cost.
#![no_std]
#![no_main]

use cloister_guest::{BootInfo, entry, println, time};

entry!(main);

fn main(_: &'static BootInfo) -> i32 {
    let first = time::ticks();
    println!("bench: first_tsc={first}");
    0
}
