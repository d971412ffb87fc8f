//! [`TdxModule`] on the model: every SEAMCALL goes through fault injection, then the
//! TD's handler, then the call log.

use super::locks::Locks;
use super::{KICK, LoggedCall, Td, TdxModel};
use crate::abi::{Level, seamcall};
use crate::module::{TdPages, TdxModule};
use crate::status::Status;

impl TdxModel {
    /// One SEAMCALL: an injected fault if one is due, else `op`; then the log entry.
    fn call<T>(
        &mut self,
        leaf: u64,
        gpa: u64,
        level: Option<Level>,
        op: impl FnOnce(&mut Td, &Locks) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let result = match self.faults.take(leaf) {
            Some(status) => Err(status),
            None => op(&mut self.td, &self.locks),
        };
        let status = result.as_ref().err().copied().unwrap_or(Status::SUCCESS);
        self.log.push(LoggedCall {
            leaf,
            gpa,
            level,
            status,
        });
        result
    }
}

impl TdxModule for TdxModel {
    fn sept_add(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status> {
        self.call(seamcall::TDH_MEM_SEPT_ADD, gpa, Some(level), |td, locks| {
            td.sept_add(gpa, level, page, locks)
        })
    }

    fn page_add(&mut self, gpa: u64, page: u64, source: u64) -> Result<(), Status> {
        self.call(
            seamcall::TDH_MEM_PAGE_ADD,
            gpa,
            Some(Level::L4K),
            |td, locks| td.page_add(gpa, page, source, locks),
        )
    }

    fn page_aug(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status> {
        self.call(seamcall::TDH_MEM_PAGE_AUG, gpa, Some(level), |td, locks| {
            td.page_aug(gpa, level, page, locks)
        })
    }

    fn range_block(&mut self, gpa: u64, level: Level) -> Result<(), Status> {
        self.call(
            seamcall::TDH_MEM_RANGE_BLOCK,
            gpa,
            Some(level),
            |td, locks| td.range_block(gpa, level, locks),
        )
    }

    fn range_unblock(&mut self, gpa: u64, level: Level) -> Result<(), Status> {
        self.call(
            seamcall::TDH_MEM_RANGE_UNBLOCK,
            gpa,
            Some(level),
            |td, locks| td.range_unblock(gpa, level, locks),
        )
    }

    fn track(&mut self) -> Result<(), Status> {
        self.call(seamcall::TDH_MEM_TRACK, 0, None, |td, locks| {
            td.track(locks)
        })
    }

    fn page_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status> {
        self.call(
            seamcall::TDH_MEM_PAGE_REMOVE,
            gpa,
            Some(level),
            |td, locks| td.page_remove(gpa, level, locks),
        )
    }

    fn sept_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status> {
        self.call(
            seamcall::TDH_MEM_SEPT_REMOVE,
            gpa,
            Some(level),
            |td, locks| td.sept_remove(gpa, level, locks),
        )
    }

    fn mr_extend(&mut self, gpa: u64) -> Result<(), Status> {
        self.call(seamcall::TDH_MR_EXTEND, gpa, None, |td, locks| {
            td.mr_extend(gpa, locks)
        })
    }

    fn mr_finalize(&mut self) -> Result<(), Status> {
        self.call(seamcall::TDH_MR_FINALIZE, 0, None, |td, locks| {
            td.mr_finalize(locks)
        })
    }

    fn page_wbinvd(&mut self, page: u64) -> Result<(), Status> {
        self.call(seamcall::TDH_PHYMEM_PAGE_WBINVD, page, None, |td, _| {
            td.page_wbinvd(page)
        })
    }

    fn vp_flush(&mut self, vcpu: usize) -> Result<(), Status> {
        self.call(seamcall::TDH_VP_FLUSH, vcpu as u64, None, |td, _| {
            td.vp_flush(vcpu)
        })
    }

    fn vpflushdone(&mut self) -> Result<(), Status> {
        self.call(seamcall::TDH_MNG_VPFLUSHDONE, 0, None, |td, locks| {
            td.vpflushdone(locks)
        })
    }

    fn cache_wb(&mut self, resume: bool) -> Result<(), Status> {
        self.call(
            seamcall::TDH_PHYMEM_CACHE_WB,
            resume.into(),
            None,
            |td, _| td.cache_wb(resume),
        )
    }

    fn key_freeid(&mut self) -> Result<(), Status> {
        self.call(seamcall::TDH_MNG_KEY_FREEID, 0, None, |td, locks| {
            td.key_freeid(locks)
        })
    }

    fn page_reclaim(&mut self, page: u64) -> Result<(), Status> {
        self.call(seamcall::TDH_PHYMEM_PAGE_RECLAIM, page, None, |td, _| {
            td.page_reclaim(page)
        })
    }

    fn kick_vcpus(&mut self) {
        self.td.exit_all_vcpus();
        self.kicks += 1;
        self.log.push(LoggedCall {
            leaf: KICK,
            gpa: 0,
            level: None,
            status: Status::SUCCESS,
        });
    }

    fn vcpu_count(&self) -> usize {
        self.td.vcpus.len()
    }

    fn td_pages(&self) -> TdPages {
        TdPages {
            tdr: self.td.tdr,
            control: self.td.control.iter().copied().collect(),
        }
    }
}
