//! Teardown (spec digest C.3, C.4.7 rule 5): VP.FLUSH, VPFLUSHDONE, CACHE.WB,
//! KEY.FREEID, PAGE.RECLAIM, and PAGE.WBINVD, which the host also uses for pages
//! removed at runtime.

use super::codes;
use super::locks::Locks;
use super::pamt::{PageType, pages_in};
use super::{Lifecycle, Td};
use crate::abi::Level;
use crate::status::Status;

impl Td {
    /// TDH.VP.FLUSH (`tdh_vp_flush.c`): the TDVPR is locked exclusively, so a vCPU in
    /// guest mode (whose VP.ENTER holds it) makes it busy; a vCPU that never entered
    /// since its last flush is not associated (benign).
    pub(super) fn vp_flush(&mut self, vcpu: usize) -> Result<(), Status> {
        self.alive()?;
        let state = *self.vcpus.get(vcpu).ok_or(Status::OPERAND_INVALID)?;
        if state.in_guest {
            return Err(Status::OPERAND_BUSY);
        }
        self.keys_configured()?;
        if !state.associated {
            return Err(Status::VCPU_NOT_ASSOCIATED);
        }

        self.vcpus[vcpu].associated = false;
        Ok(())
    }

    /// TDH.MNG.VPFLUSHDONE (`tdh_mng_vpflushdone.c`).
    pub(super) fn vpflushdone(&mut self, locks: &Locks) -> Result<(), Status> {
        self.alive()?;
        locks.tdr_exclusive()?;
        if self.lifecycle != Lifecycle::KeysConfigured {
            return Err(Status::LIFECYCLE_STATE_INCORRECT);
        }
        if self.vcpus.iter().any(|vcpu| vcpu.associated) {
            return Err(Status::FLUSHVP_NOT_DONE);
        }

        self.lifecycle = Lifecycle::Blocked;
        self.cache_wb.done = false;
        Ok(())
    }

    /// TDH.PHYMEM.CACHE.WB on the (single) package (`tdh_phymem_cache_wb.c`).
    pub(super) fn cache_wb(&mut self, resume: bool) -> Result<(), Status> {
        let interrupted = if resume {
            self.cache_wb
                .interrupted
                .ok_or(codes::WBCACHE_RESUME_ERROR)?
        } else if self.lifecycle == Lifecycle::Blocked {
            // A new write-back starts over.
            0
        } else {
            return Err(codes::NO_HKID_READY_TO_WBCACHE);
        };
        if interrupted < self.cache_wb.interruptions {
            self.cache_wb.interrupted = Some(interrupted + 1);
            return Err(Status::INTERRUPTED_RESUMABLE);
        }

        self.cache_wb.interrupted = None;
        self.cache_wb.done = true;
        self.dirty.clean_all();
        Ok(())
    }

    /// TDH.MNG.KEY.FREEID (`tdh_mng_key_freeid.c`).
    pub(super) fn key_freeid(&mut self, locks: &Locks) -> Result<(), Status> {
        self.alive()?;
        locks.tdr_exclusive()?;
        if self.lifecycle != Lifecycle::Blocked {
            return Err(Status::LIFECYCLE_STATE_INCORRECT);
        }
        if !self.cache_wb.done {
            return Err(codes::WBCACHE_NOT_COMPLETE);
        }

        self.lifecycle = Lifecycle::Teardown;
        // Without its key the S-EPT cannot be walked any more; its pages stay the TD's
        // until reclaimed.
        self.sept.clear();
        self.touch_tdr();
        Ok(())
    }

    /// TDH.PHYMEM.PAGE.RECLAIM (`tdh_phymem_page_reclaim.c`): any page of a TD in
    /// teardown, mapped or not; the TDR last.
    pub(super) fn page_reclaim(&mut self, page: u64) -> Result<(), Status> {
        if !page.is_multiple_of(Level::L4K.span()) {
            return Err(Status::OPERAND_INVALID);
        }
        let (base, entry) = self
            .pamt
            .find(page)
            .ok_or(Status::PAGE_METADATA_INCORRECT)?;
        if base != page {
            // Inside a 2 MiB page: not aligned to the page's size.
            return Err(Status::OPERAND_INVALID);
        }
        if self.lifecycle != Lifecycle::Teardown {
            return Err(Status::LIFECYCLE_STATE_INCORRECT);
        }
        if entry.ty == PageType::Tdr {
            if self.child_count != 0 {
                return Err(Status::TD_ASSOCIATED_PAGES_EXIST);
            }
        } else {
            self.child_count -= pages_in(entry.size);
            self.touch_tdr();
        }

        self.pamt.release(page);
        Ok(())
    }

    /// TDH.PHYMEM.PAGE.WBINVD (`tdh_phymem_page_wbinvd.c`): only for a page the module
    /// no longer owns.
    pub(super) fn page_wbinvd(&mut self, page: u64) -> Result<(), Status> {
        if !page.is_multiple_of(Level::L4K.span()) {
            return Err(Status::OPERAND_INVALID);
        }
        if self.pamt.page_type(page) != PageType::Nda {
            return Err(Status::PAGE_METADATA_INCORRECT);
        }

        self.dirty.clean(page);
        Ok(())
    }

    /// The module wrote the TDR (with its own private key) after the last CACHE.WB:
    /// the host must write it back after reclaiming it.
    fn touch_tdr(&mut self) {
        self.dirty.touch(self.tdr, Level::L4K);
    }
}
