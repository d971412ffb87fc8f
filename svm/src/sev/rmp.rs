//! The SEV-SNP Reverse Map Table: one entry per 4 KiB host frame saying who owns it
//! (hypervisor, or a guest ASID at one GPA), at what page size, whether only firmware
//! may change it, and whether the guest has validated it.
//!
//! [`Rmp`] is the hypervisor's side of it (RMPUPDATE, PSMASH and reading an entry).
//! [`RmpInstructions`] issues the real instructions: compiled, never run here, since
//! QEMU emulates no SEV-SNP. [`RmpModel`] is the software model the tests drive (spec
//! digest G.1), which also plays the guest (PVALIDATE, RMPADJUST), the firmware's page
//! transitions (LAUNCH_UPDATE, PAGE_RECLAIM, the VMSA bit), the RMP access checks and
//! the caches.
//!
//! Entry fields and return codes: spec digest D.1, Linux `arch/x86/virt/svm/sev.c`.

#[cfg(target_arch = "x86_64")]
mod instr;
mod model;
#[cfg(test)]
mod tests;

use cloister_core::mmu::PageSize;
use core::fmt;

#[cfg(target_arch = "x86_64")]
pub use instr::RmpInstructions;
pub use model::{
    CacheKey, FwPageError, PvalidateError, PvalidateOutcome, RMPADJUST_VMSA, RmpCall, RmpCheck,
    RmpCounts, RmpFault, RmpFaultReason, RmpModel, RmpOp, RmpadjustError, VmplPermissions,
    rmpadjust_rdx,
};

/// Page size of an RMP entry (RMPUPDATE `pagesize`: 0 = 4 KiB, 1 = 2 MiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RmpSize {
    Size4K,
    Size2M,
}

impl RmpSize {
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 1 << 12,
            Self::Size2M => 1 << 21,
        }
    }

    /// 4 KiB frames the entry governs.
    pub const fn frames(self) -> u64 {
        self.bytes() >> 12
    }
}

impl From<PageSize> for RmpSize {
    fn from(size: PageSize) -> Self {
        match size {
            PageSize::Size4K => Self::Size4K,
            PageSize::Size2M => Self::Size2M,
        }
    }
}

impl From<RmpSize> for PageSize {
    fn from(size: RmpSize) -> Self {
        match size {
            RmpSize::Size4K => Self::Size4K,
            RmpSize::Size2M => Self::Size2M,
        }
    }
}

/// What RMPUPDATE writes (Linux `struct rmp_state`): the validated and VMSA bits are
/// not inputs, RMPUPDATE clears them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmpState {
    pub assigned: bool,
    pub size: RmpSize,
    /// Only the firmware may change the entry or write the page afterwards.
    pub immutable: bool,
    /// The one GPA the page may be mapped at (aligned to `size`).
    pub gpa: u64,
    /// Owning guest; 0 with `assigned` is a firmware page.
    pub asid: u32,
}

impl RmpState {
    /// Linux `rmp_make_private`.
    pub const fn private(gpa: u64, size: RmpSize, asid: u32, immutable: bool) -> Self {
        Self {
            assigned: true,
            size,
            immutable,
            gpa,
            asid,
        }
    }

    /// Linux `rmp_make_shared`: hypervisor-owned, every other field zero.
    pub const fn shared(size: RmpSize) -> Self {
        Self {
            assigned: false,
            size,
            immutable: false,
            gpa: 0,
            asid: 0,
        }
    }
}

/// The architectural fields of the RMP entry governing a frame: the 2 MiB entry when
/// the frame lies in one (`gpa` is then the GPA of the whole 2 MiB page), else the
/// frame's own 4 KiB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmpEntry {
    pub assigned: bool,
    pub size: RmpSize,
    pub immutable: bool,
    pub gpa: u64,
    pub asid: u32,
    /// Set by the guest's PVALIDATE (or the firmware at launch), cleared by RMPUPDATE.
    pub validated: bool,
    /// The page is a guest's VM save area.
    pub vmsa: bool,
}

