//! Converting memory between private and shared, with the batching, resuming and
//! retries the hypervisor asks of its caller: MEMORY_CONVERT on the VMMCALL transport,
//! MapGPA on TDVMCALL, where private memory must also be accepted before use
//! ([`accept`]; [`to_private`] does it), Page State Change requests on GHCB, where
//! private memory is validated with PVALIDATE on SEV-SNP hardware (not in model mode).

use crate::hypercall::{Transport, hypercall, transport};
use crate::{ghcb, staging, tdcall};
use cloister_abi::ghcb::PscOp;
use cloister_abi::hypercall::{
    CONVERT_MAX_ENTRIES, CONVERT_RANGE_SIZE, CONVERT_TO_PRIVATE, CONVERT_TO_SHARED, ConvertRange,
};
use cloister_abi::{Call, Error};

/// Why a conversion failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertError {
    /// More ranges than one call's list holds.
    TooManyRanges,
    /// The workload has no shared memory for the list.
    NoSharedMemory,
    /// The hypervisor refused (an error other than BUSY, which is retried).
    Hypervisor(Result<Error, i64>),
    /// TDVMCALL transport: MapGPA failed with this status (`tdcall::VMCALL_*`:
    /// INVALID_OPERAND or ALIGN_ERROR, or RETRY naming a GPA outside the range).
    MapGpa(u64),
    /// TDVMCALL transport: accepting the converted pages failed (see [`AcceptError`]).
    Accept(AcceptError),
    /// GHCB transport: the hypervisor answered a Page State Change with this error in
    /// `sw_exit_info_2` (`cloister_abi::ghcb::psc::PSC_ERROR_*`, or a GHCB error reason),
    /// or the SDK refused a range no entry can name, converting nothing
    /// (`PSC_ERROR_INVALID_ENTRY`: not 4 KiB aligned, empty, wrapping, or beyond 52-bit
    /// guest-physical addresses).
    Psc(u64),
    /// GHCB transport: the hypervisor broke the Page State Change protocol: it moved
    /// `cur_entry` or `cur_page` backwards, changed `end_entry` or the header's reserved
    /// field, or reported a refusal in `sw_exit_info_1` without a reason.
    PscProtocol,
    /// GHCB transport on SEV-SNP hardware: PVALIDATE of the page at `gpa` failed with
    /// `code` (`crate::pvalidate::FAIL_*`): rescinding before a conversion to shared
    /// (nothing converted from that request on), or validating after one to private.
    Pvalidate { gpa: u64, code: u32 },
}

/// Why [`accept`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// The range is not 4 KiB aligned, or wraps.
    Unaligned,
    /// TDG.MEM.PAGE.ACCEPT failed with this TDX status (such as
    /// TDX_OPERAND_INVALID for a GPA that is not private memory).
    Tdx(u64),
    /// GHCB transport on SEV-SNP hardware: PVALIDATE of the page at `gpa` failed with
    /// `code` (`crate::pvalidate::FAIL_*`).
    Pvalidate { gpa: u64, code: u32 },
}

/// Counters of one conversion, for callers that want to see the batching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// MEMORY_CONVERT calls made (MapGPA TDVMCALLs on the TDVMCALL transport, Page
    /// State Change VMGEXITs on GHCB).
    pub calls: u64,
    /// Calls that answered BUSY and were retried (MEMORY_CONVERT; on GHCB, VMGEXITs
    /// after which the hypervisor had done none of the request; MapGPA answers RETRY,
    /// counted in `calls`).
    pub busy: u64,
}

/// Make `ranges` shared: their contents are lost (they read as zero).
pub fn to_shared(ranges: &[ConvertRange]) -> Result<ConvertStats, ConvertError> {
    match transport() {
        Transport::Vmmcall => convert(ranges, CONVERT_TO_SHARED),
        Transport::Tdvmcall => map_gpa(ranges, true),
        Transport::Ghcb => page_state_change(ranges, PscOp::SHARED),
    }
}

