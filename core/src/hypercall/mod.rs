//! Hypercall dispatch: decode the call, check the workload may make it, run it.
//!
//! Transport-neutral: a backend turns its transport (VMMCALL or TDVMCALL registers, or
//! the GHCB page through [`page_request`]) into a [`Request`] and writes the
//! [`Outcome`] back the way its transport says.

pub(crate) mod console;
pub(crate) mod convert;
mod info;
pub(crate) mod page_request;
pub(crate) mod shared_buffer;

use crate::host::Host;
use crate::mmu::{PteFormat, VendorMmu};
use crate::stop::Stop;
use crate::vm::Vm;
use cloister_abi::{Call, Error};

/// One call as the workload made it: the raw number and four arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request {
    pub number: u64,
    pub args: [u64; 4],
}

/// What the workload gets back, or why it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success value (`>= 0`) or an error, already encoded for RAX.
    Return(u64),
    Stop(Stop),
}

/// Run `request` for `vm`.
pub fn dispatch<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    request: Request,
    host: &mut impl Host,
) -> Outcome {
    let [a0, a1, ..] = request.args;
    if vm.bench_hooks && request.number == cloister_abi::hypercall::bench::ZAP_PRIVATE {
        let zapped = vm.zap(0, u64::MAX, crate::mmu::Scope::Private, host);
        return Outcome::Return(zapped);
    }
    let result = match Call::from_raw(request.number) {
        None => Err(Error::UnknownCall),
        Some(call) if vm.allowed_calls & call.mask() == 0 => Err(Error::Denied),
        Some(Call::Exit) => return Outcome::Stop(Stop::Exited { status: a0 as u32 }),
        Some(Call::ConsoleWrite) => console::write(vm, a0, a1, host),
        Some(Call::Info) => info::info(vm, a0, a1, host),
        Some(Call::Measurement) => info::measurement(vm, a0, a1, host),
        Some(Call::MemoryConvert) => convert::convert(vm, request.args, host),
    };
    Outcome::Return(result.unwrap_or_else(Error::to_rax))
}

#[cfg(test)]
mod convert_tests;
#[cfg(test)]
mod page_request_tests;
#[cfg(test)]
mod tests;
