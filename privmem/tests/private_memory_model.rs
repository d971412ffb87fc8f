//! Property test: random sequences of calls on a [`PrivateMemory`] object against a model
//! of its page states, with the PIN-/POOL- items of
//! ../shared/specs/confidential-memory.md §H checked after every step, and the release
//! order checked at each release: the object's user (below) keeps the second-level
//! mappings itself, so `invalidate` sees exactly what is still mapped.
//!
//! `PROPTEST_CASES=n` overrides the case count.

use cloister_privmem::{
    FRAME_SIZE, Frame, FrameHooks, HUGE_FRAMES, PageState, PrivMemError, PrivateMemory, Unmapper,
    VmId,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::{BTreeMap, BTreeSet};

/// `PROPTEST_CASES` if set (for longer runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

const BASE: u64 = 0x4000_0000;
const PAGE: u64 = FRAME_SIZE;
const HUGE: u64 = HUGE_FRAMES * FRAME_SIZE;
/// What a frame holds before its first scrub.
const GARBAGE: u64 = 0xa5a5_a5a5_a5a5_a5a5;
const REFUSED: u64 = 0x99;

fn intersects(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a_len > 0 && b_len > 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Scrub(u64, u64),
    Prepare(u64, u64),
    Invalidate(u64, u64),
    Unmap(u64, u64),
}

/// The object's user: its second-level mappings, the frames' contents (one word stands
/// for a frame) and the vendor's view of which frames are prepared.
#[derive(Default)]
struct User {
    /// Mapped object ranges: offset -> (length, frame).
    leaves: BTreeMap<u64, (u64, u64)>,
    memory: BTreeMap<u64, u64>,
    /// Scrubbed since their last release and not prepared yet.
    scrubbed: BTreeSet<u64>,
    /// Prepared and not invalidated since.
    live: BTreeSet<u64>,
    events: Vec<Event>,
    violations: Vec<String>,
    refuse_prepare: bool,
}

impl User {
    fn frames(pa: u64, n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(move |i| pa + i * PAGE)
    }

    fn content(&self, pa: u64) -> u64 {
        self.memory.get(&pa).copied().unwrap_or(GARBAGE)
    }
}

impl FrameHooks for User {
    fn scrub(&mut self, pa: u64, frames: u64) {
        self.events.push(Event::Scrub(pa, frames));
        for frame in Self::frames(pa, frames) {
            if self.live.contains(&frame) {
                self.violations
                    .push(format!("frame {frame:#x} scrubbed while prepared"));
            }
            self.memory.insert(frame, 0);
            self.scrubbed.insert(frame);
        }
    }

    fn prepare(&mut self, _offset: u64, pa: u64, frames: u64) -> Result<(), PrivMemError> {
        if self.refuse_prepare {
            return Err(PrivMemError::Vendor { code: REFUSED });
        }
        self.events.push(Event::Prepare(pa, frames));
        for frame in Self::frames(pa, frames) {
            if !self.scrubbed.remove(&frame) {
                self.violations.push(format!(
                    "POOL-06: frame {frame:#x} prepared without a scrub"
                ));
            }
            if !self.live.insert(frame) {
                self.violations
                    .push(format!("frame {frame:#x} prepared twice without a release"));
            }
        }
        Ok(())
    }

    fn invalidate(&mut self, pa: u64, frames: u64, _quarantine: &mut dyn FnMut(u64)) {
        self.events.push(Event::Invalidate(pa, frames));
        for frame in Self::frames(pa, frames) {
            if !self.live.remove(&frame) {
                self.violations
                    .push(format!("frame {frame:#x} released but not prepared"));
            }
        }
        for (&offset, &(len, leaf_pa)) in &self.leaves {
            if intersects(leaf_pa, len, pa, frames * PAGE) {
                self.violations.push(format!(
                    "PIN-01/POOL-04: frames {pa:#x}+{frames} released while offset \
                     {offset:#x}+{len:#x} still maps {leaf_pa:#x}"
                ));
            }
        }
    }
}

impl Unmapper for User {
    fn unmap(&mut self, offset: u64, len: u64) -> Result<(), PrivMemError> {
        self.events.push(Event::Unmap(offset, len));
        self.leaves
            .retain(|&leaf, &mut (leaf_len, _)| !intersects(leaf, leaf_len, offset, len));
        Ok(())
    }
}

/// The model's page: what the object must report, and for a prepared page what its
/// frame holds (0 until the workload writes a marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Free,
    Prepared(u64),
    Shared,
    Poisoned,
}

