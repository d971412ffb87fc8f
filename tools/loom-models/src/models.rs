//! The models: threads racing on one private GPA, and the properties every interleaving
//! must keep. Each takes the seeded bug to run with ([`Flaw::None`] and `freeze: true`
//! are the protocol as core implements and uses it).

use crate::link::{Region, fault_in_unlinked_region};
use crate::{Faulted, Flaw, Format, fault, leaf, zap};
use crate::{FrameState, Frames, Gpa, MirrorEntry, SeptEntry};
use cloister_core::mmu::PteFormat;
use cloister_core::mmu::frozen::EntryCell;
use loom::sync::Arc;
use loom::thread;

const FRAME_A: u64 = 0x10_0000;
const FRAME_B: u64 = 0x20_0000;

/// Two vCPUs fault the same GPA in, each with a frame of its own.
///
/// Exactly one installs its leaf and pushes it to the S-EPT, with exactly one PAGE.AUG,
/// made while the mirror entry is frozen; the other retries until it sees that leaf,
/// and gives its frame back. A vCPU whose fault is over never sees a leaf the S-EPT
/// does not map yet (a half-made entry).
pub fn two_vcpus_fault_one_gpa(flaw: Flaw) -> impl Fn() + Sync + Send + 'static {
    move || {
        let gpa = Arc::new(Gpa {
            mirror: MirrorEntry::new(0, flaw),
            sept: SeptEntry::new(0),
            frames: Frames::new(&[(FRAME_A, FrameState::Owned), (FRAME_B, FrameState::Owned)]),
        });
        let vcpus: Vec<_> = [FRAME_A, FRAME_B]
            .into_iter()
            .map(|frame| {
                let gpa = gpa.clone();
                thread::spawn(move || {
                    let faulted = fault(&gpa, frame);
                    let (Faulted::Installed(seen) | Faulted::Spurious(seen)) = faulted;
                    assert_eq!(
                        gpa.sept.state().frame,
                        Format::address(seen),
                        "a vCPU saw a leaf the S-EPT does not map yet"
                    );
                    faulted
                })
            })
            .collect();
        let faults: Vec<Faulted> = vcpus.into_iter().map(|v| v.join().unwrap()).collect();

        let last = gpa.mirror.load();
        let sept = gpa.sept.state();
        assert_eq!(sept.augs, 1, "PAGE.AUG ran {} times for one GPA", sept.augs);
        assert_eq!(
            sept.frame,
            Format::address(last),
            "the S-EPT and the mirror disagree"
        );
        let winner = Format::address(last);
        assert!(
            last == leaf(FRAME_A) || last == leaf(FRAME_B),
            "the mirror ended with {last:#x}, not a whole leaf"
        );
        let installed = faults.iter().filter(|f| **f == Faulted::Installed(last));
        assert_eq!(installed.count(), 1, "one vCPU installs: {faults:?}");
        assert!(
            faults.contains(&Faulted::Spurious(last)),
            "the other vCPU ends seeing the winner's leaf: {faults:?}"
        );
        for frame in [FRAME_A, FRAME_B] {
            let expected = if frame == winner {
                FrameState::Mapped
            } else {
                FrameState::Released
            };
            assert_eq!(gpa.frames.state(frame), expected, "frame {frame:#x}");
        }
    }
}

/// Which racer of [`fault_races_zap`] is spawned first. Both orders are run: loom's
/// exploration depends on it (loom 0.7 can skip the alternatives of a spawned thread's
/// first atomic load, tokio-rs/loom#392), so a single order may leave interleavings out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Racer {
    Fault,
    Zap,
}

