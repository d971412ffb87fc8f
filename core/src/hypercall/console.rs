//! CONSOLE_WRITE: workload output on the appliance console.

use super::shared_buffer::SharedBuffer;
use crate::host::Host;
use crate::mmu::{PteFormat, VendorMmu};
use crate::vm::Vm;
use cloister_abi::Error;
use cloister_abi::hypercall::CONSOLE_WRITE_MAX;

pub(super) fn write<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    len: u64,
    host: &mut impl Host,
) -> Result<u64, Error> {
    if len > CONSOLE_WRITE_MAX {
        return Err(Error::InvalidArgument);
    }
    let buffer = SharedBuffer::new(vm, gpa, len)?;
    let name = vm.name.clone();
    let mut at_line_start = vm.console_at_line_start;
    buffer.read(host, |host, bytes| {
        // Each line of workload output is prefixed with the workload's name.
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if at_line_start {
                host.console_write(b"[");
                host.console_write(name.as_bytes());
                host.console_write(b"] ");
            }
            host.console_write(line);
            at_line_start = line.ends_with(b"\n");
        }
    });
    vm.console_at_line_start = at_line_start;
    Ok(len)
}
