//! The private memory object: the guest_memfd analogue for one private pool.
//!
//! Frame management: the object owns its pool exclusively (a pool backs one memslot,
//! and the configuration checks it), so the frame of offset `o` is always
//! `base + o`. No allocator is needed: `get_pfn` is O(1) and allocation-free, the SAME
//! frame comes back on every call by construction (nothing can relocate it), and every
//! 2 MiB-aligned block of offsets is a physically contiguous, aligned 2 MiB frame block
//! for huge mappings. What a buddy allocator would add (sharing a pool between
//! objects, fragmentation handling) is exactly what a private pool must not do.

use crate::hooks::{FrameHooks, Unmapper};
use crate::page_state::{PageState, PageStates};
use crate::{FRAME_SIZE, HUGE_FRAMES, PrivMemError};
use alloc::vec::Vec;

/// A VM instance. A restarted workload gets a new instance bound to the same objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmId(pub u64);

/// A frame handed out by [`PrivateMemory::get_pfn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub pa: u64,
    /// Scrubbed and prepared by this call (first touch), rather than found prepared.
    pub fresh: bool,
}

pub struct PrivateMemory {
    base: u64,
    states: PageStates,
    prepared: u64,
    bound: Option<VmId>,
}

impl core::fmt::Debug for PrivateMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PrivateMemory")
            .field("base", &format_args!("{:#x}", self.base))
            .field("size", &format_args!("{:#x}", self.size()))
            .field("prepared", &self.prepared)
            .field("bound", &self.bound)
            .finish()
    }
}

