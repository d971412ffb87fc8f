//! The guest SDK: what a Cloister workload links against.
//!
//! A workload is a `#![no_std] #![no_main]` binary that names its entry with
//! [`entry!`] and has a build script with these lines (the linker script comes from this
//! crate):
//! ```text
//! println!("cargo:rustc-link-arg-bins=-Tworkload.ld");
//! println!("cargo:rustc-link-arg-bins=-nostartfiles");
//! println!("cargo:rustc-link-arg-bins=-static");
//! ```
//! The SDK provides `_start`, checks the boot info, runs the entry function and exits
//! with its return value; a panic prints its message and exits with status 101. Calls
//! travel by VMMCALL, by TDVMCALL or through the GHCB, as the boot info's features say
//! ([`hypercall::transport`]; the GHCB transport is set up at start, see [`ghcb`]);
//! [`memory`] converts and accepts memory whichever it is.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod console;
pub mod ghcb;
pub mod hypercall;
pub mod info;
pub mod memory;
pub mod pvalidate;
mod staging;
pub mod start;
pub mod tdcall;
pub mod time;

pub use cloister_abi as abi;
pub use cloister_abi::BootInfo;

// mem*, bcmp and rust_eh_personality for the linker.
use cloister_rt as _;

/// Declare the workload's entry function: `fn(&'static BootInfo) -> i32`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn cloister_workload_main(info: &'static $crate::BootInfo) -> i32 {
            let main: fn(&'static $crate::BootInfo) -> i32 = $main;
            main(info)
        }
    };
}

/// Print to the Cloister console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
