//! PVALIDATE: the SEV-SNP guest's side of private memory. A private page must be
//! validated before use and its validation rescinded before it becomes shared (docs
//! confidential-memory spec D.2: private to shared is PVALIDATE(rescind) then Page
//! State Change; shared to private is Page State Change then PVALIDATE(validate)).
//!
//! Only on SEV-SNP hardware: when the boot info has `FEATURE_SNP_MODEL` the CPU has no
//! PVALIDATE (QEMU) and the hypervisor's model validates in the workload's stead, so
//! the callers skip it. Not run anywhere yet: no SEV-SNP hardware in the loop.

use core::arch::asm;

/// PVALIDATE result: a bad input (not a guest page, or not private to this guest).
pub const FAIL_INPUT: u32 = 1;
/// PVALIDATE result: the RMP entry's page size is not the one asked for.
pub const FAIL_SIZEMISMATCH: u32 = 6;

const PAGE_4K: u64 = 1 << 12;
const PAGE_2M: u64 = 1 << 21;

/// PVALIDATE the page at `va` (4 KiB, or 2 MiB when `huge`): validate, or rescind
/// when `validate` is false. `Ok(true)`: changed; `Ok(false)`: it already was in that
/// state (CF set, nothing updated); `Err`: the result code.
fn pvalidate(va: u64, huge: bool, validate: bool) -> Result<bool, u32> {
    let result: u64;
    let unchanged: u8;
    // SAFETY: PVALIDATE (F2 0F 01 FF) with RAX = the page's virtual address (workloads
    // are identity mapped: VA = GPA), RCX = page size, RDX = validate; it returns the
    // result in EAX and sets CF when nothing changed, and touches no other register, no
    // stack and no memory contents (the page's RMP entry only; rescinding makes the
    // page unusable, which the caller wants). Executed on SEV-SNP hardware only: the
    // callers skip it in model mode, where the instruction does not exist.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xff", // PVALIDATE
            "setc {unchanged}",
            unchanged = out(reg_byte) unchanged,
            inout("rax") va => result,
            in("rcx") u64::from(huge),
            in("rdx") u64::from(validate),
            options(nostack),
        );
    }
    match result as u32 {
        0 => Ok(unchanged == 0),
        code => Err(code),
    }
}

/// PVALIDATE every page of `[gpa, gpa + pages * 4 KiB)` (4 KiB aligned): 2 MiB at a
/// time where aligned, 4 KiB elsewhere and where the RMP entry is 4 KiB
/// ([`FAIL_SIZEMISMATCH`]). A page already in the state asked for is fine: converting a
/// page to the state it has changes nothing (docs/abi.md). Returns the failing page and
/// its result code.
pub(crate) fn range(gpa: u64, pages: u64, validate: bool) -> Result<(), (u64, u32)> {
    let end = gpa.saturating_add(pages.saturating_mul(PAGE_4K));
    let mut at = gpa;
    while at < end {
        if at.is_multiple_of(PAGE_2M) && end - at >= PAGE_2M {
            match pvalidate(at, true, validate) {
                Ok(_) => {
                    at += PAGE_2M;
                    continue;
                }
                Err(FAIL_SIZEMISMATCH) => {}
                Err(code) => return Err((at, code)),
            }
        }
        pvalidate(at, false, validate).map_err(|code| (at, code))?;
        at += PAGE_4K;
    }
    Ok(())
}
