//! core's vendor hooks for TDX: the S-EPT kept in step with core's mirror table through
//! the TDX module, in the order the module requires (spec digest C.3, C.4.7).

use crate::abi::{EXTEND_CHUNK, Level, SHARED_BIT_4_LEVEL};
use crate::module::TdxModule;
use crate::status::Status;
use alloc::collections::BTreeSet;
use cloister_abi::hypercall::FEATURE_TRANSPORT_TDVMCALL;
use cloister_core::mmu::{ExternalTable, PageSize, VendorError, VendorMmu};

const PAGE: u64 = 4096;
/// TDH.PHYMEM.CACHE.WB is interruptible; KVM resumes it up to this many times.
const CACHE_WB_RESUMES: u32 = 10_000;

/// A refusal that is Cloister's own rather than the module's: FINALIZE while pages
/// premapped at launch were never added.
pub const PREMAPPED_NOT_ADDED: VendorError =
    VendorError::failed(0, "premapped launch pages were not added before finalize");

/// Cloister's own refusal: PAGE.ADD of a page the mirror did not premap.
pub const NOT_PREMAPPED: VendorError =
    VendorError::failed(0, "launch page added without a premapped mirror leaf");

/// Counters of what the hooks did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TdxStats {
    /// SEAMCALLs issued (every attempt, retries included).
    pub seamcalls: u64,
    /// BUSY answers retried after kicking the vCPUs.
    pub busy_retries: u64,
    /// vCPU kicks.
    pub kicks: u64,
}

pub struct TdxMmu<M: TdxModule> {
    module: M,
    finalized: bool,
    /// Pages mapped in the mirror before finalize and not yet PAGE.ADDed: they have no
    /// S-EPT leaf. FINALIZE is refused unless there are none (TDX-09).
    premapped: BTreeSet<u64>,
    stats: TdxStats,
}

fn error(status: Status) -> VendorError {
    if status.is_busy() {
        VendorError::busy(status.0, status.name())
    } else {
        VendorError::failed(status.0, status.name())
    }
}

fn level(size: PageSize) -> Level {
    match size {
        PageSize::Size4K => Level::L4K,
        PageSize::Size2M => Level::L2M,
    }
}

impl<M: TdxModule> TdxMmu<M> {
    /// Hooks for a TD built but not finalized (the TDX module's INITIALIZED state).
    pub fn new(module: M) -> Self {
        Self {
            module,
            finalized: false,
            premapped: BTreeSet::new(),
            stats: TdxStats::default(),
        }
    }

    pub fn module(&self) -> &M {
        &self.module
    }

    pub fn module_mut(&mut self) -> &mut M {
        &mut self.module
    }

    pub fn stats(&self) -> TdxStats {
        self.stats
    }

    pub fn is_finalized(&self) -> bool {
        self.finalized
    }

    /// One SEAMCALL, counted.
    fn call<T>(&mut self, f: impl FnOnce(&mut M) -> Result<T, Status>) -> Result<T, Status> {
        self.stats.seamcalls += 1;
        f(&mut self.module)
    }

    /// A SEAMCALL on the removal path: on BUSY, force every vCPU out of the TD and try
    /// once more (TDX-04); what the second attempt says stands.
    fn call_kicking<T>(
        &mut self,
        mut f: impl FnMut(&mut M) -> Result<T, Status>,
    ) -> Result<T, Status> {
        match self.call(&mut f) {
            Err(status) if status.is_busy() => {
                self.stats.busy_retries += 1;
                self.kick();
                self.call(f)
            }
            other => other,
        }
    }

    fn kick(&mut self) {
        self.stats.kicks += 1;
        self.module.kick_vcpus();
    }

    /// BLOCK, TRACK, kick, REMOVE, WBINVD: a leaf leaves a runnable TD (TDX-05). core
    /// clears the frame afterwards and only then can it change hands.
    fn remove_runnable(&mut self, gpa: u64, size: PageSize, pa: u64) -> Result<(), Status> {
        let level = level(size);
        self.call_kicking(|m| m.range_block(gpa, level))?;
        self.call_kicking(|m| m.track())?;
        // vCPUs that entered in the blocking epoch must leave it before REMOVE.
        self.kick();
        let removed = self.call_kicking(|m| m.page_remove(gpa, level))?;
        // The mirror said `pa`: anything else is a broken mirror, and which frame is safe
        // to release is unknown. Refuse, so the VM stops and nothing is released.
        if removed != pa {
            return Err(Status::PAGE_METADATA_INCORRECT);
        }
        for frame in 0..size.bytes() / PAGE {
            self.call(|m| m.page_wbinvd(pa + frame * PAGE))?;
        }
        Ok(())
    }

    /// Before finalize no TLB tracking is needed. A premapped page that was never added
    /// has no S-EPT leaf: only its record goes.
    fn remove_unfinalized(&mut self, gpa: u64, size: PageSize, pa: u64) -> Result<(), Status> {
        let pages = size.bytes() / PAGE;
        if (0..pages).all(|i| self.premapped.contains(&(gpa + i * PAGE))) {
            for i in 0..pages {
                self.premapped.remove(&(gpa + i * PAGE));
            }
            return Ok(());
        }
        self.call(|m| m.page_remove(gpa, level(size)))?;
        for frame in 0..pages {
            self.call(|m| m.page_wbinvd(pa + frame * PAGE))?;
        }
        Ok(())
    }

