//! Raw hypercalls over VMMCALL, following cloister_abi's register convention.

use cloister_abi::{Call, Error};
use core::arch::asm;

/// Make hypercall `call` with up to four arguments; returns RAX decoded.
pub fn hypercall(call: Call, args: [u64; 4]) -> Result<u64, Result<Error, i64>> {
    cloister_abi::hypercall::decode_result(raw_hypercall(call as u64, args))
}

/// Make a hypercall with an arbitrary number in RAX (also for testing the hypervisor's
/// decoding); returns raw RAX.
pub fn raw_hypercall(number: u64, args: [u64; 4]) -> u64 {
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
