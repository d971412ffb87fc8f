//! A software model of the Intel TDX module 1.5 for one TD: the S-EPT entry states and
//! the SEAMCALLs that move them, the PAMT, TLB epoch tracking, teardown, and the guest
//! side (ACCEPT and plain accesses). Spec digest C.3, C.4 and G.2.
//!
//! The model is called from one thread, so lock contention and other faults are injected
//! ([`TdxModel::hold_tree_lock`], [`TdxModel::inject`]). Every refused call leaves the
//! model unchanged (the module checks everything before it commits), except
//! `TDX_INTERRUPTED_RESUMABLE` from CACHE.WB, which records how far the write-back got.
//!
//! Where the digest is silent the model follows the module source (intel/tdx-module,
//! 1.5.x `src/vmm_dispatcher/api_calls/*.c`); those places cite the file. Statuses come
//! back without operand ids in the low bits.

mod cache;
pub mod codes;
mod epoch;
mod guest;
mod host;
mod inject;
mod invariants;
mod locks;
mod mem;
mod pamt;
mod sept;
mod teardown;
#[cfg(test)]
mod tests;
mod vcpu;

use alloc::vec::Vec;

use crate::abi::Level;
use crate::status::Status;

use cache::{CacheWb, DirtyLines};
use epoch::Epoch;
use inject::Faults;
use locks::Locks;
use pamt::Pamt;
use sept::Sept;
use vcpu::Vcpu;

pub use pamt::PageType;
pub use sept::EntryState;

/// Pseudo-leaf under which [`crate::TdxModule::kick_vcpus`] appears in the call log, so the
/// order BLOCK, TRACK, kick, REMOVE can be checked (no SEAMCALL has this number).
pub const KICK: u64 = u64::MAX;

/// The TD the model starts with: created, keys configured, vCPUs created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdConfig {
    /// The TD root page.
    pub tdr: u64,
    /// TDCS and TDVPR/TDCX pages.
    pub control: heapless::Vec<u64, 32>,
    /// vCPUs created; 0 makes MR.FINALIZE fail with `TDX_NO_VCPUS`.
    pub vcpus: usize,
    pub hkid: u16,
}

/// TDCS.OP_STATE (the states without TD migration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpState {
    /// Being built: PAGE.ADD, MR.EXTEND, MR.FINALIZE allowed; no TLB tracking needed.
    Initialized,
    /// Finalized: vCPUs may run; removals need BLOCK and TRACK.
    Runnable,
}

/// TDR.LIFECYCLE_STATE from key configuration on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    KeysConfigured,
    /// After VPFLUSHDONE: no vCPU enters again, the key waits for CACHE.WB.
    Blocked,
    /// After KEY.FREEID: pages may be reclaimed.
    Teardown,
}

/// One S-EPT entry that is not FREE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeptEntry {
    pub gpa: u64,
    pub level: Level,
    pub state: EntryState,
    /// The page mapped (leaf) or the S-EPT page linked (NL_*).
    pub hpa: u64,
}

/// Outcome of the guest's TDG.MEM.PAGE.ACCEPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// PENDING became MAPPED; the page was zeroed with the TD's key.
    Accepted,
    /// `TDX_PAGE_ALREADY_ACCEPTED`: the GPA is already guest-accessible; nothing zeroed.
    AlreadyAccepted,
    /// `TDX_PAGE_SIZE_MISMATCH`: a table, not a leaf, sits at the requested level.
    SizeMismatch,
    /// FREE, missing or blocked: TD exit to the VMM (EPT violation, type ACCEPT).
    EptViolation,
}

/// Outcome of a guest access to a private GPA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Translated; `hpa` is the 4 KiB host page holding the GPA.
    Mapped { hpa: u64 },
    /// Nothing mapped, or blocked: EPT violation exit to the VMM.
    EptViolation,
    /// The "unexpected pending" EPT violation (never accepted): fatal for KVM.
    Pending,
}

/// One call through [`crate::TdxModule`]. `gpa` is the GPA operand; leaves without one log
/// their main operand there instead: the host page (WBINVD, RECLAIM), the vCPU index
/// (VP.FLUSH), 1 for a resumed CACHE.WB, else 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedCall {
    pub leaf: u64,
    pub gpa: u64,
    pub level: Option<Level>,
    pub status: Status,
}

/// The TDX module, as one TD sees it.
#[derive(Clone, Debug)]
pub struct TdxModel {
    td: Td,
    locks: Locks,
    faults: Faults,
    log: Vec<LoggedCall>,
    kicks: u64,
}