/// Make `ranges` private again: their contents are lost (each page reads as zero on its
/// next touch). Retries while the hypervisor still uses part of them. On the TDVMCALL
/// transport the pages are then accepted, which zeroes them; on GHCB with SEV-SNP
/// hardware they are validated.
pub fn to_private(ranges: &[ConvertRange]) -> Result<ConvertStats, ConvertError> {
    match transport() {
        Transport::Vmmcall => convert(ranges, CONVERT_TO_PRIVATE),
        Transport::Tdvmcall => map_gpa(ranges, false),
        Transport::Ghcb => page_state_change(ranges, PscOp::PRIVATE),
    }
}

/// Make private memory `[gpa, gpa + len)` usable: on the TDVMCALL transport every page
/// must be accepted (TDG.MEM.PAGE.ACCEPT, which zeroes it) before its first use, and
/// touching a page that was not stops the workload. On GHCB with SEV-SNP hardware
/// every page is validated with PVALIDATE (one already valid is fine). On VMMCALL, and
/// on GHCB in model mode (the hypervisor's model validates), private memory needs no
/// acceptance and this only checks the range. `gpa` and `len` must be 4 KiB aligned.
pub fn accept(gpa: u64, len: u64) -> Result<(), AcceptError> {
    let aligned = gpa.is_multiple_of(PAGE) && len.is_multiple_of(PAGE);
    if !aligned || gpa.checked_add(len).is_none() {
        return Err(AcceptError::Unaligned);
    }
    match transport() {
        Transport::Vmmcall => Ok(()),
        Transport::Tdvmcall => tdcall::accept(gpa, len).map_err(AcceptError::Tdx),
        Transport::Ghcb => {
            ghcb::accept(gpa, len).map_err(|(gpa, code)| AcceptError::Pvalidate { gpa, code })
        }
    }
}

const PAGE: u64 = 4096;

/// Page State Change requests through the GHCB for each range.
fn page_state_change(ranges: &[ConvertRange], op: PscOp) -> Result<ConvertStats, ConvertError> {
    if ranges.len() as u64 > CONVERT_MAX_ENTRIES {
        return Err(ConvertError::TooManyRanges);
    }
    ghcb::convert(ranges, op)
}

/// MapGPA each range, to shared (with the shared bit) or to private, then accept what
/// became private.
fn map_gpa(ranges: &[ConvertRange], shared: bool) -> Result<ConvertStats, ConvertError> {
    if ranges.len() as u64 > CONVERT_MAX_ENTRIES {
        return Err(ConvertError::TooManyRanges);
    }
    let mut stats = ConvertStats::default();
    for range in ranges {
        let len = range
            .pages
            .checked_mul(PAGE)
            .ok_or(ConvertError::MapGpa(tdcall::VMCALL_INVALID_OPERAND))?;
        let gpa = if shared {
            range.gpa | tdcall::SHARED_BIT
        } else {
            range.gpa & !tdcall::SHARED_BIT
        };
        stats.calls += tdcall::map_gpa(gpa, len).map_err(ConvertError::MapGpa)?;
        if !shared {
            accept(gpa, len).map_err(ConvertError::Accept)?;
        }
    }
    Ok(stats)
}

fn convert(ranges: &[ConvertRange], direction: u64) -> Result<ConvertStats, ConvertError> {
    if ranges.len() as u64 > CONVERT_MAX_ENTRIES {
        return Err(ConvertError::TooManyRanges);
    }
    let gpa = staging::gpa().ok_or(ConvertError::NoSharedMemory)?;
    let total: u64 = ranges.iter().map(|r| r.pages).sum();
    let mut stats = ConvertStats::default();
    let mut done = 0;
    loop {
        // The list goes into the staging page for every call: a console write in between
        // may have used the page.
        let page = staging::page().ok_or(ConvertError::NoSharedMemory)?;
        for (entry, range) in page
            .chunks_exact_mut(CONVERT_RANGE_SIZE as usize)
            .zip(ranges)
        {
            entry[..8].copy_from_slice(&range.gpa.to_le_bytes());
            entry[8..].copy_from_slice(&range.pages.to_le_bytes());
        }
        stats.calls += 1;
        match hypercall(
            Call::MemoryConvert,
            [gpa, ranges.len() as u64, direction, done],
        ) {
            Ok(progress) => done = progress,
            Err(Ok(Error::Busy)) => stats.busy += 1,
            Err(error) => return Err(ConvertError::Hypervisor(error)),
        }
        if done >= total {
            return Ok(stats);
        }
    }
}
