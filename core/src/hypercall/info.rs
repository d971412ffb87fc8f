//! INFO and MEASUREMENT: what the workload may learn about itself.

use super::shared_buffer::SharedBuffer;
use crate::host::Host;
use crate::mmu::{PteFormat, VendorMmu};
use crate::vm::Vm;
use cloister_abi::Error;
use cloister_abi::boot::BOOT_INFO_SIZE;
use cloister_abi::hypercall::MEASUREMENT_SIZE;

/// Copy the boot info, as it is now, to the workload's buffer.
pub(super) fn info<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    len: u64,
    host: &mut impl Host,
) -> Result<u64, Error> {
    if len < BOOT_INFO_SIZE as u64 {
        return Err(Error::InvalidArgument);
    }
    let buffer = SharedBuffer::new(vm, gpa, BOOT_INFO_SIZE as u64)?;
    buffer.write(host, &vm.boot_info().to_bytes());
    Ok(BOOT_INFO_SIZE as u64)
}

/// Copy the launch digest to the workload's buffer.
pub(super) fn measurement<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    len: u64,
    host: &mut impl Host,
) -> Result<u64, Error> {
    if len < MEASUREMENT_SIZE {
        return Err(Error::InvalidArgument);
    }
    let buffer = SharedBuffer::new(vm, gpa, MEASUREMENT_SIZE)?;
    buffer.write(host, vm.measurement());
    Ok(MEASUREMENT_SIZE)
}
