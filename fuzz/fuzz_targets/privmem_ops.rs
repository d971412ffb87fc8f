//! VM private memory operations against core's page model (see
//! `cloister_fuzz::privmem_ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cloister_fuzz::privmem_ops::run(data));
