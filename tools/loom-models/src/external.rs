//! The external copy of one mirror entry: a TDX S-EPT leaf entry as TDH.MEM.PAGE.AUG and
//! TDH.MEM.PAGE.REMOVE change it.
//!
//! Its state is a plain (loom) `UnsafeCell` on purpose: the mirror entry's FROZEN lock is
//! the only thing ordering the threads that touch it, so two threads touching it without
//! the lock ordering them is itself a violation, and loom reports it ("Causality
//! violation", with the entry's creation here and both accesses).

use crate::{Format, MirrorEntry};
use cloister_core::mmu::PteFormat;
use cloister_core::mmu::frozen::EntryCell;
use loom::cell::UnsafeCell;

/// What the S-EPT entry holds and what was done to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeptState {
    /// The frame the entry maps; 0 when FREE.
    pub frame: u64,
    pub augs: u32,
    pub removes: u32,
}

pub struct SeptEntry {
    state: UnsafeCell<SeptState>,
}

impl SeptEntry {
    /// An entry mapping `frame` (0: FREE).
    pub fn new(frame: u64) -> Self {
        Self {
            state: UnsafeCell::new(SeptState {
                frame,
                ..SeptState::default()
            }),
        }
    }

    /// TDH.MEM.PAGE.AUG, by whoever holds the mirror entry's lock.
    pub fn aug(&self, mirror: &MirrorEntry, frame: u64) {
        assert_eq!(
            mirror.load(),
            Format::FROZEN,
            "PAGE.AUG ran while the mirror entry was not frozen"
        );
        self.update(|state| {
            assert_eq!(
                state.frame, 0,
                "PAGE.AUG over an S-EPT entry that is not FREE"
            );
            state.frame = frame;
            state.augs += 1;
        });
    }

    /// TDH.MEM.PAGE.REMOVE (after BLOCK and TRACK) of the leaf mapping `frame`.
    pub fn remove(&self, frame: u64) {
        self.update(|state| {
            assert_eq!(
                state.frame, frame,
                "PAGE.REMOVE of a frame the S-EPT entry does not map"
            );
            state.frame = 0;
            state.removes += 1;
        });
    }

    /// What the entry holds now. Loom reports the reader's location, not this one's.
    #[track_caller]
    pub fn state(&self) -> SeptState {
        // SAFETY: loom runs model threads one at a time and panics on an access not
        // ordered after the last write, before this read happens.
        self.state.with(|state| unsafe { *state })
    }

    #[track_caller]
    fn update(&self, change: impl FnOnce(&mut SeptState)) {
        // SAFETY: as in `state`; loom also panics on two unordered writers.
        self.state.with_mut(|state| change(unsafe { &mut *state }));
    }
}