impl RmpEntry {
    /// A hypervisor-owned frame: the all-zero entry every frame starts with.
    pub const HYPERVISOR: Self = Self {
        assigned: false,
        size: RmpSize::Size4K,
        immutable: false,
        gpa: 0,
        asid: 0,
        validated: false,
        vmsa: false,
    };

    /// The GPA the 4 KiB frame holding `pa` may be mapped at under this entry.
    pub const fn frame_gpa(&self, pa: u64) -> u64 {
        self.gpa + (pa & (self.size.bytes() - 1) & !0xfff)
    }
}

/// RMPUPDATE and PSMASH failures (EAX). The instructions share codes 1-3; 4 means
/// FAIL_OVERLAP from RMPUPDATE but FAIL_BADADDR from PSMASH, so decode a status with
/// [`RmpError::from_rmpupdate`] or [`RmpError::from_psmash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpError {
    /// 1: an operand is invalid (misaligned address, or PSMASH of no 2 MiB entry).
    FailInput,
    /// 2: the entry is immutable (or the instruction ran in a guest).
    FailPermission,
    /// 3: another CPU is updating the entry; retry.
    FailInUse,
    /// RMPUPDATE 4: a 4 KiB and a 2 MiB entry would overlap; Linux retries.
    FailOverlap,
    /// PSMASH 4: the address is not covered by the RMP.
    FailBadAddr,
    /// A status this code does not know (the value is EAX).
    Other(u32),
}

impl RmpError {
    /// The architectural status (EAX).
    pub const fn code(self) -> u32 {
        match self {
            Self::FailInput => 1,
            Self::FailPermission => 2,
            Self::FailInUse => 3,
            Self::FailOverlap | Self::FailBadAddr => 4,
            Self::Other(code) => code,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::FailInput => "FAIL_INPUT",
            Self::FailPermission => "FAIL_PERMISSION",
            Self::FailInUse => "FAIL_INUSE",
            Self::FailOverlap => "FAIL_OVERLAP",
            Self::FailBadAddr => "FAIL_BADADDR",
            Self::Other(_) => "unknown status",
        }
    }

    /// Decode RMPUPDATE's EAX.
    pub const fn from_rmpupdate(eax: u32) -> Result<(), Self> {
        match eax {
            4 => Err(Self::FailOverlap),
            _ => Self::common(eax),
        }
    }

    /// Decode PSMASH's EAX.
    pub const fn from_psmash(eax: u32) -> Result<(), Self> {
        match eax {
            4 => Err(Self::FailBadAddr),
            _ => Self::common(eax),
        }
    }

    const fn common(eax: u32) -> Result<(), Self> {
        match eax {
            0 => Ok(()),
            1 => Err(Self::FailInput),
            2 => Err(Self::FailPermission),
            3 => Err(Self::FailInUse),
            _ => Err(Self::Other(eax)),
        }
    }
}

impl fmt::Display for RmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Why an RMP entry could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpReadError {
    /// No RMP table this code can read was provided (see [`RmpInstructions`]).
    NoTable,
    /// The address lies beyond the RMP.
    OutOfRange,
}

impl fmt::Display for RmpReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoTable => "no readable RMP table",
            Self::OutOfRange => "address beyond the RMP",
        })
    }
}

/// The hypervisor's view of the RMP. Addresses are host physical addresses.
pub trait Rmp {
    /// RMPUPDATE: write a new entry for the frame at `pa` (the whole 2 MiB page at a
    /// 2 MiB-aligned `pa` when `state.size` is 2 MiB). Clears the validated bit.
    fn rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError>;

    /// PSMASH: split the assigned 2 MiB entry at the 2 MiB-aligned `pa` into 512 4 KiB
    /// entries with consecutive GPAs, keeping the validated bit.
    fn psmash(&mut self, pa: u64) -> Result<(), RmpError>;

    /// The entry governing the frame at `pa` (see [`RmpEntry`]).
    fn entry(&self, pa: u64) -> Result<RmpEntry, RmpReadError>;
}