    /// TDX-13: vCPUs flushed, the TD's caches written back and its key freed, then the
    /// S-EPT pages and control pages reclaimed, the TDR last.
    fn retire(
        &mut self,
        tables: &[ExternalTable],
        reclaimed: &mut dyn FnMut(u64),
    ) -> Result<(), Status> {
        for vcpu in 0..self.module.vcpu_count() {
            match self.call(|m| m.vp_flush(vcpu)) {
                // Never entered: nothing to flush.
                Err(status) if status.is(Status::VCPU_NOT_ASSOCIATED) => {}
                other => other?,
            }
        }
        self.call(|m| m.vpflushdone())?;
        let mut resume = false;
        let mut resumes = 0;
        loop {
            match self.call(|m| m.cache_wb(resume)) {
                Err(status)
                    if status.is(Status::INTERRUPTED_RESUMABLE) && resumes < CACHE_WB_RESUMES =>
                {
                    resume = true;
                    resumes += 1;
                }
                other => break other?,
            }
        }
        self.call(|m| m.key_freeid())?;
        let mut failed = None;
        for table in tables {
            match self.call(|m| m.page_reclaim(table.pa)) {
                Ok(()) => reclaimed(table.pa),
                // Leaked: the module may still own it.
                Err(status) => failed = failed.or(Some(status)),
            }
        }
        let pages = self.module.td_pages();
        for &page in &pages.control {
            if let Err(status) = self.call(|m| m.page_reclaim(page)) {
                failed = failed.or(Some(status));
            }
        }
        // Refused while any page above is still the TD's: then it is leaked too, and the
        // first refusal is the one reported.
        let tdr = self.call(|m| m.page_reclaim(pages.tdr));
        // The module wrote the TDR after the cache write-back (KVM writes it back too).
        let tdr = tdr.and_then(|()| self.call(|m| m.page_wbinvd(pages.tdr)));
        failed.map_or(tdr, Err)
    }
}

impl<M: TdxModule> VendorMmu for TdxMmu<M> {
    const SHARED_GPA_BIT: u64 = SHARED_BIT_4_LEVEL;
    const BOOT_FEATURES: u64 = FEATURE_TRANSPORT_TDVMCALL;
    const LAUNCH_PAGES: bool = true;

    /// A frame becomes the TD's when it is mapped (PAGE.ADD or PAGE.AUG), not before.
    fn prepare(&mut self, _gpa: u64, _pa: u64, _frames: u64) -> Result<(), VendorError> {
        Ok(())
    }

    /// Frames leave the TD by REMOVE and WBINVD, already done when a leaf goes.
    fn invalidate(&mut self, _pa: u64, _frames: u64, _quarantine: &mut dyn FnMut(u64)) {}

    /// Private leaves were tracked out of the TLB on removal; the shared table is
    /// flushed on every entry by the vCPU backend (INVEPT).
    fn zap(&mut self, _gpa: u64, _size: u64) {}

    fn unzap(&mut self, _gpa: u64, _size: PageSize) {}

    fn finish_launch(&mut self) -> Result<(), VendorError> {
        if !self.premapped.is_empty() {
            return Err(PREMAPPED_NOT_ADDED);
        }
        self.call(|m| m.mr_finalize()).map_err(error)?;
        self.finalized = true;
        Ok(())
    }

    fn link_external_table(
        &mut self,
        gpa: u64,
        level: usize,
        page: u64,
    ) -> Result<(), VendorError> {
        let level = u8::try_from(level)
            .ok()
            .and_then(Level::new)
            .ok_or(VendorError::failed(0, "S-EPT level out of range"))?;
        self.call(|m| m.sept_add(gpa, level, page)).map_err(error)
    }

    fn set_external_leaf(&mut self, gpa: u64, size: PageSize, pa: u64) -> Result<(), VendorError> {
        if !self.finalized {
            // Launch data arrives by PAGE.ADD (add_launch_page), with its contents, one
            // 4 KiB page at a time.
            for i in 0..size.bytes() / PAGE {
                self.premapped.insert(gpa + i * PAGE);
            }
            return Ok(());
        }
        self.call(|m| m.page_aug(gpa, level(size), pa))
            .map_err(error)
    }

    fn remove_external_leaf(
        &mut self,
        gpa: u64,
        size: PageSize,
        pa: u64,
    ) -> Result<(), VendorError> {
        if self.finalized {
            self.remove_runnable(gpa, size, pa)
        } else {
            self.remove_unfinalized(gpa, size, pa)
        }
        .map_err(error)
    }

    fn add_launch_page(&mut self, gpa: u64, pa: u64, source: u64) -> Result<(), VendorError> {
        if self.finalized {
            // TDX-10: PAGE.ADD and MR.EXTEND exist only before finalize.
            return Err(error(Status::OP_STATE_INCORRECT));
        }
        if !self.premapped.contains(&gpa) {
            return Err(NOT_PREMAPPED);
        }
        self.call(|m| m.page_add(gpa, pa, source)).map_err(error)?;
        self.premapped.remove(&gpa);
        for chunk in 0..PAGE / EXTEND_CHUNK {
            self.call(|m| m.mr_extend(gpa + chunk * EXTEND_CHUNK))
                .map_err(error)?;
        }
        Ok(())
    }

    fn teardown_external(
        &mut self,
        tables: &[ExternalTable],
        reclaimed: &mut dyn FnMut(u64),
    ) -> Result<(), VendorError> {
        self.retire(tables, reclaimed).map_err(error)
    }
}
