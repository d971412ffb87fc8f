//! Shared setup for the `model_*` tests: a TD, host pages to give it, and entries of
//! any state built through the model's own calls.
#![allow(dead_code)] // each test file uses a different part

use cloister_tdx::abi::seamcall;
use cloister_tdx::model::{Accept, EntryState, OpState, TdConfig, TdxModel};
use cloister_tdx::{Level, Status, TdxModule};

pub const TDR: u64 = 0x10_0000;
pub const CONTROL: [u64; 3] = [0x10_1000, 0x10_2000, 0x10_3000];
/// A private GPA whose 4K, 2M, 1G and 512G entries all sit at the start of their tables.
pub const G: u64 = 0x80_0000_0000;
pub const K4: u64 = 0x1000;
pub const M2: u64 = 0x20_0000;

pub fn config(vcpus: usize) -> TdConfig {
    TdConfig {
        tdr: TDR,
        control: heapless::Vec::from_slice(&CONTROL).unwrap(),
        vcpus,
        hkid: 7,
    }
}

/// A TD and a supply of host pages that are not the TD's.
pub struct Td {
    pub m: TdxModel,
    next_page: u64,
    next_huge: u64,
}

impl Td {
    pub fn new(vcpus: usize) -> Self {
        Self {
            m: TdxModel::new(config(vcpus)),
            next_page: 0x100_0000,
            next_huge: 0x4000_0000,
        }
    }

    /// A fresh 4K host page.
    pub fn page(&mut self) -> u64 {
        self.next_page += K4;
        self.next_page
    }

    /// A fresh 2M-aligned host page.
    pub fn huge(&mut self) -> u64 {
        self.next_huge += M2;
        self.next_huge
    }

    /// SEPT.ADD from the top down, so the walk reaches the entry at `level` over `gpa`.
    pub fn link(&mut self, gpa: u64, level: Level) {
        let mut parent = Level::TOP;
        while parent > level {
            if self.m.entry(gpa, parent).is_none() {
                let page = self.page();
                self.m.sept_add(parent.align(gpa), parent, page).unwrap();
            }
            parent = Level::new(parent.get() - 1).unwrap();
        }
    }

    pub fn finalize(&mut self) {
        self.m.mr_finalize().unwrap();
    }

    /// A page of `level` for the host to map.
    pub fn page_of(&mut self, level: Level) -> u64 {
        if level == Level::L2M {
            self.huge()
        } else {
            self.page()
        }
    }

    /// Puts an entry in `state` at (`gpa`, `level`) through the module's calls,
    /// finalizing the TD if only a running guest can get there (MAPPED above 4K, or
    /// MAPPED after finalize). Returns the entry's page (0 for FREE).
    pub fn make(&mut self, gpa: u64, level: Level, state: EntryState) -> u64 {
        self.link(gpa, level);
        let hpa = match state {
            EntryState::Free => 0,
            EntryState::NlMapped | EntryState::NlBlocked => {
                let page = self.page();
                self.m.sept_add(gpa, level, page).unwrap();
                page
            }
            EntryState::Pending | EntryState::PendingBlocked => {
                let page = self.page_of(level);
                self.m.page_aug(gpa, level, page).unwrap();
                page
            }
            EntryState::Mapped | EntryState::Blocked => self.map(gpa, level),
        };
        if state.is_blocked() {
            self.m.range_block(gpa, level).unwrap();
        }
        if state == EntryState::Free {
            assert!(self.m.entry(gpa, level).is_none());
        } else {
            assert_eq!(self.m.entry(gpa, level).unwrap().state, state);
        }
        hpa
    }

    /// A MAPPED page: PAGE.ADD while building at 4K, else AUG and the guest's ACCEPT.
    fn map(&mut self, gpa: u64, level: Level) -> u64 {
        let page = self.page_of(level);
        if level == Level::L4K && self.m.op_state() == OpState::Initialized {
            let source = self.page();
            self.m.page_add(gpa, page, source).unwrap();
            return page;
        }
        if self.m.op_state() == OpState::Initialized {
            self.finalize();
        }
        self.m.page_aug(gpa, level, page).unwrap();
        self.m.vp_enter(0).unwrap();
        assert_eq!(self.m.accept(0, gpa, level), Accept::Accepted);
        self.m.vp_exit(0);
        page
    }

    /// The runtime removal KVM does: BLOCK, TRACK, kick, REMOVE, WBINVD (TDX-05).
    pub fn zap(&mut self, gpa: u64, level: Level) -> u64 {
        self.m.range_block(gpa, level).unwrap();
        self.m.track().unwrap();
        self.m.kick_vcpus();
        let page = self.m.page_remove(gpa, level).unwrap();
        let span = level.span();
        for offset in (0..span).step_by(K4 as usize) {
            self.m.page_wbinvd(page + offset).unwrap();
        }
        page
    }

    /// VP.FLUSH of every vCPU, VPFLUSHDONE, CACHE.WB to completion, KEY.FREEID.
    pub fn release_key(&mut self) {
        for vcpu in 0..self.m.vcpu_count() {
            match self.m.vp_flush(vcpu) {
                Ok(()) | Err(Status::VCPU_NOT_ASSOCIATED) => {}
                Err(status) => panic!("VP.FLUSH {vcpu}: {status}"),
            }
        }
        self.m.vpflushdone().unwrap();
        let mut result = self.m.cache_wb(false);
        while result == Err(Status::INTERRUPTED_RESUMABLE) {
            result = self.m.cache_wb(true);
        }
        result.unwrap();
        self.m.key_freeid().unwrap();
    }
}

/// The leaves of the memory SEAMCALLs the model logs, for tables of calls.
pub const MEMORY_LEAVES: [u64; 10] = [
    seamcall::TDH_MEM_SEPT_ADD,
    seamcall::TDH_MEM_PAGE_ADD,
    seamcall::TDH_MEM_PAGE_AUG,
    seamcall::TDH_MEM_RANGE_BLOCK,
    seamcall::TDH_MEM_RANGE_UNBLOCK,
    seamcall::TDH_MEM_TRACK,
    seamcall::TDH_MEM_PAGE_REMOVE,
    seamcall::TDH_MEM_SEPT_REMOVE,
    seamcall::TDH_MR_EXTEND,
    seamcall::TDH_MR_FINALIZE,
];
