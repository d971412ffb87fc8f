//! What the model threads run: a vCPU faulting a GPA in and a zap taking its leaf out,
//! each through core's FROZEN-entry protocol exactly as the table engine uses it.

use crate::{Format, Frames, MirrorEntry, SeptEntry};
use cloister_core::mmu::frozen::{self, EntryCell, Refusal};
use cloister_core::mmu::{MmuError, PageSize, Perms, PteFormat};

/// One private GPA: its mirror entry, the S-EPT entry behind it and the frames in play.
pub struct Gpa {
    pub mirror: MirrorEntry,
    pub sept: SeptEntry,
    pub frames: Frames,
}

/// The private 4 KiB leaf mapping `frame`.
pub fn leaf(frame: u64) -> u64 {
    Format::leaf(frame, PageSize::Size4K, Perms::ALL) | Format::PINNED
}

/// How a fault ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faulted {
    /// This vCPU installed the leaf.
    Installed(u64),
    /// Another leaf was there; this vCPU gave its frame back.
    Spurious(u64),
}

/// A vCPU's fault on `gpa` with the frame it took: install a leaf for it, pushing it to
/// the S-EPT (PAGE.AUG) while the mirror entry is frozen; on contention retry from a
/// fresh look at the entry, as core's fault path does on [`MmuError::Frozen`].
pub fn fault(gpa: &Gpa, frame: u64) -> Faulted {
    loop {
        let installed = frozen::install::<Format, _, _>(
            &mut &*gpa,
            |gpa| &gpa.mirror,
            leaf(frame),
            |gpa| {
                gpa.sept.aug(&gpa.mirror, frame);
                gpa.frames.map(frame);
                Ok(())
            },
        );
        match installed {
            Ok(()) => return Faulted::Installed(leaf(frame)),
            Err(MmuError::AlreadyMapped { pte }) => {
                gpa.frames.release(frame, &gpa.mirror);
                return Faulted::Spurious(pte);
            }
            Err(MmuError::Frozen) => loom::thread::yield_now(),
            Err(other) => panic!("the fault failed: {other:?}"),
        }
    }
}

/// A zap of `gpa`'s private leaf: a vacant or frozen entry is skipped (as the table's
/// zap skips every non-present entry); a leaf leaves the S-EPT (PAGE.REMOVE) and then
/// the mirror, and its frame is released. `freeze` is what the table passes: true for a
/// table with an external copy. Returns the frame released.
pub fn zap(gpa: &Gpa, freeze: bool) -> Option<u64> {
    let seen = gpa.mirror.load();
    if !Format::is_present(seen) {
        return None;
    }
    let frame = Format::address(seen);
    let taken = frozen::take_leaf::<Format, _, _, ()>(
        &mut &*gpa,
        |gpa| &gpa.mirror,
        seen,
        freeze,
        |gpa| {
            gpa.sept.remove(frame);
            Ok(())
        },
    );
    match taken {
        Ok(()) => {
            gpa.frames.release(frame, &gpa.mirror);
            Some(frame)
        }
        Err(Refusal::Contended) => None,
        Err(other) => panic!("the zap failed: {other:?}"),
    }
}
