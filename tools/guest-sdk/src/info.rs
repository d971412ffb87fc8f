//! INFO and MEASUREMENT: what the workload can learn about itself.

use crate::hypercall::hypercall;
use crate::staging;
use cloister_abi::boot::BOOT_INFO_SIZE;
use cloister_abi::hypercall::MEASUREMENT_SIZE;
use cloister_abi::{Call, Error};

/// Why a query failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// The workload has no shared memory to receive the answer in.
    NoSharedMemory,
    /// The hypervisor answered with an error (or an unknown negative value).
    Hypervisor(Result<Error, i64>),
}

/// Make `call` with the staging page as its buffer and copy out `N` bytes.
fn query<const N: usize>(call: Call) -> Result<[u8; N], QueryError> {
    let gpa = staging::gpa().ok_or(QueryError::NoSharedMemory)?;
    let page = staging::page().ok_or(QueryError::NoSharedMemory)?;
    hypercall(call, [gpa, N as u64, 0, 0]).map_err(QueryError::Hypervisor)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&page[..N]);
    Ok(out)
}

/// The SHA-384 launch measurement of this workload.
pub fn measurement() -> Result<[u8; MEASUREMENT_SIZE as usize], QueryError> {
    query(Call::Measurement)
}

/// The boot info as the hypervisor sees it now, as raw bytes in the `BootInfo` layout.
pub fn info_bytes() -> Result<[u8; BOOT_INFO_SIZE], QueryError> {
    query(Call::Info)
}
