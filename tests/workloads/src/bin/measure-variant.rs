//! `measure` with one different byte in its image (the variant tag), for checking that
//! the launch measurement covers the image.
#![no_std]
#![no_main]

#[path = "../measure_common.rs"]
mod common;

cloister_guest::entry!(main);

fn main(info: &'static cloister_guest::BootInfo) -> i32 {
    common::run(info, "b")
}
