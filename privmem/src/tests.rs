//! The private memory object against the conformance items that concern it (named
//! after ../shared/specs/confidential-memory.md §H).

use crate::*;
use alloc::vec;
use alloc::vec::Vec;

const BASE: u64 = 0x1000_0000;
const VM: VmId = VmId(1);

/// Every call, in order, so tests can check what happened before what.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
    refuse_prepare: bool,
    refuse_unmap: Option<u64>,
    /// Frames the vendor cannot take back.
    quarantine: Vec<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Scrub(u64, u64),
    Prepare(u64, u64),
    Invalidate(u64, u64),
    Unmap(u64, u64),
}

impl FrameHooks for Log {
    fn scrub(&mut self, pa: u64, frames: u64) {
        self.events.push(Event::Scrub(pa, frames));
    }
    fn prepare(&mut self, _offset: u64, pa: u64, frames: u64) -> Result<(), PrivMemError> {
        if self.refuse_prepare {
            return Err(PrivMemError::Vendor { code: 7 });
        }
        self.events.push(Event::Prepare(pa, frames));
        Ok(())
    }
    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        self.events.push(Event::Invalidate(pa, frames));
        (pa..pa + frames * FRAME_SIZE)
            .step_by(FRAME_SIZE as usize)
            .filter(|pa| self.quarantine.contains(pa))
            .for_each(quarantine);
    }
}

impl Unmapper for Log {
    fn unmap(&mut self, offset: u64, len: u64) -> Result<(), PrivMemError> {
        self.events.push(Event::Unmap(offset, len));
        match self.refuse_unmap {
            Some(code) => Err(PrivMemError::Unmap { code }),
            None => Ok(()),
        }
    }
}

fn object(size: u64) -> PrivateMemory {
    let mut memory = PrivateMemory::new(BASE, size);
    memory.bind(VM).unwrap();
    memory
}

#[test]
fn pool_06_first_use_scrubs_then_prepares_and_later_uses_touch_nothing() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    let frame = memory.get_pfn(VM, 0x3123, &mut log).unwrap();
    assert_eq!(
        frame,
        Frame {
            pa: BASE + 0x3000,
            fresh: true
        }
    );
    assert_eq!(
        log.events,
        [
            Event::Scrub(BASE + 0x3000, 1),
            Event::Prepare(BASE + 0x3000, 1)
        ]
    );
    log.events.clear();
    assert_eq!(
        memory.get_pfn(VM, 0x3000, &mut log).unwrap(),
        Frame {
            pa: BASE + 0x3000,
            fresh: false
        }
    );
    assert!(log.events.is_empty(), "no second scrub or prepare");
    assert_eq!(memory.prepared_frames(), 1);
}

#[test]
fn pin_03_pin_04_the_same_frame_every_time_nothing_relocates() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    let first = memory.get_pfn(VM, 0x5000, &mut log).unwrap().pa;
    for _ in 0..3 {
        assert_eq!(memory.get_pfn(VM, 0x5000, &mut log).unwrap().pa, first);
    }
    // The frame of an offset is fixed by construction: base + offset.
    assert_eq!(first, BASE + 0x5000);
}

#[test]
fn pin_01_pool_04_punch_hole_unmaps_before_releasing_any_frame() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    for offset in [0x1000, 0x2000, 0x4000] {
        memory.get_pfn(VM, offset, &mut log).unwrap();
    }
    log.events.clear();
    assert_eq!(memory.punch_hole(VM, 0x1000, 0x4000, &mut log).unwrap(), 3);
    assert_eq!(
        log.events,
        [
            Event::Unmap(0x1000, 0x4000),
            Event::Invalidate(BASE + 0x1000, 2),
            Event::Invalidate(BASE + 0x4000, 1),
        ]
    );
    assert_eq!(memory.prepared_frames(), 0);
    assert_eq!(memory.state(0x2000), PageState::Free);
    // Reuse after the hole scrubs again.
    log.events.clear();
    assert!(memory.get_pfn(VM, 0x2000, &mut log).unwrap().fresh);
    assert_eq!(log.events[0], Event::Scrub(BASE + 0x2000, 1));
}

#[test]
fn pool_01_pool_02_one_binding_at_a_time() {
    let mut memory = object(0x10_0000);
    assert_eq!(
        memory.bind(VmId(2)),
        Err(PrivMemError::BoundElsewhere { vm: 1 })
    );
    // A second memslot of the same VM cannot bind it either.
    assert_eq!(memory.bind(VM), Err(PrivMemError::BoundElsewhere { vm: 1 }));
    let mut log = Log::default();
    assert_eq!(
        memory.get_pfn(VmId(2), 0, &mut log),
        Err(PrivMemError::NotBound)
    );
}

