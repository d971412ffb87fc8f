//! The vendor MMU hooks for plain SVM.
//!
//! Without SEV, private memory is private by construction (Cloister never maps it
//! for itself) and frames need no ownership transfer or cache maintenance, so prepare
//! and invalidate only count. Zapped nested entries must leave the guest TLB: every
//! VMRUN flushes the workload's ASID (TLB_CONTROL in the VMCB), so a zap needs no
//! further action before the next entry.

use cloister_core::mmu::{PageSize, VendorError, VendorMmu};

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvmMmu {
    pub prepared_frames: u64,
    pub invalidated_frames: u64,
    pub zaps: u64,
}

impl VendorMmu for SvmMmu {
    fn prepare(&mut self, _gpa: u64, _pa: u64, frames: u64) -> Result<(), VendorError> {
        self.prepared_frames += frames;
        Ok(())
    }

    fn invalidate(&mut self, _pa: u64, frames: u64, _quarantine: &mut dyn FnMut(u64)) {
        self.invalidated_frames += frames;
    }

    fn zap(&mut self, _gpa: u64, _size: u64) {
        self.zaps += 1;
    }

    fn unzap(&mut self, _gpa: u64, _size: PageSize) {}
}
