//! Who owns which host frame. A private pool, carved from RAM at build time, becomes a
//! [`PrivateMemory`] object: the guest_memfd analogue that hands frames to the workload
//! on first touch and keeps their state for as long as the object lives, whichever VM
//! instance is bound to it.
//!
//! This crate knows nothing about page tables and touches no memory: it tells its user
//! to scrub, prepare, invalidate or unmap through the [`FrameHooks`] and [`Unmapper`]
//! callbacks. It depends on no other Cloister crate.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod error;
mod hooks;
mod page_state;
mod private_memory;

pub use error::PrivMemError;
pub use hooks::{FrameHooks, Unmapper};
pub use page_state::{PageState, PageStates};
pub use private_memory::{Frame, PrivateMemory, VmId};

pub const FRAME_SIZE: u64 = 4096;
/// Frames in a 2 MiB block.
pub const HUGE_FRAMES: u64 = 512;

#[cfg(test)]
mod tests;
