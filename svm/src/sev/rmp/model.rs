//! The RMP as a software model, per 4 KiB host frame (spec digest G.1): RMPUPDATE and
//! PSMASH with their preconditions and codes, the guest's PVALIDATE, the firmware's
//! LAUNCH_UPDATE and PAGE_RECLAIM, the RMP access checks, and which cache lines are
//! dirty under which key. Rules the digest marks as inference, or that this file adds,
//! say so where they are applied.
//!
//! Only assigned entries are stored: an absent frame is hypervisor-owned with the
//! all-zero entry. A hypervisor-owned entry's page size changes no check, so an
//! RMPUPDATE to shared leaves absent frames whatever its size. A 2 MiB entry is stored
//! as 512 equal copies, one per frame, each with the GPA of the whole 2 MiB page. VMPL
//! permissions (RMPADJUST, [`VmplPermissions`]) are kept per frame beside the entries,
//! once RMPADJUST changed them from what RMPUPDATE leaves.

mod adjust;

pub use adjust::{RMPADJUST_VMSA, RmpadjustError, VmplPermissions, rmpadjust_rdx};

use super::{Rmp, RmpEntry, RmpError, RmpReadError, RmpSize, RmpState};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// Host physical addresses have at most 52 bits.
const PA_LIMIT: u64 = 1 << 52;

/// An instruction fault injection can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpOp {
    Rmpupdate,
    Psmash,
}

/// One RMPUPDATE or PSMASH the model ran, with its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpCall {
    Rmpupdate {
        pa: u64,
        state: RmpState,
        result: Result<(), RmpError>,
    },
    Psmash {
        pa: u64,
        result: Result<(), RmpError>,
    },
}

/// Calls so far, whatever their outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmpCounts {
    pub rmpupdates: u64,
    pub psmashes: u64,
    pub pvalidates: u64,
    pub rmpadjusts: u64,
    pub vm_page_flushes: u64,
    pub clflushes: u64,
    pub wbinvds: u64,
}

/// The key cache lines of a frame are tagged with: the host's, or a guest's (by ASID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheKey {
    Host,
    Guest(u32),
}

/// Why an access or a mapping breaks the RMP rules (digest D.1, G.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpFaultReason {
    /// The host wrote to a frame assigned to a guest or the firmware, or through a
    /// 2 MiB mapping that covers one.
    HostWriteToAssigned,
    /// Firmware-only page (Pre-Guest or Firmware state).
    Immutable,
    /// A private access or mapping of a hypervisor-owned frame.
    NotAssigned,
    WrongAsid,
    /// The frame belongs to the guest at another GPA.
    WrongGpa,
    /// The NPT leaf is larger than the RMP entry, or the guest validated 4 KiB of a
    /// 2 MiB entry (#NPF with SIZEM; the handler tells them apart by the entry size).
    SizeMismatch,
    /// The guest has not validated the page: #VC in the guest, not an exit.
    NotValidated,
}

impl RmpFaultReason {
    pub const fn name(self) -> &'static str {
        match self {
            Self::HostWriteToAssigned => "host write to an assigned page",
            Self::Immutable => "immutable page",
            Self::NotAssigned => "page not assigned",
            Self::WrongAsid => "page assigned to another ASID",
            Self::WrongGpa => "page assigned at another GPA",
            Self::SizeMismatch => "page size mismatch",
            Self::NotValidated => "page not validated",
        }
    }
}

/// An RMP check failure: the host physical address accessed, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmpFault {
    pub pa: u64,
    pub reason: RmpFaultReason,
}

impl fmt::Display for RmpFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RMP fault at {:#x}: {}", self.pa, self.reason.name())
    }
}

/// Outcome of an RMP access check.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpCheck {
    Ok,
    Fault(RmpFault),
}

impl RmpCheck {
    pub const fn is_ok(self) -> bool {
        matches!(self, Self::Ok)
    }

