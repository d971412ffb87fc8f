//! Converting memory between private and shared, with the batching, resuming and
//! retries the hypervisor asks of its caller: MEMORY_CONVERT on the VMMCALL transport,
//! MapGPA on TDVMCALL, where private memory must also be accepted before use
//! ([`accept`]; [`to_private`] does it).

use crate::hypercall::{Transport, hypercall, transport};
use crate::{staging, tdcall};
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
}

/// Why [`accept`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// The range is not 4 KiB aligned, or wraps.
    Unaligned,
    /// TDG.MEM.PAGE.ACCEPT failed with this TDX status (such as
    /// TDX_OPERAND_INVALID for a GPA that is not private memory).
    Tdx(u64),
}

/// Counters of one conversion, for callers that want to see the batching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// MEMORY_CONVERT calls made (MapGPA TDVMCALLs on the TDVMCALL transport).
    pub calls: u64,
    /// Calls that answered BUSY and were retried (MEMORY_CONVERT only: MapGPA answers
    /// RETRY, counted in `calls`).
    pub busy: u64,
}

/// Make `ranges` shared: their contents are lost (they read as zero).
pub fn to_shared(ranges: &[ConvertRange]) -> Result<ConvertStats, ConvertError> {
    match transport() {
        Transport::Vmmcall => convert(ranges, CONVERT_TO_SHARED),
        Transport::Tdvmcall => map_gpa(ranges, true),
    }
}

/// Make `ranges` private again: their contents are lost (each page reads as zero on its
/// next touch). Retries while the hypervisor still uses part of them. On the TDVMCALL
/// transport the pages are then accepted, which zeroes them.
pub fn to_private(ranges: &[ConvertRange]) -> Result<ConvertStats, ConvertError> {
    match transport() {
        Transport::Vmmcall => convert(ranges, CONVERT_TO_PRIVATE),
        Transport::Tdvmcall => map_gpa(ranges, false),
    }
}

/// Make private memory `[gpa, gpa + len)` usable: on the TDVMCALL transport every page
/// must be accepted (TDG.MEM.PAGE.ACCEPT, which zeroes it) before its first use, and
/// touching a page that was not stops the workload. On VMMCALL private memory needs
/// no acceptance and this only checks the range. `gpa` and `len` must be 4 KiB
/// aligned.
pub fn accept(gpa: u64, len: u64) -> Result<(), AcceptError> {
    let aligned = gpa.is_multiple_of(PAGE) && len.is_multiple_of(PAGE);
    if !aligned || gpa.checked_add(len).is_none() {
        return Err(AcceptError::Unaligned);
    }
    match transport() {
        Transport::Vmmcall => Ok(()),
        Transport::Tdvmcall => tdcall::accept(gpa, len).map_err(AcceptError::Tdx),
    }
}

const PAGE: u64 = 4096;

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
