//! SEAMCALL and TDCALL leaf numbers and operand encodings (TDX module ABI 1.5; spec
//! digest C.4.1).

/// Host-side SEAMCALL leaves Cloister issues.
pub mod seamcall {
    pub const TDH_VP_ENTER: u64 = 0;
    pub const TDH_MEM_PAGE_ADD: u64 = 2;
    pub const TDH_MEM_SEPT_ADD: u64 = 3;
    pub const TDH_MEM_PAGE_AUG: u64 = 6;
    pub const TDH_MEM_RANGE_BLOCK: u64 = 7;
    pub const TDH_MR_EXTEND: u64 = 16;
    pub const TDH_MR_FINALIZE: u64 = 17;
    pub const TDH_VP_FLUSH: u64 = 18;
    pub const TDH_MNG_VPFLUSHDONE: u64 = 19;
    pub const TDH_MNG_KEY_FREEID: u64 = 20;
    pub const TDH_PHYMEM_PAGE_RECLAIM: u64 = 28;
    pub const TDH_MEM_PAGE_REMOVE: u64 = 29;
    pub const TDH_MEM_SEPT_REMOVE: u64 = 30;
    pub const TDH_MEM_TRACK: u64 = 38;
    pub const TDH_MEM_RANGE_UNBLOCK: u64 = 39;
    pub const TDH_PHYMEM_CACHE_WB: u64 = 40;
    pub const TDH_PHYMEM_PAGE_WBINVD: u64 = 41;
}

/// Guest-side TDCALL leaves and the TDVMCALL sub-functions Cloister serves.
pub mod tdcall {
    pub const TDG_VP_VMCALL: u64 = 0;
    pub const TDG_MEM_PAGE_ACCEPT: u64 = 6;
    /// TDVMCALL sub-function (R11 with R10 = 0): convert a GPA range.
    pub const MAP_GPA: u64 = 0x10001;
    /// TDVMCALL completion (R10) values for MapGPA.
    pub const VMCALL_SUCCESS: u64 = 0;
    pub const VMCALL_RETRY: u64 = 1;
    pub const VMCALL_INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
    pub const VMCALL_ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;
}

/// The bytes MR.EXTEND measures per call.
pub const EXTEND_CHUNK: u64 = 256;

/// The shared bit of a GPA with 4-level EPT: set = shared memory, clear = private.
pub const SHARED_BIT_4_LEVEL: u64 = 1 << 47;

/// An S-EPT entry level as the module numbers them: 0 holds 4 KiB leaves, 1 holds
/// 2 MiB leaves or links a page table, 2 and 3 link tables (4-level EPT; the root is
/// part of the TD's control structure and never added).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(u8);

impl Level {
    pub const L4K: Self = Self(0);
    pub const L2M: Self = Self(1);
    pub const L1G: Self = Self(2);
    pub const L512G: Self = Self(3);
    /// The highest level an entry (not the root) can have with 4-level EPT.
    pub const TOP: Self = Self::L512G;

    pub const fn new(level: u8) -> Option<Self> {
        if level <= Self::TOP.0 {
            Some(Self(level))
        } else {
            None
        }
    }

    pub const fn get(self) -> u8 {
        self.0
    }

    /// Bytes an entry at this level covers.
    pub const fn span(self) -> u64 {
        1 << (12 + 9 * self.0 as u32)
    }

    /// The level above, if any below the root.
    pub const fn parent(self) -> Option<Self> {
        Self::new(self.0 + 1)
    }

    /// The entry at this level covering `gpa`: `gpa` rounded down to the span.
    pub const fn align(self, gpa: u64) -> u64 {
        gpa & !(self.span() - 1)
    }
}

/// RCX for the GPA-addressed SEAMCALLs: GPA in bits 51:12, level in bits 2:0.
pub const fn gpa_and_level(gpa: u64, level: Level) -> u64 {
    (gpa & 0x000f_ffff_ffff_f000) | level.0 as u64
}
