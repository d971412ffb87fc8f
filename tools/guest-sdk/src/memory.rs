//! Converting memory between private and shared (MEMORY_CONVERT), with the batching,
//! resuming and BUSY retries the call asks of its caller.

use crate::hypercall::hypercall;
use crate::staging;
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
}

/// Counters of one conversion, for callers that want to see the batching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// MEMORY_CONVERT calls made.
    pub calls: u64,
    /// Calls that answered BUSY and were retried.
    pub busy: u64,
}

/// Make `ranges` shared: their contents are lost (they read as zero).
pub fn to_shared(ranges: &[ConvertRange]) -> Result<ConvertStats, ConvertError> {
    convert(ranges, CONVERT_TO_SHARED)
}

/// Make `ranges` private again: their contents are lost (each page reads as zero on its
/// next touch). Retries while the hypervisor still uses part of them.
pub fn to_private(ranges: &[ConvertRange]) -> Result<ConvertStats, ConvertError> {
    convert(ranges, CONVERT_TO_PRIVATE)
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
