//! Helpers for Cloister's QEMU integration tests (in `tests/`): finding the images
//! `cargo xtask test` built, booting them with a timeout, and tiny test kernels that
//! check the runner's QEMU wiring without a hypervisor.

pub mod fixture;
pub mod harness;
