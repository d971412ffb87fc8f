//! Second-level table operations against core's block model (see
//! `cloister_fuzz::mmu_ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cloister_fuzz::mmu_ops::run(data));
