//! The SEV and SEV-SNP conformance rig: core's VM with the SEV or SNP vendor hooks over
//! the platform model, a fake host that checks every hypervisor frame access against
//! the model's RMP and caches, and a scripted vCPU.
#![allow(dead_code)]

pub mod host;
pub mod probe;
pub mod rig;
