//! What privmem asks of its user, who can touch memory and page tables.

use crate::PrivMemError;

/// Operations on host frames, in the order privmem calls them: a frame is scrubbed,
/// then prepared (ownership moves to the workload: pin, RMP assignment, cache flush),
/// and invalidated (ownership comes back: flush, RMP reclaim) before it is released.
pub trait FrameHooks {
    /// Overwrite `frames` frames at `pa` with zeros.
    fn scrub(&mut self, pa: u64, frames: u64);
    /// The vendor's prepare/pin step for frames about to be handed to the workload;
    /// `offset` is where they sit in the object (the vendor may bind a frame to the one
    /// guest-physical address it will be mapped at: SEV-SNP's RMP).
    fn prepare(&mut self, offset: u64, pa: u64, frames: u64) -> Result<(), PrivMemError>;
    /// The vendor's invalidate/unpin step for frames leaving the workload. A frame the
    /// vendor could not take back (SEV-SNP: an RMPUPDATE that failed for good) is passed
    /// to `quarantine` and is never handed out again: it may still be the guest's.
    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64));
}

/// Removes every second-level mapping of a range of the object. Called before any frame
/// in the range changes hands, so a frame is never released while mapped.
pub trait Unmapper {
    /// Unmap object offsets `[offset, offset + len)`. An error means some mapping could
    /// not be removed (an external table refused): the operation stops and no frame
    /// changes hands.
    fn unmap(&mut self, offset: u64, len: u64) -> Result<(), PrivMemError>;
}
