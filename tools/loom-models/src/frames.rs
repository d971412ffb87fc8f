//! Who holds each frame a model uses: the faulting vCPU that took it, a leaf mapping it,
//! or nobody any more.

use crate::{Format, MirrorEntry};
use cloister_core::mmu::PteFormat;
use cloister_core::mmu::frozen::EntryCell;
use loom::cell::UnsafeCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameState {
    /// Taken by a faulting vCPU, not mapped yet.
    Owned,
    Mapped,
    Released,
}

pub struct Frames {
    frames: Vec<(u64, UnsafeCell<FrameState>)>,
}

impl Frames {
    pub fn new(frames: &[(u64, FrameState)]) -> Self {
        let frames = frames
            .iter()
            .map(|&(frame, state)| (frame, UnsafeCell::new(state)))
            .collect();
        Self { frames }
    }

    /// A leaf for `frame`, taken by the vCPU installing it, is being published.
    pub fn map(&self, frame: u64) {
        self.update(frame, |state| {
            assert_eq!(
                *state,
                FrameState::Owned,
                "mapped a frame its vCPU did not own"
            );
            *state = FrameState::Mapped;
        });
    }

    /// Give `frame` back: the leaf that mapped it is gone, or never got in.
    pub fn release(&self, frame: u64, mirror: &MirrorEntry) {
        let pte = mirror.load();
        assert!(
            !(Format::is_present(pte) && Format::address(pte) == frame),
            "frame {frame:#x} released while the mirror entry maps it"
        );
        self.update(frame, |state| {
            assert_ne!(
                *state,
                FrameState::Released,
                "frame {frame:#x} released twice"
            );
            *state = FrameState::Released;
        });
    }

    pub fn state(&self, frame: u64) -> FrameState {
        // SAFETY: loom runs model threads one at a time and panics on an access not
        // ordered after the last write, before this read happens.
        self.cell(frame).with(|state| unsafe { *state })
    }

    fn update(&self, frame: u64, change: impl FnOnce(&mut FrameState)) {
        // SAFETY: as in `state`; loom also panics on two unordered writers.
        self.cell(frame)
            .with_mut(|state| change(unsafe { &mut *state }));
    }

    fn cell(&self, frame: u64) -> &UnsafeCell<FrameState> {
        let found = self.frames.iter().find(|(f, _)| *f == frame);
        &found
            .unwrap_or_else(|| panic!("frame {frame:#x} is not in the model"))
            .1
    }
}
