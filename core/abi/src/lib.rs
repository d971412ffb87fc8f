//! The contract between Cloister and its workload, shared by the hypervisor and the
//! guest SDK. Pure data: no dependencies, no behaviour beyond decoding.
//!
//! docs/abi.md is the normative description; this crate is its machine-readable half.
#![no_std]

pub mod boot;
pub mod ghcb;
pub mod hypercall;

pub use boot::{BootInfo, MemoryKind, MemoryRegion};
pub use hypercall::{Call, Error};

/// ABI version the hypervisor implements: major in the high 16 bits, minor in the low.
/// A workload must refuse to run on a different major version.
pub const ABI_VERSION: u32 = (ABI_MAJOR << 16) | ABI_MINOR;
pub const ABI_MAJOR: u32 = 1;
pub const ABI_MINOR: u32 = 0;

/// Size of a guest page in the boot protocol and the hypercall ABI.
pub const PAGE_SIZE: u64 = 4096;
