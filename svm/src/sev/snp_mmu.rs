//! core's vendor hooks for SEV-SNP (spec digest D.4, D.5): private frames are assigned
//! to the guest's ASID in the RMP when they are first prepared, not when they are
//! mapped, so nested entries are ephemeral (zap and refault cost no RMPUPDATE, SNP-02).
//!
//! - prepare: RMPUPDATE to private at the frame's GPA, one 2 MiB entry when a whole
//!   aligned block is prepared at once, else 4 KiB entries; before LAUNCH_FINISH the
//!   frames wait, because only launch may assign until then (SNP-06).
//! - invalidate: PSMASH a 2 MiB entry the range covers only in part, RMPUPDATE to
//!   shared, flush the guest-key lines. A frame the RMP will not give back is
//!   quarantined (SNP-04).
//! - launch: each page goes Pre-Guest (immutable) then SNP_LAUNCH_UPDATE; a page the
//!   firmware refused is reclaimed through the firmware before it is made shared
//!   (SNP-03).
//!
//! Which entries are 2 MiB is recorded here rather than read back from the RMP: the
//! hypervisor made every entry it relies on, and reading the real RMP needs its table
//! mapped.

use super::cache::SevCache;
use super::firmware::{SevFirmware, SnpPageType};
use super::rmp::{Rmp, RmpError, RmpFault, RmpFaultReason, RmpSize, RmpState};
use super::rmp_record::{RmpRecord, block_of};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use cloister_abi::hypercall::{FEATURE_SNP_MODEL, FEATURE_TRANSPORT_GHCB};
use cloister_core::mmu::{PageSize, VendorError, VendorMmu};

const FRAME: u64 = 4096;
const HUGE: u64 = 2 << 20;
const HUGE_FRAMES: u64 = HUGE / FRAME;
/// RMPUPDATE FAIL_OVERLAP and FAIL_INUSE, PSMASH FAIL_INUSE: another CPU is changing
/// the entry; Linux retries without bound, this bounds it.
const RMP_RETRIES: u32 = 64;

/// What the SNP hooks need of the platform: the RMP, the firmware and the caches.
pub trait SnpPlatform: Rmp + SevFirmware + SevCache {
    /// The platform is a software model (QEMU): the workload is told so, and every
    /// nested mapping is checked against the RMP when it is installed.
    const MODEL: bool = false;

    /// The check the hardware makes when the guest uses a nested mapping, made by the
    /// model when the mapping is installed. Hardware makes it on access instead.
    fn check_nested_map(
        &self,
        _asid: u32,
        _gpa: u64,
        _pa: u64,
        _size: RmpSize,
    ) -> Result<(), RmpFault> {
        Ok(())
    }
}

/// Counters for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnpStats {
    pub rmpupdates: u64,
    pub psmashes: u64,
    /// FAIL_OVERLAP or FAIL_INUSE answers that were retried.
    pub retries: u64,
    pub launch_pages: u64,
    /// Frames the RMP would not give back, quarantined for good.
    pub quarantined: u64,
}

/// The SEV-SNP vendor hooks for one VM instance of a guest (several instances may share
/// the guest's ASID and memory, SNP-07).
pub struct SnpMmu<P: SnpPlatform> {
    platform: P,
    asid: u32,
    /// The firmware's guest context page.
    gctx: u64,
    launched: bool,
    /// Runs `(gpa, pa, frames)` prepared before LAUNCH_FINISH: assigned by it.
    waiting: Vec<(u64, u64, u64)>,
    /// Frames LAUNCH_UPDATE took; LAUNCH_FINISH leaves them as they are.
    launch_pages: BTreeSet<u64>,
    /// The entries made for the guest.
    entries: RmpRecord,
    pub stats: SnpStats,
}