impl PrivateMemory {
    /// The object for the private pool at `[base, base + size)` (frame aligned).
    pub fn new(base: u64, size: u64) -> Self {
        assert!(
            base.is_multiple_of(FRAME_SIZE) && size.is_multiple_of(FRAME_SIZE),
            "pool not frame aligned"
        );
        Self {
            base,
            states: PageStates::new((size / FRAME_SIZE) as usize),
            prepared: 0,
            bound: None,
        }
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn size(&self) -> u64 {
        self.states.len() as u64 * FRAME_SIZE
    }

    /// Frames currently prepared (pinned to the workload).
    pub fn prepared_frames(&self) -> u64 {
        self.prepared
    }

    /// Bytes of per-page metadata this object keeps.
    pub fn metadata_bytes(&self) -> usize {
        self.states.metadata_bytes()
    }

    pub fn bound_to(&self) -> Option<VmId> {
        self.bound
    }

    /// State of the page at `offset` (which must be inside the object).
    pub fn state(&self, offset: u64) -> PageState {
        self.states.get((offset / FRAME_SIZE) as usize)
    }

    /// Bind the object to VM instance `vm`: one binding at a time.
    pub fn bind(&mut self, vm: VmId) -> Result<(), PrivMemError> {
        match self.bound {
            Some(other) => Err(PrivMemError::BoundElsewhere { vm: other.0 }),
            None => {
                self.bound = Some(vm);
                Ok(())
            }
        }
    }

    /// Unbind `vm`: every mapping goes, but prepared frames stay prepared, because their
    /// lifetime is the object's, not the VM instance's.
    pub fn release(&mut self, vm: VmId, unmapper: &mut impl Unmapper) -> Result<(), PrivMemError> {
        self.check_bound(vm)?;
        unmapper.unmap(0, self.size())?;
        self.bound = None;
        Ok(())
    }

    fn check_bound(&self, vm: VmId) -> Result<(), PrivMemError> {
        if self.bound == Some(vm) {
            Ok(())
        } else {
            Err(PrivMemError::NotBound)
        }
    }

    /// Pages `[first, first + count)` for a range that must be aligned to `align` pages.
    fn pages(
        &self,
        vm: VmId,
        offset: u64,
        len: u64,
        align: u64,
    ) -> Result<(usize, usize), PrivMemError> {
        self.check_bound(vm)?;
        let unit = align * FRAME_SIZE;
        let end = offset.checked_add(len);
        if !offset.is_multiple_of(unit)
            || !len.is_multiple_of(unit)
            || end.is_none_or(|e| e > self.size())
        {
            return Err(PrivMemError::OutOfRange { offset });
        }
        Ok(((offset / FRAME_SIZE) as usize, (len / FRAME_SIZE) as usize))
    }

    fn frame_pa(&self, page: usize) -> u64 {
        self.base + page as u64 * FRAME_SIZE
    }

    /// The frame for the page at `offset`, prepared on first use (scrubbed, then the
    /// vendor's prepare hook); the same frame, untouched, on every later call.
    pub fn get_pfn(
        &mut self,
        vm: VmId,
        offset: u64,
        hooks: &mut impl FrameHooks,
    ) -> Result<Frame, PrivMemError> {
        let (page, _) = self.pages(vm, offset & !(FRAME_SIZE - 1), FRAME_SIZE, 1)?;
        let pa = self.frame_pa(page);
        match self.states.get(page) {
            PageState::Prepared => Ok(Frame { pa, fresh: false }),
            PageState::Free => {
                hooks.scrub(pa, 1);
                hooks.prepare(page as u64 * FRAME_SIZE, pa, 1)?;
                self.states.set(page, PageState::Prepared);
                self.prepared += 1;
                Ok(Frame { pa, fresh: true })
            }
            PageState::Shared => Err(PrivMemError::NotPrivate { offset }),
            PageState::Poisoned => Err(PrivMemError::Poisoned { offset }),
        }
    }

    /// The 2 MiB frame block for the 2 MiB-aligned `offset`, if the whole block is
    /// uniformly free or prepared; `None` when its pages differ (map 4 KiB instead).
    pub fn get_huge(
        &mut self,
        vm: VmId,
        offset: u64,
        hooks: &mut impl FrameHooks,
    ) -> Result<Option<Frame>, PrivMemError> {
        let (first, count) = self.pages(vm, offset, HUGE_FRAMES * FRAME_SIZE, HUGE_FRAMES)?;
        let state = self.states.get(first);
        if (first..first + count).any(|p| self.states.get(p) != state) {
            return Ok(None);
        }
        let pa = self.frame_pa(first);
        match state {
            PageState::Prepared => Ok(Some(Frame { pa, fresh: false })),
            PageState::Free => {
                hooks.scrub(pa, HUGE_FRAMES);
                hooks.prepare(first as u64 * FRAME_SIZE, pa, HUGE_FRAMES)?;
                (first..first + count).for_each(|p| self.states.set(p, PageState::Prepared));
                self.prepared += HUGE_FRAMES;
                Ok(Some(Frame { pa, fresh: true }))
            }
            PageState::Shared | PageState::Poisoned => Ok(None),
        }
    }

    /// Free the backing of `[offset, offset + len)`: mappings go first, then every
    /// prepared frame is invalidated and returns to the pool (to be scrubbed before any
    /// reuse). Returns the number of frames released.
    pub fn punch_hole(
        &mut self,
        vm: VmId,
        offset: u64,
        len: u64,
        ops: &mut (impl Unmapper + FrameHooks),
    ) -> Result<u64, PrivMemError> {
        let (first, count) = self.pages(vm, offset, len, 1)?;
        ops.unmap(offset, len)?;
        Ok(self.give_back(first, count, PageState::Free, ops))
    }

    /// Convert `[offset, offset + len)` to shared, in place: private mappings go,
    /// prepared frames are invalidated (ownership returns from the workload), then every
    /// converted frame is scrubbed, because it is about to become visible to the
    /// hypervisor and must not show what it held. Returns the number of prepared frames
    /// that became shared. A frame the vendor quarantines is poisoned instead, and
    /// neither scrubbed nor counted.
    pub fn convert_to_shared(
        &mut self,
        vm: VmId,
        offset: u64,
        len: u64,
        ops: &mut (impl Unmapper + FrameHooks),
    ) -> Result<u64, PrivMemError> {
        let (first, count) = self.pages(vm, offset, len, 1)?;
        ops.unmap(offset, len)?;
        let mut quarantined = Vec::new();
        let base = self.base;
        let states = &self.states;
        let prepared = |p: usize| states.get(p) == PageState::Prepared;
        for_each_run(first, count, prepared, |start, n| {
            ops.invalidate(self.frame_pa(start), n, &mut |pa| {
                quarantined.push(((pa - base) / FRAME_SIZE) as usize)
            })
        });
        self.quarantine(&quarantined);
        let states = &self.states;
        let converting = |p: usize| matches!(states.get(p), PageState::Prepared | PageState::Free);
        for_each_run(first, count, converting, |start, n| {
            ops.scrub(self.frame_pa(start), n)
        });
        let mut released = 0;
        for page in first..first + count {
            match self.states.get(page) {
                PageState::Prepared => {
                    released += 1;
                    self.states.set(page, PageState::Shared);
                }
                PageState::Free => self.states.set(page, PageState::Shared),
                PageState::Shared | PageState::Poisoned => {}
            }
        }
        self.prepared -= released;
        Ok(released)
    }

    /// The frame of the converted-to-shared page at `offset` (the same frame the page
    /// had as private memory: conversion is in place).
    pub fn shared_frame(&self, vm: VmId, offset: u64) -> Result<u64, PrivMemError> {
        let (page, _) = self.pages(vm, offset & !(FRAME_SIZE - 1), FRAME_SIZE, 1)?;
        match self.states.get(page) {
            PageState::Shared => Ok(self.frame_pa(page)),
            _ => Err(PrivMemError::NotShared { offset }),
        }
    }

    /// Whether every page of `[offset, offset + len)` is converted to shared.
    pub fn is_shared(&self, offset: u64, len: u64) -> bool {
        let first = offset / FRAME_SIZE;
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        // An empty range is judged by the page it starts in, which must exist: at the
        // object's end there is none to be shared.
        if end > self.size() || offset >= self.size() {
            return false;
        }
        let last = end.div_ceil(FRAME_SIZE).max(first + 1);
        (first..last).all(|p| self.states.get(p as usize) == PageState::Shared)
    }

    /// Convert `[offset, offset + len)` back to private. Its frames were released when it
    /// became shared, so each is scrubbed and prepared again on its next touch. The caller
    /// removes the shared mappings of the range.
    pub fn convert_to_private(
        &mut self,
        vm: VmId,
        offset: u64,
        len: u64,
    ) -> Result<(), PrivMemError> {
        let (first, count) = self.pages(vm, offset, len, 1)?;
        for page in first..first + count {
            if self.states.get(page) == PageState::Shared {
                self.states.set(page, PageState::Free);
            }
        }
        Ok(())
    }

    /// Take the page at `offset` out of service for good (a memory error).
    pub fn poison(
        &mut self,
        vm: VmId,
        offset: u64,
        ops: &mut (impl Unmapper + FrameHooks),
    ) -> Result<(), PrivMemError> {
        let (page, _) = self.pages(vm, offset, FRAME_SIZE, 1)?;
        ops.unmap(offset, FRAME_SIZE)?;
        self.give_back(page, 1, PageState::Poisoned, ops);
        Ok(())
    }

    /// Tear the object down: every mapping goes, every prepared frame is invalidated and
    /// returned. Returns the number of frames released; if a mapping could not be
    /// removed, no frame is returned (they stay with the dropped object: leaked, never
    /// handed out while something may still map them).
    pub fn destroy(mut self, ops: &mut (impl Unmapper + FrameHooks)) -> Result<u64, PrivMemError> {
        ops.unmap(0, self.size())?;
        let pages = self.states.len();
        Ok(self.give_back(0, pages, PageState::Free, ops))
    }

    /// Move prepared pages in `[first, first + count)` to `to` after invalidating their
    /// frames (in runs, one hook call per contiguous run).
    fn give_back(
        &mut self,
        first: usize,
        count: usize,
        to: PageState,
        hooks: &mut impl FrameHooks,
    ) -> u64 {
        let mut released = 0;
        let mut quarantined = Vec::new();
        let base = self.base;
        let mut quarantine = |pa: u64| quarantined.push(((pa - base) / FRAME_SIZE) as usize);
        let mut run: Option<(usize, u64)> = None;
        for page in first..first + count {
            let state = self.states.get(page);
            if state == PageState::Prepared {
                run = Some(run.map_or((page, 1), |(start, n)| (start, n + 1)));
                released += 1;
            } else if let Some((start, n)) = run.take() {
                hooks.invalidate(self.frame_pa(start), n, &mut quarantine);
            }
            // Poison is forever; punching a hole leaves shared pages shared.
            let keep = state == PageState::Poisoned
                || (state == PageState::Shared && to == PageState::Free);
            if !keep {
                self.states.set(page, to);
            }
        }
        if let Some((start, n)) = run {
            hooks.invalidate(self.frame_pa(start), n, &mut quarantine);
        }
        self.prepared -= released;
        // Quarantined pages were set to `to` above, before the vendor refused them.
        for &page in &quarantined {
            self.states.set(page, PageState::Poisoned);
        }
        released - quarantined.len() as u64
    }

    /// Take the prepared pages the vendor could not reclaim out of service: they stay
    /// poisoned, never scrubbed or handed out (their frames may still be the guest's).
    fn quarantine(&mut self, pages: &[usize]) {
        for &page in pages {
            if self.states.get(page) == PageState::Prepared {
                self.prepared -= 1;
            }
            self.states.set(page, PageState::Poisoned);
        }
    }
}

/// Call `visit(start, n)` for each maximal run of pages in `[first, first + count)` that
/// satisfy `member`, in order.
fn for_each_run(
    first: usize,
    count: usize,
    member: impl Fn(usize) -> bool,
    mut visit: impl FnMut(usize, u64),
) {
    let mut run: Option<(usize, u64)> = None;
    for page in first..first + count {
        if member(page) {
            run = Some(run.map_or((page, 1), |(start, n)| (start, n + 1)));
        } else if let Some((start, n)) = run.take() {
            visit(start, n);
        }
    }
    if let Some((start, n)) = run {
        visit(start, n);
    }
}
