//! Intel TDX backend: the TDX module interface ([`TdxModule`]) with the real SEAMCALL
//! wrappers and a software model of the module, and [`TdxMmu`], which keeps the TD's
//! S-EPT in step with core's mirror table through the module.
//!
//! TDX cannot run under QEMU: the SEAMCALL wrappers are compiled into the TDX image but
//! have run on no hardware; everything else is tested against [`model::TdxModel`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod abi;
pub mod ept;
pub mod mmu;
pub mod model;
pub mod module;
#[cfg(target_arch = "x86_64")]
pub mod seamcall;
pub mod status;
pub mod transport;

pub use abi::Level;
pub use ept::EptFormat;
pub use mmu::{TdxMmu, TdxStats};
pub use module::{TdPages, TdxModule};
pub use status::Status;