/// Everything the module keeps for the TD; a refused call leaves it equal.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Td {
    tdr: u64,
    control: Vec<u64>,
    hkid: u16,
    op_state: OpState,
    lifecycle: Lifecycle,
    epoch: Epoch,
    /// TDR.CHLDCNT: 4 KiB pages associated with the TD (control, S-EPT, private).
    child_count: u64,
    sept: Sept,
    pamt: Pamt,
    dirty: DirtyLines,
    vcpus: Vec<Vcpu>,
    mrtd_extends: u64,
    cache_wb: CacheWb,
}

impl TdxModel {
    /// The TD after TDH.MNG.CREATE, KEY.CONFIG, ADDCX, MNG.INIT and the vCPUs'
    /// VP.CREATE/ADDCX/INIT. Panics on an unaligned or repeated page (a harness bug).
    pub fn new(config: TdConfig) -> Self {
        let mut pamt = Pamt::default();
        let mut dirty = DirtyLines::default();
        let pages = core::iter::once((config.tdr, PageType::Tdr))
            .chain(config.control.iter().map(|&page| (page, PageType::Tdcs)));
        for (page, ty) in pages {
            assert!(
                pamt.check_free(page, Level::L4K).is_ok(),
                "TD page {page:#x} is unaligned or given twice"
            );
            pamt.assign(page, Level::L4K, ty, config.tdr);
            // Control structures are written with a private key from creation on.
            dirty.touch(page, Level::L4K);
        }
        let td = Td {
            tdr: config.tdr,
            control: config.control.iter().copied().collect(),
            hkid: config.hkid,
            op_state: OpState::Initialized,
            lifecycle: Lifecycle::KeysConfigured,
            epoch: Epoch::new(),
            child_count: config.control.len() as u64,
            sept: Sept::default(),
            pamt,
            dirty,
            vcpus: alloc::vec![Vcpu::default(); config.vcpus],
            mrtd_extends: 0,
            cache_wb: CacheWb::new(),
        };
        Self {
            td,
            locks: Locks::default(),
            faults: Faults::default(),
            log: Vec::new(),
            kicks: 0,
        }
    }

    /// CACHE.WB returns `TDX_INTERRUPTED_RESUMABLE` this many times per write-back
    /// before it completes (default 1, so the resume path is always exercised).
    pub fn set_cache_wb_interruptions(&mut self, count: u32) {
        self.td.cache_wb.interruptions = count;
    }

    /// Every entry that is not FREE, NL entries included, by level then GPA.
    pub fn entries(&self) -> impl Iterator<Item = SeptEntry> + '_ {
        self.td.sept.iter()
    }

    /// The entry at `level` covering `gpa`, unless it is FREE.
    pub fn entry(&self, gpa: u64, level: Level) -> Option<SeptEntry> {
        let entry = self.td.sept.get(gpa, level)?;
        Some(SeptEntry {
            gpa: level.align(gpa),
            level,
            state: entry.state,
            hpa: entry.hpa,
        })
    }

    pub fn op_state(&self) -> OpState {
        self.td.op_state
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.td.lifecycle
    }

    /// TDCS.TD_EPOCH (starts at 1).
    pub fn epoch(&self) -> u64 {
        self.td.epoch.current()
    }

    pub fn hkid(&self) -> u16 {
        self.td.hkid
    }

    /// TDR.CHLDCNT: 4 KiB pages still associated with the TD, the TDR not counted.
    pub fn child_count(&self) -> u64 {
        self.td.child_count
    }

    /// What the PAMT says about the host page holding `hpa`.
    pub fn page_type(&self, hpa: u64) -> PageType {
        self.td.pamt.page_type(hpa)
    }

    /// Every page the TD owns, the TDR included: (base, type, size).
    pub fn owned_pages(&self) -> impl Iterator<Item = (u64, PageType, Level)> + '_ {
        let pages = self.td.pamt.iter();
        pages.map(|(base, page)| (base, page.ty, page.size))
    }

    /// Whether the 4 KiB page holding `hpa` may hold dirty cache lines written with a
    /// private key (TD key, or the module's key for the TDR): set while the TD uses the
    /// page, cleared by TDH.PHYMEM.PAGE.WBINVD on it or a completed CACHE.WB. A page
    /// back in the host's pool with this set is a bug.
    pub fn has_dirty_td_lines(&self, hpa: u64) -> bool {
        self.td.dirty.is_dirty(hpa)
    }

    /// Successful MR.EXTENDs.
    pub fn mrtd_extends(&self) -> u64 {
        self.td.mrtd_extends
    }

    /// Every call through [`crate::TdxModule`] since creation or [`TdxModel::clear_log`].
    pub fn log(&self) -> &[LoggedCall] {
        &self.log
    }

    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    /// Logged calls of `leaf`, whatever their status.
    pub fn count(&self, leaf: u64) -> usize {
        self.log.iter().filter(|call| call.leaf == leaf).count()
    }

    /// Calls of [`crate::TdxModule::kick_vcpus`].
    pub fn kicks(&self) -> u64 {
        self.kicks
    }
}
