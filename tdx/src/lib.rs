//! Intel TDX backend: reserved.
//!
//! This crate will hold the SEAMCALL wrappers behind a `TdxModule` trait, the software
//! model of the TDX module's S-EPT state machine that the tests drive, and the TDVMCALL
//! hypercall transport (issue 7). Until then it is empty on purpose, and the
//! configuration refuses `backend = "tdx"` with a message saying so.
#![no_std]