impl Page {
    fn state(self) -> PageState {
        match self {
            Self::Free => PageState::Free,
            Self::Prepared(_) => PageState::Prepared,
            Self::Shared => PageState::Shared,
            Self::Poisoned => PageState::Poisoned,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `stale`: the call names the previous VM instance (or one never bound).
    GetPfn {
        offset: u64,
        stale: bool,
    },
    GetHuge {
        offset: u64,
        stale: bool,
    },
    PunchHole {
        offset: u64,
        len: u64,
        stale: bool,
    },
    ToShared {
        offset: u64,
        len: u64,
        stale: bool,
    },
    ToPrivate {
        offset: u64,
        len: u64,
        stale: bool,
    },
    Poison {
        offset: u64,
        stale: bool,
    },
    /// Release the instance and bind a new one.
    Restart,
    /// The vendor refuses the prepares of the next operation.
    RefuseNextPrepare,
}

struct Harness {
    object: PrivateMemory,
    user: User,
    pages: Vec<Page>,
    vm: VmId,
    stale: VmId,
    next_marker: u64,
    refuse: bool,
}

impl Harness {
    fn new(pages: u64) -> Self {
        let mut object = PrivateMemory::new(BASE, pages * PAGE);
        object.bind(VmId(1)).unwrap();
        Self {
            object,
            user: User::default(),
            pages: vec![Page::Free; pages as usize],
            vm: VmId(1),
            stale: VmId(0),
            next_marker: 1,
            refuse: false,
        }
    }

    fn size(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    fn pa(page: usize) -> u64 {
        BASE + page as u64 * PAGE
    }

    /// The pages of `[offset, offset + len)` if aligned to `align` pages and inside.
    fn range(&self, offset: u64, len: u64, align: u64) -> Result<(usize, usize), PrivMemError> {
        let unit = align * PAGE;
        if !offset.is_multiple_of(unit)
            || !len.is_multiple_of(unit)
            || offset.checked_add(len).is_none_or(|end| end > self.size())
        {
            return Err(PrivMemError::OutOfRange { offset });
        }
        Ok(((offset / PAGE) as usize, (len / PAGE) as usize))
    }

    fn vm(&self, stale: bool) -> VmId {
        if stale { self.stale } else { self.vm }
    }

    fn marker(&mut self) -> u64 {
        self.next_marker += 1;
        self.next_marker
    }

    /// Map the page (if nothing maps it yet) and write a fresh marker into its frame.
    fn touch(&mut self, page: usize) {
        let pa = Self::pa(page);
        let offset = page as u64 * PAGE;
        if !self
            .user
            .leaves
            .iter()
            .any(|(&o, &(len, _))| intersects(o, len, offset, PAGE))
        {
            self.user.leaves.insert(offset, (PAGE, pa));
        }
        let marker = self.marker();
        self.user.memory.insert(pa, marker);
        self.pages[page] = Page::Prepared(marker);
    }

    /// The invalidations releasing the prepared pages of `[first, first + count)`: one
    /// per run of prepared pages.
    fn releases(&self, first: usize, count: usize) -> Vec<Event> {
        let mut events = Vec::new();
        let mut run: Option<(usize, u64)> = None;
        for page in first..first + count {
            if matches!(self.pages[page], Page::Prepared(_)) {
                run = Some(run.map_or((page, 1), |(start, n)| (start, n + 1)));
            } else if let Some((start, n)) = run.take() {
                events.push(Event::Invalidate(Self::pa(start), n));
            }
        }
        if let Some((start, n)) = run {
            events.push(Event::Invalidate(Self::pa(start), n));
        }
        events
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        self.user.events.clear();
        self.user.refuse_prepare = std::mem::take(&mut self.refuse);
        let mut expected_events = Vec::new();
        match op {
            Op::GetPfn { offset, stale } => {
                let got = self.object.get_pfn(self.vm(stale), offset, &mut self.user);
                let base = offset & !(PAGE - 1);
                let expected = match self.range(base, PAGE, 1) {
                    _ if stale => Err(PrivMemError::NotBound),
                    Err(e) => Err(e),
                    Ok((page, _)) => {
                        let pa = Self::pa(page);
                        match self.pages[page] {
                            Page::Prepared(content) => {
                                // PIN-03: the same frame, neither scrubbed nor prepared.
                                prop_assert_eq!(self.user.content(pa), content);
                                self.touch(page);
                                Ok(Frame { pa, fresh: false })
                            }
                            Page::Free => {
                                expected_events.push(Event::Scrub(pa, 1));
                                if self.user.refuse_prepare {
                                    Err(PrivMemError::Vendor { code: REFUSED })
                                } else {
                                    expected_events.push(Event::Prepare(pa, 1));
                                    // POOL-06: zeros, whatever the frame held.
                                    prop_assert_eq!(self.user.content(pa), 0);
                                    self.touch(page);
                                    Ok(Frame { pa, fresh: true })
                                }
                            }
                            Page::Shared => Err(PrivMemError::NotPrivate { offset }),
                            Page::Poisoned => Err(PrivMemError::Poisoned { offset }),
                        }
                    }
                };
                prop_assert_eq!(got, expected);
            }
            Op::GetHuge { offset, stale } => {
                let got = self.object.get_huge(self.vm(stale), offset, &mut self.user);
                let expected = match self.range(offset, HUGE, HUGE_FRAMES) {
                    _ if stale => Err(PrivMemError::NotBound),
                    Err(e) => Err(e),
                    Ok((first, count)) => self.huge(first, count, &mut expected_events)?,
                };
                prop_assert_eq!(got, expected);
            }
            Op::PunchHole { offset, len, stale } => {
                let got = self
                    .object
                    .punch_hole(self.vm(stale), offset, len, &mut self.user);
                let expected = self.give_back(offset, len, stale, false, &mut expected_events);
                prop_assert_eq!(got, expected);
            }
            Op::ToShared { offset, len, stale } => {
                let got =
                    self.object
                        .convert_to_shared(self.vm(stale), offset, len, &mut self.user);
                let expected = self.give_back(offset, len, stale, true, &mut expected_events);
                prop_assert_eq!(got, expected);
            }
            Op::ToPrivate { offset, len, stale } => {
                let got = self.object.convert_to_private(self.vm(stale), offset, len);
                let expected = match self.range(offset, len, 1) {
                    _ if stale => Err(PrivMemError::NotBound),
                    Err(e) => Err(e),
                    Ok((first, count)) => {
                        for page in &mut self.pages[first..first + count] {
                            if *page == Page::Shared {
                                *page = Page::Free;
                            }
                        }
                        Ok(())
                    }
                };
                prop_assert_eq!(got, expected);
            }
            Op::Poison { offset, stale } => {
                let got = self.object.poison(self.vm(stale), offset, &mut self.user);
                let expected = match self.range(offset, PAGE, 1) {
                    _ if stale => Err(PrivMemError::NotBound),
                    Err(e) => Err(e),
                    Ok((page, _)) => {
                        expected_events.push(Event::Unmap(offset, PAGE));
                        expected_events.extend(self.releases(page, 1));
                        self.pages[page] = Page::Poisoned;
                        Ok(())
                    }
                };
                prop_assert_eq!(got, expected);
            }
            Op::Restart => {
                // POOL-01: one instance at a time.
                prop_assert_eq!(
                    self.object.bind(VmId(u64::MAX)),
                    Err(PrivMemError::BoundElsewhere { vm: self.vm.0 })
                );
                prop_assert_eq!(
                    self.object.release(self.stale, &mut self.user),
                    Err(PrivMemError::NotBound)
                );
                // POOL-07: release zaps every mapping and frees nothing...
                prop_assert_eq!(self.object.release(self.vm, &mut self.user), Ok(()));
                expected_events.push(Event::Unmap(0, self.size()));
                prop_assert!(self.user.leaves.is_empty(), "a mapping outlived release");
                prop_assert_eq!(self.object.bound_to(), None);
                // ...and a use after release is an error, not a stale frame.
                prop_assert_eq!(
                    self.object.get_pfn(self.vm, 0, &mut self.user),
                    Err(PrivMemError::NotBound)
                );
                self.stale = self.vm;
                self.vm = VmId(self.vm.0 + 1);
                prop_assert_eq!(self.object.bind(self.vm), Ok(()));
            }
            Op::RefuseNextPrepare => self.refuse = true,
        }
        prop_assert!(
            self.user.violations.is_empty(),
            "{:?}",
            self.user.violations
        );
        prop_assert_eq!(&self.user.events, &expected_events);
        self.check()
    }

    /// Expected result of `get_huge` on the block of pages `[first, first + count)`.
    fn huge(
        &mut self,
        first: usize,
        count: usize,
        expected_events: &mut Vec<Event>,
    ) -> Result<Result<Option<Frame>, PrivMemError>, TestCaseError> {
        let block = &self.pages[first..first + count];
        if block.iter().any(|p| p.state() != block[0].state()) {
            return Ok(Ok(None));
        }
        let pa = Self::pa(first);
        let fresh = match block[0] {
            Page::Shared | Page::Poisoned => return Ok(Ok(None)),
            Page::Prepared(_) => {
                for page in first..first + count {
                    let Page::Prepared(content) = self.pages[page] else {
                        unreachable!()
                    };
                    prop_assert_eq!(self.user.content(Self::pa(page)), content);
                }
                false
            }
            Page::Free => {
                expected_events.push(Event::Scrub(pa, HUGE_FRAMES));
                if self.user.refuse_prepare {
                    return Ok(Err(PrivMemError::Vendor { code: REFUSED }));
                }
                expected_events.push(Event::Prepare(pa, HUGE_FRAMES));
                for page in first..first + count {
                    prop_assert_eq!(self.user.content(Self::pa(page)), 0, "POOL-06");
                    self.pages[page] = Page::Prepared(0);
                }
                true
            }
        };
        let offset = first as u64 * PAGE;
        if !self
            .user
            .leaves
            .iter()
            .any(|(&o, &(len, _))| intersects(o, len, offset, HUGE))
        {
            self.user.leaves.insert(offset, (HUGE, pa));
        }
        self.touch(first);
        Ok(Ok(Some(Frame { pa, fresh })))
    }

    /// Expected result of a punch-hole (or, `to_shared`, a conversion to shared).
    fn give_back(
        &mut self,
        offset: u64,
        len: u64,
        stale: bool,
        to_shared: bool,
        expected_events: &mut Vec<Event>,
    ) -> Result<u64, PrivMemError> {
        if stale {
            return Err(PrivMemError::NotBound);
        }
        let (first, count) = self.range(offset, len, 1)?;
        expected_events.push(Event::Unmap(offset, len));
        let releases = self.releases(first, count);
        let released = releases
            .iter()
            .map(|e| match e {
                Event::Invalidate(_, n) => *n,
                _ => 0,
            })
            .sum();
        expected_events.extend(releases);
        if to_shared {
            // Converted frames become visible to the hypervisor: scrubbed, in runs, after
            // their release.
            let converting = |p: &Page| matches!(p, Page::Prepared(_) | Page::Free);
            let mut run: Option<(usize, u64)> = None;
            for page in first..first + count {
                if converting(&self.pages[page]) {
                    run = Some(run.map_or((page, 1), |(start, n)| (start, n + 1)));
                } else if let Some((start, n)) = run.take() {
                    expected_events.push(Event::Scrub(Self::pa(start), n));
                }
            }
            if let Some((start, n)) = run {
                expected_events.push(Event::Scrub(Self::pa(start), n));
            }
        }
        for page in &mut self.pages[first..first + count] {
            *page = match (*page, to_shared) {
                (Page::Poisoned, _) => Page::Poisoned,
                (_, true) => Page::Shared,
                (Page::Prepared(_), false) => Page::Free,
                (other, false) => other,
            };
        }
        Ok(released)
    }

    /// The invariants, after every step.
    fn check(&self) -> Result<(), TestCaseError> {
        prop_assert!(
            self.user.violations.is_empty(),
            "{:?}",
            self.user.violations
        );
        prop_assert_eq!(self.object.bound_to(), Some(self.vm));
        let prepared: BTreeSet<u64> = (0..self.pages.len())
            .filter(|&p| matches!(self.pages[p], Page::Prepared(_)))
            .map(Self::pa)
            .collect();
        prop_assert_eq!(self.object.prepared_frames(), prepared.len() as u64);
        prop_assert_eq!(&self.user.live, &prepared, "vendor and object disagree");
        for (page, model) in self.pages.iter().enumerate() {
            prop_assert_eq!(
                self.object.state(page as u64 * PAGE),
                model.state(),
                "page {}",
                page
            );
            if let Page::Prepared(content) = *model {
                prop_assert_eq!(
                    self.user.content(Self::pa(page)),
                    content,
                    "page {} lost its data",
                    page
                );
            }
        }
        // Whatever is mapped is prepared, and is the page's own frame.
        for (&offset, &(len, pa)) in &self.user.leaves {
            for i in 0..len / PAGE {
                let page = (offset / PAGE + i) as usize;
                prop_assert!(matches!(self.pages[page], Page::Prepared(_)));
                prop_assert_eq!(pa + i * PAGE, Self::pa(page));
            }
        }
        Ok(())
    }

    /// Destroy the object: everything is unmapped, then every prepared frame released.
    fn destroy(mut self) -> Result<(), TestCaseError> {
        self.user.events.clear();
        self.user.refuse_prepare = false;
        let prepared = self.object.prepared_frames();
        let mut expected = vec![Event::Unmap(0, self.size())];
        expected.extend(self.releases(0, self.pages.len()));
        let released = self
            .object
            .destroy(&mut self.user)
            .expect("unmapping never fails here");
        prop_assert!(
            self.user.violations.is_empty(),
            "{:?}",
            self.user.violations
        );
        prop_assert_eq!(released, prepared);
        prop_assert_eq!(&self.user.events, &expected);
        prop_assert!(
            self.user.live.is_empty(),
            "frames leaked: {:?}",
            self.user.live
        );
        prop_assert!(self.user.leaves.is_empty());
        Ok(())
    }
}

fn op(pages: u64) -> impl Strategy<Value = Op> {
    let page = prop_oneof![
        select(vec![0, 1, 511, 512, 513, 1023, 1024, pages - 1, pages]),
        0..pages,
    ];
    let count = prop_oneof![
        4 => 1..8u64,
        2 => 0..600u64,
        1 => Just(HUGE_FRAMES),
        1 => Just(pages),
    ];
    let sub_page = prop_oneof![8 => Just(0u64), 1 => 1..PAGE];
    let range =
        (page.clone(), sub_page.clone(), count).prop_map(|(p, off, n)| (p * PAGE + off, n * PAGE));
    let stale = prop::bool::weighted(0.05);
    prop_oneof![
        8 => (page.clone(), 0..PAGE, stale)
            .prop_map(|(p, off, stale)| Op::GetPfn { offset: p * PAGE + off, stale }),
        4 => (0..=pages / HUGE_FRAMES, sub_page.clone(), stale)
            .prop_map(|(b, off, stale)| Op::GetHuge { offset: b * HUGE + off, stale }),
        3 => (range.clone(), stale)
            .prop_map(|((offset, len), stale)| Op::PunchHole { offset, len, stale }),
        3 => (range.clone(), stale)
            .prop_map(|((offset, len), stale)| Op::ToShared { offset, len, stale }),
        3 => (range, stale)
            .prop_map(|((offset, len), stale)| Op::ToPrivate { offset, len, stale }),
        1 => (page, sub_page, stale).prop_map(|(p, off, stale)| Op::Poison { offset: p * PAGE + off, stale }),
        1 => Just(Op::Restart),
        1 => Just(Op::RefuseNextPrepare),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Results, hook calls (in order) and page states match the model after every call;
    /// frames are released only when unmapped (PIN-01/POOL-04, checked at the release),
    /// scrubbed before they are prepared (POOL-06), never prepared twice or leaked
    /// (accounting), the same frame comes back for a prepared page (PIN-03), poison
    /// is forever (POOL-08), one instance binds at a time and release unmaps but frees
    /// nothing (POOL-01, POOL-07, PIN-02), and destroy releases every frame.
    #[test]
    fn pin_01_pool_04_pool_06_private_memory_matches_a_page_model(
        (pages, ops) in select(vec![1024u64, 3 * HUGE_FRAMES + 5])
            .prop_flat_map(|pages| (Just(pages), prop::collection::vec(op(pages), 1..60)))
    ) {
        let mut harness = Harness::new(pages);
        for (step, op) in ops.into_iter().enumerate() {
            harness
                .step(op)
                .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        }
        harness.destroy()?;
    }
}
