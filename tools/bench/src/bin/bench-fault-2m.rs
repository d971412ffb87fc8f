//! First touch of fresh 2 MiB-backed blocks (the pool prefers 2 MiB pages): one nested
//! fault prepares and scrubs the whole block.
#![no_std]
#![no_main]

use cloister_guest::{BootInfo, entry, println, time};

entry!(main);

const START: u64 = 0x100_0000;
const BLOCKS: u64 = 8;

fn main(_: &'static BootInfo) -> i32 {
    let mut total = 0;
    for block in 0..BLOCKS {
        let p = (START + block * (2 << 20)) as *mut u64;
        let before = time::ticks();
        // SAFETY: a fresh page of the workload's private memory, identity mapped.
        unsafe { p.write_volatile(block) };
        total += time::ticks() - before;
    }
    println!("bench: fault_2m_ticks={}", total / BLOCKS);
    0
}