#[test]
fn pool_07_release_unmaps_keeps_frames_and_refuses_use_after_release() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    memory.get_pfn(VM, 0x7000, &mut log).unwrap();
    let mut unmaps = Log::default();
    memory.release(VM, &mut unmaps).unwrap();
    assert_eq!(unmaps.events, [Event::Unmap(0, 0x10_0000)]);
    assert_eq!(
        memory.prepared_frames(),
        1,
        "frames live with the object, not the VM"
    );
    assert_eq!(
        memory.get_pfn(VM, 0x7000, &mut log),
        Err(PrivMemError::NotBound)
    );
    // A new VM instance binds the same object: the frame is still prepared.
    memory.bind(VmId(2)).unwrap();
    log.events.clear();
    assert_eq!(
        memory.get_pfn(VmId(2), 0x7000, &mut log).unwrap(),
        Frame {
            pa: BASE + 0x7000,
            fresh: false
        }
    );
    assert!(log.events.is_empty(), "nothing re-prepared after a restart");
}

#[test]
fn pin_07_destroy_invalidates_every_prepared_frame_after_unmapping() {
    let mut memory = object(0x40_0000);
    let mut log = Log::default();
    memory.get_huge(VM, 0x20_0000, &mut log).unwrap().unwrap();
    memory.get_pfn(VM, 0x1000, &mut log).unwrap();
    log.events.clear();
    assert_eq!(memory.destroy(&mut log), Ok(513));
    assert_eq!(
        log.events,
        [
            Event::Unmap(0, 0x40_0000),
            Event::Invalidate(BASE + 0x1000, 1),
            Event::Invalidate(BASE + 0x20_0000, 512)
        ]
    );
}

#[test]
fn huge_blocks_are_handed_out_only_when_uniform() {
    let mut memory = object(0x60_0000);
    let mut log = Log::default();
    let block = memory.get_huge(VM, 0x20_0000, &mut log).unwrap().unwrap();
    assert_eq!(
        block,
        Frame {
            pa: BASE + 0x20_0000,
            fresh: true
        }
    );
    assert_eq!(
        log.events,
        [
            Event::Scrub(BASE + 0x20_0000, 512),
            Event::Prepare(BASE + 0x20_0000, 512)
        ]
    );
    let again = memory.get_huge(VM, 0x20_0000, &mut log).unwrap().unwrap();
    assert!(!again.fresh, "found prepared, not prepared again");
    // A block with one prepared page is mixed: map it 4 KiB at a time.
    memory.get_pfn(VM, 0x40_1000, &mut log).unwrap();
    assert_eq!(memory.get_huge(VM, 0x40_0000, &mut log).unwrap(), None);
    assert_eq!(
        memory.get_huge(VM, 0x1000, &mut log),
        Err(PrivMemError::OutOfRange { offset: 0x1000 })
    );
}

#[test]
fn converted_pages_refuse_private_access_and_come_back_scrubbed() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    memory.get_pfn(VM, 0x3000, &mut log).unwrap();
    assert_eq!(
        memory
            .convert_to_shared(VM, 0x2000, 0x2000, &mut log)
            .unwrap(),
        1
    );
    assert_eq!(
        memory.get_pfn(VM, 0x3000, &mut log),
        Err(PrivMemError::NotPrivate { offset: 0x3000 })
    );
    // Punching a hole in shared pages does not make them private.
    memory.punch_hole(VM, 0x2000, 0x1000, &mut log).unwrap();
    assert_eq!(memory.state(0x2000), PageState::Shared);
    memory.convert_to_private(VM, 0x2000, 0x2000).unwrap();
    log.events.clear();
    assert!(memory.get_pfn(VM, 0x3000, &mut log).unwrap().fresh);
    assert_eq!(log.events[0], Event::Scrub(BASE + 0x3000, 1));
}

#[test]
fn poisoned_pages_are_never_handed_out_again() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    memory.get_pfn(VM, 0x1000, &mut log).unwrap();
    memory.poison(VM, 0x1000, &mut log).unwrap();
    assert_eq!(
        memory.get_pfn(VM, 0x1000, &mut log),
        Err(PrivMemError::Poisoned { offset: 0x1000 })
    );
    memory.punch_hole(VM, 0, 0x10_0000, &mut log).unwrap();
    memory.convert_to_private(VM, 0, 0x10_0000).unwrap();
    assert_eq!(memory.state(0x1000), PageState::Poisoned);
}

