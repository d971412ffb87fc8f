//! Configuration parsing, validation and placement (see `cloister_fuzz::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cloister_fuzz::config::run(data));
