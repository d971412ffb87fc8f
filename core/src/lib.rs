//! Cloister's arch-neutral core: the VM and its run loop, memslots, the second-level MMU
//! engine, exit handling and hypercall dispatch.
//!
//! Nothing here names a vendor: backends implement [`vcpu::Vcpu`] and
//! [`mmu::PteFormat`], the board implements [`host::Host`]. Everything builds and is
//! tested on the host with plain `cargo test`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "testing"))]
extern crate std;

pub mod cpuid;
pub mod elf;
pub mod exit;
mod frame_ops;
mod guest_tables;
pub mod host;
pub mod hypercall;
pub mod launch;
mod measure;
pub mod memslot;
pub mod mmu;
pub mod stop;
pub mod vcpu;
pub mod vm;
pub mod watchdog;

#[cfg(any(test, feature = "testing"))]
pub mod reference_models;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use exit::{Access, Exit};
pub use stop::Stop;
pub use vm::{ConvertError, CreateError, Pinning, RestartMemory, Stats, Vm, VmSpec};
#[cfg(test)]
mod demand_pinning_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod vm_tests;
