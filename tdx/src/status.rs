//! TDX module completion status (RAX after SEAMCALL/TDCALL), with the codes of the
//! memory model (TDX module ABI 1.5; spec digest C.4.2).
//!
//! The upper 32 bits are the status class and code; the low 32 bits carry details such as
//! the id of the operand at fault. Comparisons of kinds use [`Status::code`].

use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u64);

/// Bits that name the status (class and code), without the operand details.
const CODE_MASK: u64 = 0xffff_ffff_0000_0000;

impl Status {
    pub const SUCCESS: Self = Self(0);
    pub const OPERAND_INVALID: Self = Self(0xC000_0100_0000_0000);
    pub const OPERAND_BUSY: Self = Self(0x8000_0200_0000_0000);
    pub const PREVIOUS_TLB_EPOCH_BUSY: Self = Self(0x8000_0201_0000_0000);
    pub const OPERAND_BUSY_HOST_PRIORITY: Self = Self(0x8000_0204_0000_0000);
    pub const PAGE_METADATA_INCORRECT: Self = Self(0xC000_0300_0000_0000);
    pub const PAGE_NOT_OWNED_BY_TD: Self = Self(0xC000_0302_0000_0000);
    pub const PAGE_NOT_FREE: Self = Self(0xC000_0303_0000_0000);
    pub const TD_ASSOCIATED_PAGES_EXIST: Self = Self(0xC000_0400_0000_0000);
    pub const LIFECYCLE_STATE_INCORRECT: Self = Self(0xC000_0607_0000_0000);
    pub const OP_STATE_INCORRECT: Self = Self(0xC000_0608_0000_0000);
    pub const NO_VCPUS: Self = Self(0xC000_0609_0000_0000);
    pub const FLUSHVP_NOT_DONE: Self = Self(0x8000_0824_0000_0000);
    pub const EPT_WALK_FAILED: Self = Self(0xC000_0B00_0000_0000);
    pub const EPT_ENTRY_FREE: Self = Self(0xC000_0B01_0000_0000);
    pub const EPT_ENTRY_NOT_FREE: Self = Self(0xC000_0B02_0000_0000);
    pub const EPT_ENTRY_NOT_PRESENT: Self = Self(0xC000_0B03_0000_0000);
    pub const EPT_ENTRY_NOT_LEAF: Self = Self(0xC000_0B04_0000_0000);
    pub const EPT_ENTRY_LEAF: Self = Self(0xC000_0B05_0000_0000);
    pub const GPA_RANGE_NOT_BLOCKED: Self = Self(0xC000_0B06_0000_0000);
    /// Not an error class (bit 63 clear), but not the requested change either.
    pub const GPA_RANGE_ALREADY_BLOCKED: Self = Self(0x0000_0B07_0000_0000);
    pub const TLB_TRACKING_NOT_DONE: Self = Self(0xC000_0B08_0000_0000);
    pub const EPT_INVALID_PROMOTE_CONDITIONS: Self = Self(0xC000_0B09_0000_0000);
    /// Success class: the guest accepted a page it could already use (nothing zeroed).
    pub const PAGE_ALREADY_ACCEPTED: Self = Self(0x0000_0B0A_0000_0000);
    pub const PAGE_SIZE_MISMATCH: Self = Self(0xC000_0B0B_0000_0000);
    pub const GPA_RANGE_BLOCKED: Self = Self(0xC000_0B0C_0000_0000);
    pub const EPT_ENTRY_STATE_INCORRECT: Self = Self(0xC000_0B0D_0000_0000);
    pub const EPT_PAGE_NOT_FREE: Self = Self(0xC000_0B0E_0000_0000);
    pub const INTERRUPTED_RESUMABLE: Self = Self(0x8000_0003_0000_0000);
    pub const RND_NO_ENTROPY: Self = Self(0x8000_0203_0000_0000);
    pub const VCPU_NOT_ASSOCIATED: Self = Self(0x8000_0702_0000_0000);
    /// The TD's key is gone or going (after VPFLUSHDONE): no memory call, no entry.
    pub const TD_KEYS_NOT_CONFIGURED: Self = Self(0x8000_0810_0000_0000);
    /// KEY.FREEID before the cache write-back completed.
    pub const WBCACHE_NOT_COMPLETE: Self = Self(0x8000_0817_0000_0000);
    /// Success class: CACHE.WB had nothing to write back for a key.
    pub const NO_HKID_READY_TO_WBCACHE: Self = Self(0x0000_0821_0000_0000);
    /// A CACHE.WB resume with no interrupted write-back.
    pub const WBCACHE_RESUME_ERROR: Self = Self(0xC000_0823_0000_0000);

    /// The class and code, without operand details.
    pub const fn code(self) -> Self {
        Self(self.0 & CODE_MASK)
    }

    /// Same kind of status as `other`, whatever the operand details.
    pub const fn is(self, other: Self) -> bool {
        self.0 & CODE_MASK == other.0 & CODE_MASK
    }

