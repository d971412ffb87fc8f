//! Hypercall dispatch: decode the call, check the workload may make it, run it.
//! The transport (VMMCALL, GHCB, TDVMCALL) is the backend's business: by the time a call
//! gets here it is registers in, registers out.

use crate::host::Host;
use crate::memslot::Backing;
use crate::mmu::{PteFormat, VendorMmu};
use crate::stop::Stop;
use crate::vcpu::Regs;
use crate::vm::Vm;
use cloister_abi::hypercall::CONSOLE_WRITE_MAX;
use cloister_abi::{Call, Error};

/// Run the call in `regs`, writing its result to RAX, or say why the workload stops.
pub(crate) fn dispatch<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    regs: &mut Regs,
    host: &mut impl Host,
) -> Option<Stop> {
    let result = match Call::from_raw(regs.rax) {
        None => Err(Error::UnknownCall),
        Some(call) if vm.allowed_calls & call.mask() == 0 => Err(Error::Denied),
        Some(Call::Exit) => {
            return Some(Stop::Exited {
                status: regs.rbx as u32,
            });
        }
        Some(Call::ConsoleWrite) => console_write(vm, regs.rbx, regs.rcx, host),
    };
    regs.rax = result.unwrap_or_else(Error::to_rax);
    None
}

fn console_write<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    len: u64,
    host: &mut impl Host,
) -> Result<u64, Error> {
    if len > CONSOLE_WRITE_MAX {
        return Err(Error::InvalidArgument);
    }
    let slot = vm.slot_containing(gpa, len).ok_or(Error::NotShared)?;
    let Backing::Shared { host_base } = slot.backing else {
        return Err(Error::NotShared);
    };
    let mut pa = host_base + (gpa - slot.gpa);
    let mut left = len as usize;
    let mut chunk = [0u8; 256];
    while left > 0 {
        let offset = (pa & 0xfff) as usize;
        let n = left.min(chunk.len()).min(4096 - offset);
        host.with_frame(pa & !0xfff, |frame| {
            chunk[..n].copy_from_slice(&frame[offset..offset + n])
        });
        emit_console(vm, &chunk[..n], host);
        pa += n as u64;
        left -= n;
    }
    Ok(len)
}

/// Workload output, each line prefixed with the workload's name.
fn emit_console<F: PteFormat, V: VendorMmu>(vm: &mut Vm<F, V>, bytes: &[u8], host: &mut impl Host) {
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if vm.console_at_line_start {
            host.console_write(b"[");
            host.console_write(vm.name.as_bytes());
            host.console_write(b"] ");
        }
        host.console_write(line);
        vm.console_at_line_start = line.ends_with(b"\n");
    }
}