#[test]
fn a_refused_prepare_leaves_the_page_free() {
    let mut memory = object(0x10_0000);
    let mut log = Log {
        refuse_prepare: true,
        ..Log::default()
    };
    assert_eq!(
        memory.get_pfn(VM, 0, &mut log),
        Err(PrivMemError::Vendor { code: 7 })
    );
    assert_eq!(memory.state(0), PageState::Free);
    assert_eq!(memory.prepared_frames(), 0);
}

#[test]
fn ranges_are_checked() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    assert_eq!(
        memory.get_pfn(VM, 0x10_0000, &mut log),
        Err(PrivMemError::OutOfRange { offset: 0x10_0000 })
    );
    assert!(memory.punch_hole(VM, 0x800, 0x1000, &mut log).is_err());
    assert!(memory.punch_hole(VM, 0x1000, u64::MAX, &mut log).is_err());
    assert!(log.events.is_empty(), "a refused range unmaps nothing");
}

#[test]
fn metadata_is_two_bits_per_page() {
    assert_eq!(PrivateMemory::new(0, 1 << 30).metadata_bytes(), 64 * 1024);
}

#[test]
fn pin_01_a_refused_unmap_stops_the_operation_before_any_frame_changes_hands() {
    let mut memory = object(0x10_0000);
    let mut log = Log::default();
    memory.get_pfn(VM, 0x3000, &mut log).unwrap();
    log.refuse_unmap = Some(0xbad);
    log.events.clear();
    let refused = PrivMemError::Unmap { code: 0xbad };
    assert_eq!(memory.punch_hole(VM, 0, 0x10_0000, &mut log), Err(refused));
    assert_eq!(
        memory.convert_to_shared(VM, 0, 0x10_0000, &mut log),
        Err(refused)
    );
    assert_eq!(memory.poison(VM, 0x3000, &mut log), Err(refused));
    assert_eq!(memory.release(VM, &mut log), Err(refused));
    assert!(
        log.events.iter().all(|e| matches!(e, Event::Unmap(..))),
        "nothing but the unmap attempts: {:?}",
        log.events
    );
    assert_eq!(memory.prepared_frames(), 1);
    assert_eq!(memory.bound_to(), Some(VM), "still bound");
    assert_eq!(memory.destroy(&mut log), Err(refused));
}

#[test]
fn snp_04_a_frame_the_vendor_cannot_take_back_is_poisoned_never_scrubbed_or_reused() {
    let mut memory = object(0x10_0000);
    let mut log = Log {
        quarantine: vec![BASE + 0x1000],
        ..Log::default()
    };
    for offset in [0, 0x1000, 0x2000] {
        memory.get_pfn(VM, offset, &mut log).unwrap();
    }
    log.events.clear();
    assert_eq!(memory.convert_to_shared(VM, 0, 0x3000, &mut log), Ok(2));
    assert_eq!(memory.state(0x1000), PageState::Poisoned);
    assert_eq!(memory.state(0x2000), PageState::Shared);
    assert!(
        !log.events.iter().any(|e| matches!(e, Event::Scrub(pa, n) if (*pa..*pa + n * FRAME_SIZE).contains(&(BASE + 0x1000)))),
        "the quarantined frame may still be the guest's: never scrubbed: {:?}",
        log.events
    );
    assert_eq!(memory.prepared_frames(), 0);
    assert_eq!(memory.convert_to_private(VM, 0, 0x3000), Ok(()));
    assert_eq!(
        memory.get_pfn(VM, 0x1000, &mut log),
        Err(PrivMemError::Poisoned { offset: 0x1000 })
    );
}

#[test]
fn snp_04_destroy_releases_everything_but_the_quarantined_frame() {
    let mut memory = object(0x10_0000);
    let mut log = Log {
        quarantine: vec![BASE + 0x2000],
        ..Log::default()
    };
    for offset in [0, 0x1000, 0x2000] {
        memory.get_pfn(VM, offset, &mut log).unwrap();
    }
    assert_eq!(memory.destroy(&mut log), Ok(2));
}

#[test]
fn an_empty_range_is_shared_only_inside_a_shared_page_never_past_the_end() {
    let mut log = Log::default();
    let mut memory = object(4 * FRAME_SIZE);
    memory
        .convert_to_shared(VM, 3 * FRAME_SIZE, FRAME_SIZE, &mut log)
        .unwrap();
    assert!(memory.is_shared(3 * FRAME_SIZE + 8, 0));
    assert!(!memory.is_shared(0, 0), "private page");
    // Found by the hostile-calls workload: this probe indexed one page past the end.
    assert!(!memory.is_shared(4 * FRAME_SIZE, 0));
    assert!(!memory.is_shared(u64::MAX, 0));
}
