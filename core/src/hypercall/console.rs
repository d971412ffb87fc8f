//! CONSOLE_WRITE: workload output on the appliance console, drained a bounded number of
//! bytes per exit so a long write never holds the hypervisor in one call (a real UART at
//! 115200 baud takes 350 ms for 4 KiB). While a write drains, the hypervisor holds a
//! reference to its buffer: a second write gets BUSY, and so does converting the
//! buffer to private.

use super::shared_buffer::SharedBuffer;
use crate::host::Host;
use crate::mmu::{PteFormat, VendorMmu};
use crate::vm::Vm;
use cloister_abi::Error;
use cloister_abi::hypercall::{CONSOLE_DRAIN_PER_EXIT, CONSOLE_WRITE_MAX};

/// A write still being drained: the buffer, its guest range and how much is out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingWrite {
    buffer: SharedBuffer,
    gpa: u64,
    len: u64,
    done: u64,
}

pub(super) fn write<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    len: u64,
    host: &mut impl Host,
) -> Result<u64, Error> {
    if len > CONSOLE_WRITE_MAX {
        return Err(Error::InvalidArgument);
    }
    if vm.console_pending.is_some() {
        return Err(Error::Busy);
    }
    let buffer = SharedBuffer::new(vm, gpa, len)?;
    if len > 0 && vm.host_refs.hold(gpa, len) {
        vm.console_pending = Some(PendingWrite {
            buffer,
            gpa,
            len,
            done: 0,
        });
        drain(vm, host, CONSOLE_DRAIN_PER_EXIT);
    }
    Ok(len)
}

/// Send up to `budget` more bytes of the pending write; drop the reference when done.
pub(crate) fn drain<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    host: &mut impl Host,
    budget: u64,
) {
    let Some(mut pending) = vm.console_pending.take() else {
        return;
    };
    let n = (pending.len - pending.done).min(budget);
    let name = vm.name.clone();
    let mut at_line_start = vm.console_at_line_start;
    pending
        .buffer
        .slice(pending.done, n)
        .read(host, |host, bytes| {
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
    pending.done += n;
    if pending.done < pending.len {
        vm.console_pending = Some(pending);
    } else {
        vm.host_refs.drop_ref(pending.gpa, pending.len);
    }
}