/// A vCPU faults a GPA in while a zap takes the GPA's private leaf out. `mapped`: a leaf
/// is there before both start (the zap has something to take while the fault runs);
/// otherwise the fault's leaf is the only one. `freeze` is what the zap passes the
/// protocol (true for a table with an external copy, as the mirror is).
///
/// A zap skips an entry another walker holds frozen. When both are done the mirror and
/// the S-EPT agree, no entry is left frozen, PAGE.AUG only ever met a FREE S-EPT entry
/// and PAGE.REMOVE the frame it mapped, and every frame is either mapped by the final
/// leaf or released, released once, never while the mirror entry maps it.
pub fn fault_races_zap(
    mapped: bool,
    freeze: bool,
    spawned_first: Racer,
) -> impl Fn() + Sync + Send + 'static {
    move || {
        let (start, vcpu_frame, frames) = if mapped {
            let frames = [(FRAME_A, FrameState::Mapped), (FRAME_B, FrameState::Owned)];
            (FRAME_A, FRAME_B, Frames::new(&frames))
        } else {
            (0, FRAME_A, Frames::new(&[(FRAME_A, FrameState::Owned)]))
        };
        let gpa = Arc::new(Gpa {
            mirror: MirrorEntry::new(if mapped { leaf(start) } else { 0 }, Flaw::None),
            sept: SeptEntry::new(start),
            frames,
        });
        let spawn_zap = || {
            let gpa = gpa.clone();
            thread::spawn(move || zap(&gpa, freeze))
        };
        let spawn_fault = || {
            let gpa = gpa.clone();
            thread::spawn(move || fault(&gpa, vcpu_frame))
        };
        let (vcpu, zapper) = match spawned_first {
            Racer::Zap => {
                let zapper = spawn_zap();
                (spawn_fault(), zapper)
            }
            Racer::Fault => {
                let vcpu = spawn_fault();
                (vcpu, spawn_zap())
            }
        };
        let faulted = vcpu.join().unwrap();
        let zapped = zapper.join().unwrap();

        let last = gpa.mirror.load();
        assert_ne!(last, Format::FROZEN, "an entry was left frozen");
        let sept = gpa.sept.state();
        let final_frame = if Format::is_present(last) {
            Format::address(last)
        } else {
            0
        };
        assert_eq!(sept.frame, final_frame, "the S-EPT and the mirror disagree");
        if mapped {
            assert_eq!(zapped, Some(start), "the zap takes the leaf that was there");
        } else if zapped.is_some() {
            assert_eq!(last, 0, "a zapped leaf came back: {faulted:?}");
        }
        let frames = if mapped {
            &[FRAME_A, FRAME_B][..]
        } else {
            &[FRAME_A][..]
        };
        for &frame in frames {
            let expected = if frame == final_frame {
                FrameState::Mapped
            } else {
                FrameState::Released
            };
            assert_eq!(gpa.frames.state(frame), expected, "frame {frame:#x}");
        }
    }
}

/// Two vCPUs fault different GPAs of one 2 MiB region whose last-level table is not
/// linked yet, each bringing a table page of its own.
///
/// Exactly one page gets linked, with exactly one SEPT.ADD made while the parent entry
/// is frozen; the mirror and the S-EPT link the same page; both leaves go into it, each
/// with one PAGE.AUG, never before the SEPT.ADD above it; the other page stays unlinked.
pub fn two_vcpus_link_one_table(flaw: Flaw) -> impl Fn() + Sync + Send + 'static {
    move || {
        let frames = [FRAME_A, FRAME_B];
        let region = Arc::new(Region::new(frames.len(), flaw));
        let vcpus: Vec<_> = (0..frames.len())
            .map(|vcpu| {
                let region = region.clone();
                thread::spawn(move || fault_in_unlinked_region(&region, vcpu, frames[vcpu]))
            })
            .collect();
        let pages: Vec<u64> = vcpus.into_iter().map(|v| v.join().unwrap()).collect();

        let parent = region.parent.load();
        assert!(
            Format::is_present(parent),
            "the parent ended with {parent:#x}, not a table link"
        );
        let linked = Format::address(parent);
        let (sept_page, adds) = region.sept_link();
        assert_eq!(adds, 1, "SEPT.ADD ran {adds} times for one table");
        assert_eq!(
            sept_page, linked,
            "the S-EPT and the mirror link different pages"
        );
        assert_eq!(
            pages,
            [linked, linked],
            "both leaves go into the linked page"
        );
        let page = region.pages.iter().position(|p| p.pa == linked).unwrap();
        for (vcpu, &frame) in frames.iter().enumerate() {
            assert_eq!(region.pages[page].leaves[vcpu].load(), leaf(frame));
            let sept = region.sept_leaves[vcpu].state();
            assert_eq!(
                (sept.frame, sept.augs),
                (frame, 1),
                "GPA {vcpu}'s S-EPT leaf"
            );
            assert_eq!(
                region.is_linked(vcpu),
                vcpu == page,
                "only the linked page is marked linked"
            );
        }
    }
}
