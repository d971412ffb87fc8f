//! Prints INFO's view of the workload and its launch measurement.
#![no_std]
#![no_main]

#[path = "../measure_common.rs"]
mod common;

cloister_guest::entry!(main);

fn main(info: &'static cloister_guest::BootInfo) -> i32 {
    common::run(info, "a")
}
