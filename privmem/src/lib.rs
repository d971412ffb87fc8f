//! Who owns which host frame. Pools are carved from RAM at build time; the workload's
//! memory is allocated from them. This crate knows nothing about page tables and
//! depends on no other Cloister crate.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod pool;

pub use pool::{FramePool, PoolError};

pub const FRAME_SIZE: u64 = 4096;
