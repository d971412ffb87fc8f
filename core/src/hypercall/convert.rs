//! MEMORY_CONVERT: private/shared conversion of a list of ranges, a bounded batch per
//! call. The list is copied out of shared memory and validated whole before anything
//! changes, on every call; the workload may rewrite it meanwhile without effect.

use super::shared_buffer::SharedBuffer;
use crate::host::Host;
use crate::mmu::{PteFormat, VendorMmu};
use crate::vcpu::ConvertReply;
use crate::vm::{ConvertError, Vm};
use cloister_abi::hypercall::{
    CONVERT_MAX_ENTRIES, CONVERT_MAX_PAGES_PER_CALL, CONVERT_RANGE_SIZE, CONVERT_TO_PRIVATE,
    CONVERT_TO_SHARED,
};
use cloister_abi::{Error, MemoryKind};

const PAGE: u64 = 4096;
type Ranges = heapless::Vec<(u64, u64), { CONVERT_MAX_ENTRIES as usize }>;

pub(super) fn convert<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    args: [u64; 4],
    host: &mut impl Host,
) -> Result<u64, Error> {
    let [list_gpa, entries, direction, resume] = args;
    let to = match direction {
        CONVERT_TO_SHARED => MemoryKind::Shared,
        CONVERT_TO_PRIVATE => MemoryKind::Private,
        _ => return Err(Error::InvalidArgument),
    };
    if entries == 0 || entries > CONVERT_MAX_ENTRIES {
        return Err(Error::InvalidArgument);
    }
    let ranges = read_list(vm, list_gpa, entries, host)?;
    let total = validate(vm, &ranges)?;
    if resume > total {
        return Err(Error::InvalidArgument);
    }
    let mut done = resume;
    let mut budget = CONVERT_MAX_PAGES_PER_CALL;
    let mut skip = resume;
    let mut steps = Ranges::new();
    for step in merged(&ranges, |gpa, pages| vm.is_private_range(gpa, pages * PAGE)) {
        // At most one step per entry: the list's own capacity.
        let _ = steps.push(step);
    }
    for (gpa, pages) in steps {
        if skip >= pages {
            skip -= pages;
            continue;
        }
        let start = gpa + skip * PAGE;
        let n = (pages - skip).min(budget);
        skip = 0;
        vm.convert(start, n * PAGE, to, host).map_err(|e| match e {
            ConvertError::Busy => Error::Busy,
            ConvertError::NotConvertible | ConvertError::Private(_) => Error::InvalidArgument,
        })?;
        done += n;
        budget -= n;
        if budget == 0 {
            break;
        }
    }
    Ok(done)
}

/// The list, copied out of shared memory once.
fn read_list<F: PteFormat, V: VendorMmu>(
    vm: &Vm<F, V>,
    gpa: u64,
    entries: u64,
    host: &mut impl Host,
) -> Result<Ranges, Error> {
    let buffer = SharedBuffer::new(vm, gpa, entries * CONVERT_RANGE_SIZE)?;
    let mut bytes = [0u8; (CONVERT_MAX_ENTRIES * CONVERT_RANGE_SIZE) as usize];
    let mut filled = 0;
    buffer.read(host, |_, chunk| {
        bytes[filled..filled + chunk.len()].copy_from_slice(chunk);
        filled += chunk.len();
    });
    let mut ranges = Ranges::new();
    for entry in bytes[..filled].chunks_exact(CONVERT_RANGE_SIZE as usize) {
        let word = |i: usize| u64::from_le_bytes(entry[i..i + 8].try_into().unwrap_or([0; 8]));
        let _ = ranges.push((word(0), word(8)));
    }
    Ok(ranges)
}

/// Every entry aligned, non-empty, not wrapping, inside one private slot, and no two
/// overlapping. Returns the total number of pages.
fn validate<F: PteFormat, V: VendorMmu>(vm: &Vm<F, V>, ranges: &Ranges) -> Result<u64, Error> {
    let mut total = 0u64;
    for &(gpa, pages) in ranges {
        let len = pages
            .checked_mul(PAGE)
            .filter(|_| pages > 0)
            .ok_or(Error::InvalidArgument)?;
        if !gpa.is_multiple_of(PAGE)
            || gpa.checked_add(len).is_none()
            || !vm.is_private_range(gpa, len)
        {
            return Err(Error::InvalidArgument);
        }
        total += pages;
    }
    let mut sorted = ranges.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0].0 + w[0].1 * PAGE > w[1].0) {
        return Err(Error::InvalidArgument);
    }
    Ok(total)
}

/// The ranges in list order, each run of contiguous entries merged into one while
/// `one_slot` says the merged range stays convertible as one (inside one slot: entries
/// that merely touch across a slot boundary stay apart, each valid on its own).
fn merged<'a>(
    ranges: &'a Ranges,
    one_slot: impl Fn(u64, u64) -> bool + 'a,
) -> impl Iterator<Item = (u64, u64)> + 'a {
    let mut i = 0;
    core::iter::from_fn(move || {
        let &(gpa, mut pages) = ranges.get(i)?;
        i += 1;
        while let Some(&(next, more)) = ranges.get(i) {
            if next != gpa + pages * PAGE || !one_slot(gpa, pages + more) {
                break;
            }
            pages += more;
            i += 1;
        }
        Some((gpa, pages))
    })
}

/// A conversion the workload asked for by its transport's own request (TDX MapGPA): at
/// most [`CONVERT_MAX_PAGES_PER_CALL`] pages per exit, the rest answered with a retry
/// from where this step stopped (and from the start when the range is busy).
pub(crate) fn request<F: PteFormat, V: VendorMmu>(
    vm: &mut Vm<F, V>,
    gpa: u64,
    len: u64,
    to_private: bool,
    host: &mut impl Host,
) -> ConvertReply {
    if !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return ConvertReply::Misaligned;
    }
    if len == 0 || gpa.checked_add(len).is_none() || !vm.is_private_range(gpa, len) {
        return ConvertReply::Invalid;
    }
    let to = if to_private {
        MemoryKind::Private
    } else {
        MemoryKind::Shared
    };
    let step = len.min(CONVERT_MAX_PAGES_PER_CALL * PAGE);
    match vm.convert(gpa, step, to, host) {
        Ok(_) if step == len => ConvertReply::Done,
        Ok(_) => ConvertReply::Retry { next: gpa + step },
        Err(ConvertError::Busy) => ConvertReply::Retry { next: gpa },
        Err(ConvertError::NotConvertible | ConvertError::Private(_)) => ConvertReply::Invalid,
    }
}
