//! Raw hypercalls, following cloister_abi's register convention, over the transport
//! the boot info names: VMMCALL (SVM); TDG.VP.VMCALL when `features` has
//! `FEATURE_TRANSPORT_TDVMCALL` (TDX; see [`crate::tdcall`]); the GHCB page and VMGEXIT
//! when it has `FEATURE_TRANSPORT_GHCB` (SEV-SNP; see [`crate::ghcb`]). docs/abi.md,
//! Transports, describes each.

use cloister_abi::hypercall::{
    FEATURE_SNP_MODEL, FEATURE_TRANSPORT_GHCB, FEATURE_TRANSPORT_TDVMCALL,
};
use cloister_abi::{BootInfo, Call, Error};
use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

/// How calls reach the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The VMMCALL instruction (AMD SVM).
    Vmmcall,
    /// TDG.VP.VMCALL (Intel TDX): calls are vendor-specific TDVMCALLs, conversions are
    /// MapGPA, and private memory must be accepted before use.
    Tdvmcall,
    /// The GHCB (AMD SEV-SNP): calls travel in the GHCB page with VMGEXIT, conversions
    /// are Page State Change requests, and private memory is validated with PVALIDATE
    /// (by the hypervisor's model instead when the boot info has `FEATURE_SNP_MODEL`).
    Ghcb,
}

const VMMCALL: u8 = 0;
const TDVMCALL: u8 = 1;
const GHCB: u8 = 2;

/// The transport, set at start; VMMCALL until then.
static TRANSPORT: AtomicU8 = AtomicU8::new(VMMCALL);

/// Choose the transport from the boot info's feature bits, and set it up (called by
/// `_start` once the boot info's magic checks out, before the first call). The GHCB
/// transport registers its page with the hypervisor here, and stops the workload with
/// a GHCB termination request if that fails.
pub(crate) fn init(info: &BootInfo) {
    let transport = if info.features & FEATURE_TRANSPORT_TDVMCALL != 0 {
        TDVMCALL
    } else if info.features & FEATURE_TRANSPORT_GHCB != 0 {
        crate::ghcb::init(info.features & FEATURE_SNP_MODEL != 0);
        GHCB
    } else {
        VMMCALL
    };
    TRANSPORT.store(transport, Ordering::Relaxed);
}

/// The transport this workload's calls use.
pub fn transport() -> Transport {
    match TRANSPORT.load(Ordering::Relaxed) {
        TDVMCALL => Transport::Tdvmcall,
        GHCB => Transport::Ghcb,
        _ => Transport::Vmmcall,
    }
}

/// Make hypercall `call` with up to four arguments; returns the result decoded.
pub fn hypercall(call: Call, args: [u64; 4]) -> Result<u64, Result<Error, i64>> {
    cloister_abi::hypercall::decode_result(raw_hypercall(call as u64, args))
}

/// Make a hypercall with an arbitrary number (also for testing the hypervisor's
/// decoding); returns the raw result (RAX on VMMCALL, R10 on TDVMCALL, the GHCB's RAX
/// on GHCB).
#[inline]
pub fn raw_hypercall(number: u64, args: [u64; 4]) -> u64 {
    let transport = TRANSPORT.load(Ordering::Relaxed);
    if transport != VMMCALL {
        let [a0, a1, a2, a3] = args;
        return if transport == TDVMCALL {
            crate::tdcall::hypercall(number, a0, a1, a2, a3)
        } else {
            crate::ghcb::hypercall(number, a0, a1, a2, a3)
        };
    }
    let rax: u64;
    // SAFETY: VMMCALL traps to the hypervisor, which changes only RAX (and memory the
    // call names, hence no `nomem`). RBX is reserved by LLVM, so the first argument is
    // swapped in and out around the call.
    unsafe {
        asm!(
            "xchg rbx, {arg0}",
            "vmmcall",
            "xchg rbx, {arg0}",
            arg0 = inout(reg) args[0] => _,
            inout("rax") number => rax,
            in("rcx") args[1],
            in("rdx") args[2],
            in("rsi") args[3],
            options(nostack),
        );
    }
    rax
}

/// Stop the workload with `status`.
pub fn exit(status: u32) -> ! {
    let _ = hypercall(Call::Exit, [u64::from(status), 0, 0, 0]);
    // EXIT does not return; if a hypervisor ever did, spin rather than run on.
    loop {
        core::hint::spin_loop();
    }
}