    pub const fn fault(self) -> Option<RmpFault> {
        match self {
            Self::Ok => None,
            Self::Fault(fault) => Some(fault),
        }
    }
}

/// PVALIDATE success: RAX = 0, with CF = 1 when the bit already had the value asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvalidateOutcome {
    Changed,
    Unchanged,
}

/// PVALIDATE failure: a status in RAX, or a nested page fault to the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvalidateError {
    /// 1: misaligned, or the frame is not this guest's page at this GPA.
    FailInput,
    /// 6: a 2 MiB PVALIDATE of 4 KiB entries.
    FailSizeMismatch,
    /// A 4 KiB PVALIDATE inside a 2 MiB entry does not complete: #NPF with the RMP
    /// and SIZEM bits, which the hypervisor answers with PSMASH (SNP-05). Linux
    /// `handle_rmp_page_fault`: "Only RMPADJUST/PVALIDATE should cause
    /// PFERR_GUEST_SIZEM ... if a guest PVALIDATEs a 4K GFN that is backed by a huge
    /// page in the host whose RMP entry has the hugepage/assigned bits set."
    SizeMismatchFault(RmpFault),
}

impl PvalidateError {
    /// RAX, for the failures the guest sees.
    pub const fn code(self) -> Option<u32> {
        match self {
            Self::FailInput => Some(1),
            Self::FailSizeMismatch => Some(6),
            Self::SizeMismatchFault(_) => None,
        }
    }
}

/// Firmware refusals of the page commands, with the SEV firmware status codes (Linux
/// `include/uapi/linux/psp-sev.h`). Which command returns which is **[inference]**.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwPageError {
    /// 0x1A: not assigned, or not immutable.
    InvalidPageState,
    /// 0x1C: assigned to another ASID.
    InvalidPageOwner,
}

impl FwPageError {
    pub const fn code(self) -> u32 {
        match self {
            Self::InvalidPageState => 0x1a,
            Self::InvalidPageOwner => 0x1c,
        }
    }
}

/// The RMP of one host, as software (module documentation).
#[derive(Clone, Debug)]
pub struct RmpModel {
    /// Assigned entries by frame number.
    frames: BTreeMap<u64, RmpEntry>,
    /// VMPL permissions by frame number, where RMPADJUST changed them.
    perms: BTreeMap<u64, VmplPermissions>,
    /// First host physical address the RMP does not cover.
    limit: u64,
    dirty: BTreeSet<(u64, CacheKey)>,
    /// Injected FAIL_INUSE: the op, and its calls until it fires (1 = the next).
    inuse: Vec<(RmpOp, u32)>,
    log: Vec<RmpCall>,
    /// Record calls in `log` (tests); off for a model that runs a whole workload.
    logging: bool,
    counts: RmpCounts,
}

impl Default for RmpModel {
    fn default() -> Self {
        Self::new()
    }
}

impl RmpModel {
    /// An RMP covering every physical address, all hypervisor-owned.
    pub fn new() -> Self {
        Self::with_limit(PA_LIMIT)
    }

    /// An RMP covering host physical addresses below `limit` only.
    pub fn with_limit(limit: u64) -> Self {
        Self {
            frames: BTreeMap::new(),
            perms: BTreeMap::new(),
            limit: limit.min(PA_LIMIT),
            dirty: BTreeSet::new(),
            inuse: Vec::new(),
            log: Vec::new(),
            logging: true,
            counts: RmpCounts::default(),
        }
    }

    /// The entry governing the frame at `pa` (infallible [`Rmp::entry`]).
    pub fn lookup(&self, pa: u64) -> RmpEntry {
        self.frames
            .get(&(pa >> 12))
            .copied()
            .unwrap_or(RmpEntry::HYPERVISOR)
    }

