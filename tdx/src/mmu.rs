//! core's vendor hooks for TDX: the S-EPT kept in step with core's mirror table through
//! the TDX module, in the order the module requires (spec digest C.3, C.4.7).

use crate::abi::{EXTEND_CHUNK, Level, SHARED_BIT_4_LEVEL};
use crate::module::TdxModule;
use crate::status::Status;
use cloister_abi::hypercall::FEATURE_TRANSPORT_TDVMCALL;
use cloister_core::mmu::{ExternalTable, PageSize, VendorError, VendorMmu};

const PAGE: u64 = 4096;
/// TDH.PHYMEM.CACHE.WB is interruptible; KVM resumes it up to this many times.
const CACHE_WB_RESUMES: u32 = 10_000;

/// A refusal that is Cloister's own rather than the module's: FINALIZE while pages
/// premapped at launch were never added.
pub const PREMAPPED_NOT_ADDED: VendorError =
    VendorError::failed(0, "premapped launch pages were not added before finalize");

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
    /// Mirror leaves installed before finalize and not yet PAGE.ADDed: FINALIZE is
    /// refused unless it is 0 (TDX-09).
    premapped: u64,
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
            premapped: 0,
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
        debug_assert_eq!(removed, pa, "the S-EPT mapped another page than the mirror");
        for frame in 0..size.bytes() / PAGE {
            self.call(|m| m.page_wbinvd(pa + frame * PAGE))?;
        }
        Ok(())
    }

    /// Before finalize no TLB tracking is needed; a premapped page that was never added
    /// has no S-EPT leaf at all, and only the premapped count goes.
    fn remove_unfinalized(&mut self, gpa: u64, size: PageSize, pa: u64) -> Result<(), Status> {
        match self.call(|m| m.page_remove(gpa, level(size))) {
            Ok(_) => {
                for frame in 0..size.bytes() / PAGE {
                    self.call(|m| m.page_wbinvd(pa + frame * PAGE))?;
                }
                Ok(())
            }
            Err(status)
                if self.premapped > 0
                    && (status.is(Status::EPT_ENTRY_STATE_INCORRECT)
                        || status.is(Status::EPT_ENTRY_FREE)
                        || status.is(Status::EPT_WALK_FAILED)) =>
            {
                self.premapped -= 1;
                Ok(())
            }
            Err(status) => Err(status),
        }
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

    /// A frame becomes the TD's when it is mapped (PAGE.ADD or PAGE.AUG), not before.
    fn prepare(&mut self, _pa: u64, _frames: u64) -> Result<(), VendorError> {
        Ok(())
    }

    /// Frames leave the TD by REMOVE and WBINVD, already done when a leaf goes.
    fn invalidate(&mut self, _pa: u64, _frames: u64) {}

    /// Private leaves were tracked out of the TLB on removal; the shared table is
    /// flushed on every entry by the vCPU backend (INVEPT).
    fn zap(&mut self, _gpa: u64, _size: u64) {}

    fn unzap(&mut self, _gpa: u64, _size: PageSize) {}

    fn finish_launch(&mut self) -> Result<(), VendorError> {
        if self.premapped != 0 {
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
            // Launch data arrives by PAGE.ADD (add_launch_page), with its contents.
            self.premapped += 1;
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
        self.call(|m| m.page_add(gpa, pa, source)).map_err(error)?;
        self.premapped = self.premapped.saturating_sub(1);
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
