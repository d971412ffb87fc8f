//! The host-side TDX module interface Cloister uses: one TD's memory and teardown
//! SEAMCALLs. Implemented by the real instruction ([`crate::seamcall`]) and by the
//! software model ([`crate::model`]) the tests run against.

use crate::abi::Level;
use crate::status::Status;

/// The control pages a TD was built with: reclaimed at teardown, the TDR last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdPages {
    /// The TD root page.
    pub tdr: u64,
    /// Every other control page (TDCS pages, each vCPU's TDVPR and TDCX pages).
    pub control: heapless::Vec<u64, 32>,
}

/// One TD as seen through the TDX module. Every method but [`TdxModule::kick_vcpus`] is
/// one SEAMCALL; errors are the module's status, unchanged.
pub trait TdxModule {
    /// TDH.MEM.SEPT.ADD: give `page` to the module as the S-EPT table linked from the
    /// entry at `level` (>= 1) covering `gpa`.
    fn sept_add(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status>;
    /// TDH.MEM.PAGE.ADD (build time only): map 4 KiB `page` at `gpa`, with the contents
    /// of the hypervisor page `source` copied in under the TD's key.
    fn page_add(&mut self, gpa: u64, page: u64, source: u64) -> Result<(), Status>;
    /// TDH.MEM.PAGE.AUG (after finalize): map `page` at `gpa` as PENDING; the guest must
    /// accept it before use.
    fn page_aug(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status>;
    /// TDH.MEM.RANGE.BLOCK: stop new TLB translations through the entry.
    fn range_block(&mut self, gpa: u64, level: Level) -> Result<(), Status>;
    /// TDH.MEM.RANGE.UNBLOCK.
    fn range_unblock(&mut self, gpa: u64, level: Level) -> Result<(), Status>;
    /// TDH.MEM.TRACK: advance the TD's TLB epoch.
    fn track(&mut self) -> Result<(), Status>;
    /// TDH.MEM.PAGE.REMOVE: unmap a leaf; returns the page it mapped.
    fn page_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status>;
    /// TDH.MEM.SEPT.REMOVE: unlink an empty S-EPT table; returns its page.
    fn sept_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status>;
    /// TDH.MR.EXTEND: measure the 256 bytes at `gpa` into MRTD.
    fn mr_extend(&mut self, gpa: u64) -> Result<(), Status>;
    /// TDH.MR.FINALIZE: end the build; the TD becomes runnable.
    fn mr_finalize(&mut self) -> Result<(), Status>;
    /// TDH.PHYMEM.PAGE.WBINVD: write back and invalidate the TD-key cache lines of `page`.
    fn page_wbinvd(&mut self, page: u64) -> Result<(), Status>;
    /// TDH.VP.FLUSH for vCPU `vcpu`.
    fn vp_flush(&mut self, vcpu: usize) -> Result<(), Status>;
    /// TDH.MNG.VPFLUSHDONE: every vCPU was flushed; no vCPU may enter again.
    fn vpflushdone(&mut self) -> Result<(), Status>;
    /// TDH.PHYMEM.CACHE.WB on this package; `resume` after `TDX_INTERRUPTED_RESUMABLE`.
    fn cache_wb(&mut self, resume: bool) -> Result<(), Status>;
    /// TDH.MNG.KEY.FREEID: release the TD's private key id; the TD enters teardown.
    fn key_freeid(&mut self) -> Result<(), Status>;
    /// TDH.PHYMEM.PAGE.RECLAIM: take a page back from the module (teardown only).
    fn page_reclaim(&mut self, page: u64) -> Result<(), Status>;

    /// Not a SEAMCALL: force every vCPU of the TD out of guest mode (an IPI on
    /// hardware), so the vCPUs that entered in an old TLB epoch leave it.
    fn kick_vcpus(&mut self);
    /// vCPUs the TD was created with.
    fn vcpu_count(&self) -> usize;
    /// The TD's control pages.
    fn td_pages(&self) -> TdPages;
}