    /// Every assigned frame and the entry governing it, by address.
    pub fn assigned_frames(&self) -> impl Iterator<Item = (u64, RmpEntry)> + '_ {
        self.frames.iter().map(|(&pfn, &entry)| (pfn << 12, entry))
    }

    /// The `nth` next call of `op` (1 = the very next, counted whatever its outcome)
    /// returns FAIL_INUSE and changes nothing, as when another CPU holds the entry.
    pub fn inject_inuse(&mut self, op: RmpOp, nth: u32) {
        assert!(nth >= 1, "the 1st next call is the earliest");
        self.inuse.push((op, nth));
    }

    /// RMPUPDATE and PSMASH calls since the last `take_log`.
    pub fn take_log(&mut self) -> Vec<RmpCall> {
        core::mem::take(&mut self.log)
    }

    /// Stop recording calls (the counts go on): a model running a whole workload would
    /// otherwise grow its log without bound.
    pub fn stop_logging(&mut self) {
        self.logging = false;
        self.log = Vec::new();
    }

    pub fn log(&self) -> &[RmpCall] {
        &self.log
    }

    pub fn counts(&self) -> RmpCounts {
        self.counts
    }

    /// Guest PVALIDATE of the page at `gpa`, which its NPT maps to `pa`.
    pub fn pvalidate(
        &mut self,
        asid: u32,
        gpa: u64,
        pa: u64,
        size: RmpSize,
        validate: bool,
    ) -> Result<PvalidateOutcome, PvalidateError> {
        self.counts.pvalidates += 1;
        let entry = self.lookup(pa);
        let aligned = gpa.is_multiple_of(size.bytes()) && pa.is_multiple_of(size.bytes());
        // An immutable page is not yet (or no longer) the guest's: **[inference]**.
        if !aligned || ownership_fault(&entry, asid, gpa, pa).is_some() || entry.immutable {
            return Err(PvalidateError::FailInput);
        }
        match (size, entry.size) {
            (RmpSize::Size2M, RmpSize::Size4K) => return Err(PvalidateError::FailSizeMismatch),
            (RmpSize::Size4K, RmpSize::Size2M) => {
                return Err(PvalidateError::SizeMismatchFault(RmpFault {
                    pa,
                    reason: RmpFaultReason::SizeMismatch,
                }));
            }
            _ => {}
        }
        if entry.validated == validate {
            return Ok(PvalidateOutcome::Unchanged);
        }
        self.update_entry(pa, |e| e.validated = validate);
        Ok(PvalidateOutcome::Changed)
    }

    /// Firmware SNP_LAUNCH_UPDATE of the page at `pa` for guest `asid`: the page must
    /// be Pre-Guest (assigned to `asid`, immutable); it becomes guest-valid and mutable.
    pub fn fw_launch_update(&mut self, pa: u64, asid: u32) -> Result<(), FwPageError> {
        let entry = self.lookup(pa);
        if !entry.assigned || !entry.immutable {
            return Err(FwPageError::InvalidPageState);
        }
        if entry.asid != asid {
            return Err(FwPageError::InvalidPageOwner);
        }
        self.update_entry(pa, |e| {
            e.validated = true;
            e.immutable = false;
        });
        Ok(())
    }

    /// Firmware setting or clearing the VMSA bit of the assigned entry at `pa`: a
    /// Firmware page with it is a guest context page (SNP_GCTX_CREATE sets it,
    /// SNP_DECOMMISSION clears it), a guest page with it a VMSA (SNP_LAUNCH_UPDATE of
    /// a VMSA page). The caller checks the page state first.
    pub fn fw_set_vmsa(&mut self, pa: u64, vmsa: bool) -> Result<(), FwPageError> {
        if !self.lookup(pa).assigned {
            return Err(FwPageError::InvalidPageState);
        }
        self.update_entry(pa, |e| e.vmsa = vmsa);
        Ok(())
    }

    /// Firmware SNP_PAGE_RECLAIM: an immutable page becomes mutable with the same
    /// owner, so RMPUPDATE may then make it shared (Linux does exactly that).
    pub fn fw_reclaim(&mut self, pa: u64) -> Result<(), FwPageError> {
        let entry = self.lookup(pa);
        if !entry.assigned || !entry.immutable {
            return Err(FwPageError::InvalidPageState);
        }
        self.update_entry(pa, |e| e.immutable = false);
        Ok(())
    }

    /// A host write to `pa` through a mapping of `mapping` size (pass 2 MiB for 1 GiB
    /// mappings: the RMP checks them as 2 MiB). It faults if any frame the mapping
    /// covers is assigned (Linux `adjust_direct_map`).
    pub fn check_host_write(&self, pa: u64, mapping: RmpSize) -> RmpCheck {
        let covered = frames_of(pa & !(mapping.bytes() - 1), mapping);
        let own = self.frames.get(&(pa >> 12));
        match own.or_else(|| self.frames.range(covered).next().map(|(_, e)| e)) {
            None => RmpCheck::Ok,
            Some(entry) => fault(
                pa,
                if entry.immutable {
                    RmpFaultReason::Immutable
                } else {
                    RmpFaultReason::HostWriteToAssigned
                },
            ),
        }
    }

    /// A guest private (C=1) access to `gpa`, which an NPT leaf of `npt_size` maps to
    /// `pa`: the page must be the guest's at that GPA, its entry no smaller than the
    /// leaf, mutable and validated.
    pub fn check_guest_access(&self, asid: u32, gpa: u64, pa: u64, npt_size: RmpSize) -> RmpCheck {
        let entry = self.lookup(pa);
        let reason = mapping_fault(&entry, asid, gpa, pa, npt_size)
            .or(entry.immutable.then_some(RmpFaultReason::Immutable))
            .or((!entry.validated).then_some(RmpFaultReason::NotValidated));
        reason.map_or(RmpCheck::Ok, |reason| fault(pa, reason))
    }

    /// What the hypervisor checks before installing an NPT leaf of `size` mapping
    /// private `gpa` to `pa` (SNP-01): the entry is the guest's at that GPA and no
    /// smaller than the leaf. Not that it is validated: the guest validates through
    /// this very mapping after RMPUPDATE cleared the bit, and a zapped mapping is
    /// rebuilt without re-validation (SNP-02). Not that it is mutable: a Pre-Guest
    /// page may be mapped, and no access to it succeeds before LAUNCH_UPDATE.
    pub fn check_nested_map(&self, asid: u32, gpa: u64, pa: u64, size: RmpSize) -> RmpCheck {
        let entry = self.lookup(pa);
        mapping_fault(&entry, asid, gpa, pa, size).map_or(RmpCheck::Ok, |reason| fault(pa, reason))
    }

    /// A guest write to `pa`: its cache lines become dirty under the guest's key.
    pub fn guest_write(&mut self, asid: u32, pa: u64) {
        self.dirty.insert((pa >> 12, CacheKey::Guest(asid)));
    }

    /// A host write: checked like [`RmpModel::check_host_write`], and when allowed the
    /// frame's lines become dirty under the host key.
    pub fn host_write(&mut self, pa: u64, mapping: RmpSize) -> RmpCheck {
        let check = self.check_host_write(pa, mapping);
        if check.is_ok() {
            self.dirty.insert((pa >> 12, CacheKey::Host));
        }
        check
    }

    /// VM_PAGE_FLUSH (MSR 0xC001_011E, VA | ASID): write back and invalidate the 4 KiB
    /// page's lines tagged with `asid`'s key.
    pub fn vm_page_flush(&mut self, pa: u64, asid: u32) {
        self.counts.vm_page_flushes += 1;
        self.dirty.remove(&(pa >> 12, CacheKey::Guest(asid)));
    }

    /// CLFLUSH of the frame through a host mapping: the host-key lines only.
    pub fn clflush(&mut self, pa: u64) {
        self.counts.clflushes += 1;
        self.dirty.remove(&(pa >> 12, CacheKey::Host));
    }

    /// WBINVD (on every CPU): every line, every key.
    pub fn wbinvd(&mut self) {
        self.counts.wbinvds += 1;
        self.dirty.clear();
    }

    /// Whether the frame at `pa` has dirty lines under any guest key: it must not go
    /// back to the pool like that.
    pub fn dirty_guest_lines(&self, pa: u64) -> bool {
        let pfn = pa >> 12;
        let guest_keys = (pfn, CacheKey::Guest(0))..=(pfn, CacheKey::Guest(u32::MAX));
        self.dirty.range(guest_keys).next().is_some()
    }

    /// Whether the frame at `pa` has dirty lines under the host key.
    pub fn dirty_host_lines(&self, pa: u64) -> bool {
        self.dirty.contains(&(pa >> 12, CacheKey::Host))
    }

    /// The model's own consistency: only assigned entries are stored, GPAs are aligned
    /// to the entry size, and a 2 MiB entry is 512 equal frames with no 4 KiB entry
    /// among them. Returns the first offending address and what is wrong.
    pub fn check_invariants(&self) -> Result<(), (u64, &'static str)> {
        for (&pfn, entry) in &self.frames {
            let pa = pfn << 12;
            if !entry.assigned {
                return Err((pa, "stored entry is not assigned"));
            }
            if !entry.gpa.is_multiple_of(entry.size.bytes()) {
                return Err((pa, "GPA not aligned to the entry size"));
            }
            if entry.size == RmpSize::Size4K {
                continue;
            }
            let base = pfn & !511;
            let region = || self.frames.range(base..base + 512);
            let whole =
                pfn != base || (region().count() == 512 && region().all(|(_, e)| e == entry));
            if !whole || self.frames.get(&base) != Some(entry) {
                return Err((pa, "2 MiB entry not 512 equal frames"));
            }
        }
        Ok(())
    }

    fn try_rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError> {
        if self.take_inuse(RmpOp::Rmpupdate) {
            return Err(RmpError::FailInUse);
        }
        let bytes = state.size.bytes();
        // A shared entry carries no owner fields (`rmp_make_shared` zeroes them);
        // refusing one that does is **[inference]**, as is FAIL_INPUT beyond the RMP.
        let owner_fields = state.immutable || state.gpa != 0 || state.asid != 0;
        if !pa.is_multiple_of(bytes)
            || !state.gpa.is_multiple_of(bytes)
            || !self.covers(pa, state.size)
            || (!state.assigned && owner_fields)
        {
            return Err(RmpError::FailInput);
        }
        // Immutable: the entry, or any entry a 2 MiB update would replace.
        let frames = frames_of(pa, state.size);
        if self.frames.range(frames.clone()).any(|(_, e)| e.immutable) {
            return Err(RmpError::FailPermission);
        }
        // 4 KiB into an assigned 2 MiB entry, or 2 MiB over assigned 4 KiB entries.
        let other_size = match state.size {
            RmpSize::Size4K => RmpSize::Size2M,
            RmpSize::Size2M => RmpSize::Size4K,
        };
        if self
            .frames
            .range(frames.clone())
            .any(|(_, e)| e.size == other_size)
        {
            return Err(RmpError::FailOverlap);
        }
        for pfn in frames {
            // A new entry starts with VMPL0 holding every permission and the other
            // VMPLs none (see `VmplPermissions`).
            self.perms.remove(&pfn);
            if state.assigned {
                let entry = RmpEntry {
                    assigned: true,
                    size: state.size,
                    immutable: state.immutable,
                    gpa: state.gpa,
                    asid: state.asid,
                    validated: false,
                    vmsa: false,
                };
                self.frames.insert(pfn, entry);
            } else {
                self.frames.remove(&pfn);
            }
        }
        Ok(())
    }

    fn try_psmash(&mut self, pa: u64) -> Result<(), RmpError> {
        if self.take_inuse(RmpOp::Psmash) {
            return Err(RmpError::FailInUse);
        }
        if !pa.is_multiple_of(RmpSize::Size2M.bytes()) {
            return Err(RmpError::FailInput);
        }
        // FAIL_BADADDR for an address the RMP does not cover: **[inference]**.
        if !self.covers(pa, RmpSize::Size2M) {
            return Err(RmpError::FailBadAddr);
        }
        let large = self.lookup(pa);
        if !large.assigned || large.size != RmpSize::Size2M {
            return Err(RmpError::FailInput);
        }
        for (i, pfn) in frames_of(pa, RmpSize::Size2M).enumerate() {
            let entry = RmpEntry {
                size: RmpSize::Size4K,
                gpa: large.gpa + ((i as u64) << 12),
                ..large
            };
            self.frames.insert(pfn, entry);
        }
        Ok(())
    }

    /// Apply `change` to the (assigned) entry governing `pa`, in every frame it covers.
    fn update_entry(&mut self, pa: u64, change: impl Fn(&mut RmpEntry)) {
        let size = self.lookup(pa).size;
        let base = pa & !(size.bytes() - 1);
        for (_, entry) in self.frames.range_mut(frames_of(base, size)) {
            change(entry);
        }
    }

    fn covers(&self, pa: u64, size: RmpSize) -> bool {
        pa < self.limit && self.limit - pa >= size.bytes()
    }

    fn take_inuse(&mut self, op: RmpOp) -> bool {
        let mut due = false;
        self.inuse.retain_mut(|(target, remaining)| {
            if *target != op {
                return true;
            }
            *remaining -= 1;
            due |= *remaining == 0;
            *remaining > 0
        });
        due
    }
}

