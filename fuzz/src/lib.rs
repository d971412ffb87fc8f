//! The harnesses behind Cloister's fuzz targets (`fuzz_targets/*.rs` only call `run`),
//! so a plain `cargo test` here can replay the committed seeds (`tests/seeds.rs`)
//! without nightly or libFuzzer.
//!
//! Every harness decodes the fuzzer's bytes into operations on the REAL code (the
//! VM, the second-level table, the GHCB and TDVMCALL transports, the configuration
//! loader) and panics, with what went wrong, when a check fails; a panic inside the
//! code under test is a finding too. `cargo xtask fuzz` runs them (docs/xtask.md).
//!
//! - [`hypercall`]: hypercall decoding and validation through `Vm::step`.
//! - [`config`]: configuration parsing, validation, placement and code generation.
//! - [`mmu_ops`]: second-level table operations against core's block model.
//! - [`privmem_ops`]: VM memory operations against core's page model.

pub mod config;
pub mod hypercall;
pub mod mmu_ops;
pub mod privmem_ops;

use arbitrary::{Result, Unstructured};

/// One of `values`, or, one time in `raw_one_in`, any `u64` (so the fuzzer also reaches
/// what the hand-picked values leave out).
fn pick_or_raw(u: &mut Unstructured<'_>, values: &[u64], raw_one_in: u32) -> Result<u64> {
    if u.ratio(1, raw_one_in)? {
        u.arbitrary()
    } else {
        u.choose(values).copied()
    }
}