impl<P: SnpPlatform> SnpMmu<P> {
    /// Start launching a guest on `asid`, with `gctx` (a 4 KiB hypervisor page, not
    /// 2 MiB aligned: SNP-08) as its firmware context: the page becomes a Firmware
    /// page, then GCTX_CREATE, LAUNCH_START and ACTIVATE.
    pub fn launch(mut platform: P, asid: u32, gctx: u64, policy: u64) -> Result<Self, VendorError> {
        if gctx.is_multiple_of(HUGE) {
            return Err(VendorError::failed(0, "SNP context page is 2 MiB aligned"));
        }
        update(
            &mut platform,
            gctx,
            RmpState::private(0, RmpSize::Size4K, 0, true),
        )?;
        platform.snp_launch_begin(gctx, policy, asid)?;
        Ok(Self::new(platform, asid, gctx, false))
    }

    /// Another VM instance of the launched guest `gctx` on `asid`, over the same private
    /// memory (a restart, or intra-host migration): its frames are already assigned, with
    /// the `entries` the instance before made ([`SnpMmu::entries`]).
    pub fn attach(platform: P, asid: u32, gctx: u64, entries: RmpRecord) -> Self {
        let mut mmu = Self::new(platform, asid, gctx, true);
        mmu.entries = entries;
        mmu
    }

    fn new(platform: P, asid: u32, gctx: u64, launched: bool) -> Self {
        Self {
            platform,
            asid,
            gctx,
            launched,
            waiting: Vec::new(),
            launch_pages: BTreeSet::new(),
            entries: RmpRecord::default(),
            stats: SnpStats::default(),
        }
    }

    pub fn asid(&self) -> u32 {
        self.asid
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }

    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    pub fn launched(&self) -> bool {
        self.launched
    }

    /// The RMP entries this instance made or knows of.
    pub fn entries(&self) -> &RmpRecord {
        &self.entries
    }

    /// Retire the guest once no instance runs and its private memory is destroyed:
    /// DECOMMISSION, the context page back from the firmware, then every cache written
    /// back and the ASID's cached translations flushed (SNP_DF_FLUSH) before the ASID
    /// is used again. Returns the context page, now the hypervisor's.
    pub fn retire(mut self) -> Result<u64, VendorError> {
        self.platform.snp_decommission(self.gctx)?;
        self.platform.snp_page_reclaim(self.gctx, RmpSize::Size4K)?;
        update(
            &mut self.platform,
            self.gctx,
            RmpState::shared(RmpSize::Size4K),
        )?;
        self.platform.write_back_all();
        self.platform.snp_df_flush()?;
        Ok(self.gctx)
    }

    fn rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError> {
        self.stats.rmpupdates += 1;
        retried(&mut self.stats.retries, || {
            self.platform.rmpupdate(pa, state)
        })
    }

    fn psmash(&mut self, block: u64) -> Result<(), RmpError> {
        self.stats.psmashes += 1;
        retried(&mut self.stats.retries, || self.platform.psmash(block))?;
        self.entries.split(block);
        Ok(())
    }