impl Rmp for RmpModel {
    fn rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError> {
        self.counts.rmpupdates += 1;
        let result = self.try_rmpupdate(pa, state);
        if self.logging {
            self.log.push(RmpCall::Rmpupdate { pa, state, result });
        }
        result
    }

    fn psmash(&mut self, pa: u64) -> Result<(), RmpError> {
        self.counts.psmashes += 1;
        let result = self.try_psmash(pa);
        if self.logging {
            self.log.push(RmpCall::Psmash { pa, result });
        }
        result
    }

    fn entry(&self, pa: u64) -> Result<RmpEntry, RmpReadError> {
        Ok(self.lookup(pa))
    }
}

/// The ownership part of every guest-side check, in the order the model tests it.
fn ownership_fault(entry: &RmpEntry, asid: u32, gpa: u64, pa: u64) -> Option<RmpFaultReason> {
    if !entry.assigned {
        Some(RmpFaultReason::NotAssigned)
    } else if entry.asid != asid {
        Some(RmpFaultReason::WrongAsid)
    } else if entry.frame_gpa(pa) != gpa & !0xfff {
        Some(RmpFaultReason::WrongGpa)
    } else {
        None
    }
}

/// Ownership, then an NPT leaf of `size` no larger than the entry (SNP-01).
fn mapping_fault(
    entry: &RmpEntry,
    asid: u32,
    gpa: u64,
    pa: u64,
    size: RmpSize,
) -> Option<RmpFaultReason> {
    ownership_fault(entry, asid, gpa, pa)
        .or((size > entry.size).then_some(RmpFaultReason::SizeMismatch))
}

/// Frame numbers of the `size` page at `pa` (aligned by the caller).
fn frames_of(pa: u64, size: RmpSize) -> Range<u64> {
    let first = pa >> 12;
    first..first + size.frames()
}

fn fault(pa: u64, reason: RmpFaultReason) -> RmpCheck {
    RmpCheck::Fault(RmpFault { pa, reason })
}
