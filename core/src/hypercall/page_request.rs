//! Requests a transport leaves in a shared page (SEV-SNP: the GHCB). The page is copied
//! in once, so the workload cannot change it under the backend's feet (KVM reads the
//! GHCB the same way), and copied back after the answer.

use super::shared_buffer::SharedBuffer;
use super::{Outcome, convert, dispatch};
use crate::host::Host;
use crate::mmu::{PteFormat, VendorMmu};
use crate::stop::Stop;
use crate::vcpu::{PageCall, PageReply, REQUEST_PAGE_SIZE, Vcpu};
use crate::vm::Vm;

const PAGE: u64 = REQUEST_PAGE_SIZE as u64;

/// Serve the request in the page at `gpa`; `Some` when the workload stops. Out of line:
/// its page-sized copy must not grow the stack frame of every exit.
#[inline(never)]
pub(crate) fn serve<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    vcpu: &mut impl Vcpu,
    host: &mut impl Host,
) -> Option<Stop> {
    let rip = vcpu.regs().rip;
    let not_shared = Stop::BadTransport {
        what: "request page is not an aligned page of shared memory",
        rip,
    };
    let Some(buffer) = page(vm, gpa) else {
        return Some(not_shared);
    };
    let mut copy = [0u8; REQUEST_PAGE_SIZE];
    buffer.read_frame(host, &mut copy);
    let reply = match vcpu.page_call(&mut copy) {
        PageCall::Hypercall(request) => match dispatch(vm, request, host) {
            Outcome::Return(value) => PageReply::Hypercall(value),
            Outcome::Stop(stop) => return Some(stop),
        },
        PageCall::Convert {
            gpa,
            len,
            to_private,
        } => PageReply::Convert(convert::request(vm, gpa, len, to_private, host)),
        PageCall::Answered => {
            page(vm, gpa)?.write(host, &copy);
            return None;
        }
        PageCall::Refused { what } => return Some(Stop::BadTransport { what, rip }),
    };
    vcpu.complete_page_call(&mut copy, reply);
    // The request may have converted its own page: the answer then has nowhere to go.
    match page(vm, gpa) {
        Some(buffer) => {
            buffer.write(host, &copy);
            None
        }
        None => Some(not_shared),
    }
}

fn page<F: PteFormat, V: VendorMmu>(vm: &Vm<F, V>, gpa: u64) -> Option<SharedBuffer> {
    if !gpa.is_multiple_of(PAGE) {
        return None;
    }
    SharedBuffer::new(vm, gpa, PAGE).ok()
}