    /// Assign `frames` frames at `pa` to the guest at `gpa` onwards: one 2 MiB entry
    /// for a whole aligned block with no entry yet, else 4 KiB entries. On a refusal the
    /// frames assigned here are made shared again.
    fn assign(&mut self, gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError> {
        let whole_block = frames == HUGE_FRAMES
            && pa.is_multiple_of(HUGE)
            && gpa.is_multiple_of(HUGE)
            && !self.entries.has_small(pa);
        if whole_block {
            let state = RmpState::private(gpa, RmpSize::Size2M, self.asid, false);
            if self.rmpupdate(pa, state).is_ok() {
                self.entries.set_huge(pa);
                return Ok(());
            }
        }
        for i in 0..frames {
            let (frame_gpa, frame) = (gpa + i * FRAME, pa + i * FRAME);
            let state = RmpState::private(frame_gpa, RmpSize::Size4K, self.asid, false);
            if let Err(error) = self.rmpupdate(frame, state) {
                self.make_shared_4k(pa, i, &mut |_| {});
                return Err(rmp_error(error));
            }
            self.entries.set_small(frame);
        }
        Ok(())
    }

    /// Make `frames` frames at `pa` shared, each with a 4 KiB entry.
    fn make_shared_4k(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        for frame in (0..frames).map(|i| pa + i * FRAME) {
            if !self.entries.is_small(frame) {
                continue;
            }
            if self
                .rmpupdate(frame, RmpState::shared(RmpSize::Size4K))
                .is_err()
            {
                self.stats.quarantined += 1;
                quarantine(frame);
                continue;
            }
            self.entries.clear_small(frame);
        }
    }

    /// Give back frames of one 2 MiB block.
    fn reclaim_in_block(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        let block = block_of(pa);
        if self.entries.is_huge(block) {
            if frames == HUGE_FRAMES {
                if self
                    .rmpupdate(block, RmpState::shared(RmpSize::Size2M))
                    .is_ok()
                {
                    self.entries.clear_huge(block);
                } else {
                    self.stats.quarantined += HUGE_FRAMES;
                    (0..HUGE_FRAMES).for_each(|i| quarantine(block + i * FRAME));
                }
                return;
            }
            // Part of a 2 MiB entry cannot become shared on its own.
            if self.psmash(block).is_err() {
                self.stats.quarantined += frames;
                (0..frames).for_each(|i| quarantine(pa + i * FRAME));
                return;
            }
        }
        self.make_shared_4k(pa, frames, quarantine);
    }

    /// LAUNCH_FINISH is done: assign what was prepared while launching, except the
    /// launch pages, which the firmware already made the guest's.
    fn assign_waiting(&mut self) -> Result<(), VendorError> {
        for (gpa, pa, frames) in core::mem::take(&mut self.waiting) {
            let mut start = 0;
            while start < frames {
                let taken = |i: u64| self.launch_pages.contains(&(pa + i * FRAME));
                if taken(start) {
                    start += 1;
                    continue;
                }
                let end = (start..frames).find(|&i| taken(i)).unwrap_or(frames);
                self.assign(gpa + start * FRAME, pa + start * FRAME, end - start)?;
                start = end;
            }
        }
        Ok(())
    }

    /// Forget waiting frames `[pa, pa + frames)` (invalidated before LAUNCH_FINISH).
    fn forget_waiting(&mut self, pa: u64, frames: u64) {
        let end = pa + frames * FRAME;
        let mut kept = Vec::new();
        for &(run_gpa, run_pa, run_frames) in &self.waiting {
            let run_end = run_pa + run_frames * FRAME;
            if run_pa < pa {
                kept.push((run_gpa, run_pa, (run_end.min(pa) - run_pa) / FRAME));
            }
            if run_end > end {
                let from = run_pa.max(end);
                kept.push((run_gpa + (from - run_pa), from, (run_end - from) / FRAME));
            }
        }
        self.waiting = kept;
    }
}

impl<P: SnpPlatform> VendorMmu for SnpMmu<P> {
    const BOOT_FEATURES: u64 =
        FEATURE_TRANSPORT_GHCB | if P::MODEL { FEATURE_SNP_MODEL } else { 0 };
    const LAUNCH_PAGES: bool = true;

    fn prepare(&mut self, gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError> {
        if !self.platform.coherent_across_keys() {
            self.platform.flush_host_lines(pa, frames);
        }
        if !self.launched {
            self.waiting.push((gpa, pa, frames));
            return Ok(());
        }
        self.assign(gpa, pa, frames)
    }

    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        let end = pa + frames * FRAME;
        if !self.launched {
            self.forget_waiting(pa, frames);
        }
        let mut at = pa;
        while at < end {
            let next = (block_of(at) + HUGE).min(end);
            let n = (next - at) / FRAME;
            self.reclaim_in_block(at, n, quarantine);
            self.platform.flush_guest_lines(at, n, self.asid);
            at = next;
        }
        for frame in (pa..end).step_by(FRAME as usize) {
            self.launch_pages.remove(&frame);
        }
    }

    // Every VMRUN flushes the guest's ASID from the TLB (as on plain SVM).
    fn zap(&mut self, _gpa: u64, _size: u64) {}

    // The frame is still assigned and validated: nothing to redo (SNP-02).
    fn unzap(&mut self, _gpa: u64, _size: PageSize) {}