    /// Lock contention inside the module: the call changed nothing and may be retried.
    pub const fn is_busy(self) -> bool {
        self.is(Self::OPERAND_BUSY)
            || self.is(Self::PREVIOUS_TLB_EPOCH_BUSY)
            || self.is(Self::OPERAND_BUSY_HOST_PRIORITY)
    }

    /// The spec's name for the code, for messages.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(status, _)| self.is(*status))
            .map_or("TDX_UNKNOWN_STATUS", |(_, name)| name)
    }
}

const NAMES: &[(Status, &str)] = &[
    (Status::SUCCESS, "TDX_SUCCESS"),
    (Status::OPERAND_INVALID, "TDX_OPERAND_INVALID"),
    (Status::OPERAND_BUSY, "TDX_OPERAND_BUSY"),
    (
        Status::PREVIOUS_TLB_EPOCH_BUSY,
        "TDX_PREVIOUS_TLB_EPOCH_BUSY",
    ),
    (
        Status::OPERAND_BUSY_HOST_PRIORITY,
        "TDX_OPERAND_BUSY_HOST_PRIORITY",
    ),
    (
        Status::PAGE_METADATA_INCORRECT,
        "TDX_PAGE_METADATA_INCORRECT",
    ),
    (Status::PAGE_NOT_OWNED_BY_TD, "TDX_PAGE_NOT_OWNED_BY_TD"),
    (Status::PAGE_NOT_FREE, "TDX_PAGE_NOT_FREE"),
    (
        Status::TD_ASSOCIATED_PAGES_EXIST,
        "TDX_TD_ASSOCIATED_PAGES_EXIST",
    ),
    (
        Status::LIFECYCLE_STATE_INCORRECT,
        "TDX_LIFECYCLE_STATE_INCORRECT",
    ),
    (Status::OP_STATE_INCORRECT, "TDX_OP_STATE_INCORRECT"),
    (Status::NO_VCPUS, "TDX_NO_VCPUS"),
    (Status::FLUSHVP_NOT_DONE, "TDX_FLUSHVP_NOT_DONE"),
    (Status::EPT_WALK_FAILED, "TDX_EPT_WALK_FAILED"),
    (Status::EPT_ENTRY_FREE, "TDX_EPT_ENTRY_FREE"),
    (Status::EPT_ENTRY_NOT_FREE, "TDX_EPT_ENTRY_NOT_FREE"),
    (Status::EPT_ENTRY_NOT_PRESENT, "TDX_EPT_ENTRY_NOT_PRESENT"),
    (Status::EPT_ENTRY_NOT_LEAF, "TDX_EPT_ENTRY_NOT_LEAF"),
    (Status::EPT_ENTRY_LEAF, "TDX_EPT_ENTRY_LEAF"),
    (Status::GPA_RANGE_NOT_BLOCKED, "TDX_GPA_RANGE_NOT_BLOCKED"),
    (
        Status::GPA_RANGE_ALREADY_BLOCKED,
        "TDX_GPA_RANGE_ALREADY_BLOCKED",
    ),
    (Status::TLB_TRACKING_NOT_DONE, "TDX_TLB_TRACKING_NOT_DONE"),
    (
        Status::EPT_INVALID_PROMOTE_CONDITIONS,
        "TDX_EPT_INVALID_PROMOTE_CONDITIONS",
    ),
    (Status::PAGE_ALREADY_ACCEPTED, "TDX_PAGE_ALREADY_ACCEPTED"),
    (Status::PAGE_SIZE_MISMATCH, "TDX_PAGE_SIZE_MISMATCH"),
    (Status::GPA_RANGE_BLOCKED, "TDX_GPA_RANGE_BLOCKED"),
    (
        Status::EPT_ENTRY_STATE_INCORRECT,
        "TDX_EPT_ENTRY_STATE_INCORRECT",
    ),
    (Status::EPT_PAGE_NOT_FREE, "TDX_EPT_PAGE_NOT_FREE"),
    (Status::INTERRUPTED_RESUMABLE, "TDX_INTERRUPTED_RESUMABLE"),
    (Status::RND_NO_ENTROPY, "TDX_RND_NO_ENTROPY"),
    (Status::VCPU_NOT_ASSOCIATED, "TDX_VCPU_NOT_ASSOCIATED"),
    (Status::TD_KEYS_NOT_CONFIGURED, "TDX_TD_KEYS_NOT_CONFIGURED"),
    (Status::WBCACHE_NOT_COMPLETE, "TDX_WBCACHE_NOT_COMPLETE"),
    (
        Status::NO_HKID_READY_TO_WBCACHE,
        "TDX_NO_HKID_READY_TO_WBCACHE",
    ),
    (Status::WBCACHE_RESUME_ERROR, "TDX_WBCACHE_RESUME_ERROR"),
];

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:#018x})", self.name(), self.0)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
