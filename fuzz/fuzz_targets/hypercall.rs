//! Hypercall decoding and validation: the real VM driven through VMMCALL, TDVMCALL and
//! GHCB requests (see `cloister_fuzz::hypercall`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cloister_fuzz::hypercall::run(data));
