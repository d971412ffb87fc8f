//! Executes an invalid opcode with no IDT: #UD cannot be delivered, escalates to #DF,
//! which cannot be delivered either: a triple fault (SVM shutdown exit).
#![no_std]
#![no_main]

use cloister_guest::{BootInfo, entry, println};

entry!(main);

fn main(_: &'static BootInfo) -> i32 {
    println!("triple-fault: executing ud2 without an IDT");
    // SAFETY: deliberately faults; nothing after it runs.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}
