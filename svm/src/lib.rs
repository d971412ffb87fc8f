//! The AMD SVM backend: turns the CPU's virtualization extension into core's `Vcpu`
//! and `PteFormat`. All SVM instructions and asm live in this crate, in `trampoline`
//! and `cpu`.
//!
//! The layout and decoding code is host-testable; the instructions only run on the
//! bare-metal image.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod cpu;
mod exit;
mod mmu;
mod npt;
pub mod sev;
mod trampoline;
mod vcpu;
mod vmcb;

pub use cpu::{Svm, SvmError};
pub use exit::decode as decode_exit;
pub use mmu::SvmMmu;
pub use npt::NptFormat;
pub use vcpu::SvmVcpu;
pub use vmcb::Vmcb;

/// Physical address of a hypervisor object. The hypervisor runs on an identity map of
/// its own image and heap (see platforms/x86), so the address of a reference is its
/// physical address.
fn phys<T: ?Sized>(object: &T) -> u64 {
    core::ptr::from_ref(object).cast::<u8>() as u64
}
