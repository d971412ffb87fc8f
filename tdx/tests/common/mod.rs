//! The simulated TD shared by the TDX integration tests.
#![allow(dead_code)]

pub mod host;
pub mod recorder;
pub mod td;