    fn max_private_leaf(&self, pa: u64) -> PageSize {
        let block = block_of(pa);
        if !self.launched || self.entries.has_small(block) {
            PageSize::Size4K
        } else {
            PageSize::Size2M
        }
    }

    fn check_private_leaf(&mut self, gpa: u64, size: PageSize, pa: u64) -> Result<(), VendorError> {
        // Launch maps frames the RMP gets only at LAUNCH_UPDATE or LAUNCH_FINISH; the
        // guest uses no mapping before then.
        if !P::MODEL || !self.launched {
            return Ok(());
        }
        self.platform
            .check_nested_map(self.asid, gpa, pa, size.into())
            .map_err(|fault| rmp_fault(fault.reason))
    }

    fn split_private(&mut self, pa: u64) -> Result<(), VendorError> {
        let block = block_of(pa);
        if self.entries.is_huge(block) {
            self.psmash(block).map_err(rmp_error)?;
        }
        Ok(())
    }

    fn add_launch_page(&mut self, gpa: u64, pa: u64, _source: u64) -> Result<(), VendorError> {
        if self.launched {
            return Err(VendorError::failed(0, "launch page after LAUNCH_FINISH"));
        }
        // The firmware reads the page from memory: no host-key line may hold its data.
        if !self.platform.coherent_across_keys() {
            self.platform.flush_host_lines(pa, 1);
        }
        let pre_guest = RmpState::private(gpa, RmpSize::Size4K, self.asid, true);
        self.rmpupdate(pa, pre_guest).map_err(rmp_error)?;
        self.entries.set_small(pa);
        self.launch_pages.insert(pa);
        let updated =
            self.platform
                .snp_launch_update(self.gctx, pa, RmpSize::Size4K, SnpPageType::Normal);
        if let Err(error) = updated {
            // Pre-Guest pages are the firmware's: reclaimed through it, never RMPUPDATEd
            // directly (SNP-03). A page that cannot be reclaimed stays out of use.
            self.launch_pages.remove(&pa);
            if self.platform.snp_page_reclaim(pa, RmpSize::Size4K).is_ok() {
                self.make_shared_4k(pa, 1, &mut |_| {});
            } else {
                self.stats.quarantined += 1;
            }
            return Err(error.into());
        }
        self.stats.launch_pages += 1;
        Ok(())
    }

    fn finish_launch(&mut self) -> Result<(), VendorError> {
        self.platform.snp_launch_finish(self.gctx, [0; 32])?;
        self.launched = true;
        self.assign_waiting()
    }
}

fn retried(
    retries: &mut u64,
    mut op: impl FnMut() -> Result<(), RmpError>,
) -> Result<(), RmpError> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(RmpError::FailOverlap | RmpError::FailInUse) if attempt < RMP_RETRIES => {
                attempt += 1;
                *retries += 1;
            }
            result => return result,
        }
    }
}

fn update(platform: &mut impl Rmp, pa: u64, state: RmpState) -> Result<(), VendorError> {
    retried(&mut 0, || platform.rmpupdate(pa, state)).map_err(rmp_error)
}

fn rmp_error(error: RmpError) -> VendorError {
    VendorError::failed(error.code().into(), error.name())
}

/// An RMP check the model failed, named for the stop report.
fn rmp_fault(reason: RmpFaultReason) -> VendorError {
    let name = match reason {
        RmpFaultReason::HostWriteToAssigned => "RMP fault: host write to an assigned page",
        RmpFaultReason::Immutable => "RMP fault: immutable page",
        RmpFaultReason::NotAssigned => "RMP fault: page not assigned to the guest",
        RmpFaultReason::WrongAsid => "RMP fault: page assigned to another ASID",
        RmpFaultReason::WrongGpa => "RMP fault: page assigned at another GPA",
        RmpFaultReason::SizeMismatch => "RMP fault: mapping larger than the RMP entry",
        RmpFaultReason::NotValidated => "RMP fault: page not validated",
    };
    VendorError::failed(reason as u64, name)
}
