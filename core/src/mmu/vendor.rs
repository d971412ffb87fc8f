//! What a vendor backend does when private memory changes hands or mappings change.

use super::PageSize;

/// A vendor operation failed; carries the vendor's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VendorError {
    pub code: u64,
    /// The vendor's name for the code, for reports.
    pub name: &'static str,
    /// Contention: nothing changed, and the same call may succeed if repeated.
    pub busy: bool,
}

impl VendorError {
    /// A refusal that repeating will not change.
    pub const fn failed(code: u64, name: &'static str) -> Self {
        Self {
            code,
            name,
            busy: false,
        }
    }

    /// Contention: retry.
    pub const fn busy(code: u64, name: &'static str) -> Self {
        Self {
            code,
            name,
            busy: true,
        }
    }
}

/// A table page of an external copy, linked for the mirror table at `level` (1 = last
/// level) covering `gpa`. Core allocates it and gives it back once the vendor says the
/// external side released it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalTable {
    pub gpa: u64,
    pub level: usize,
    pub pa: u64,
}

/// Hooks the MMU and the private memory objects call into. Plain SVM needs none of the
/// ownership steps, SEV/SNP and TDX need all of them.
pub trait VendorMmu {
    /// Non-zero for vendors whose private and shared aliases of a GPA are different
    /// guest-physical addresses (TDX: GPA bit 47). Private mappings then live in a mirror
    /// table whose every change is pushed to the vendor's external table through the
    /// `*_external_*` hooks; shared mappings live in a direct table at `gpa | bit`. Zero:
    /// one table holds both aliases and the external hooks are never called.
    const SHARED_GPA_BIT: u64 = 0;
    /// Bits the workload finds in its boot info's `features` (its hypercall transport).
    const BOOT_FEATURES: u64 = 0;
    /// The vendor takes the pages launch wrote one by one ([`VendorMmu::add_launch_page`]),
    /// and the workload may touch no other private page before it accepts or validates
    /// it, so the top of the boot stack comes with the launch pages (TDX, SEV-SNP).
    const LAUNCH_PAGES: bool = false;

    /// Frames `[pa, pa + frames * 4 KiB)` are about to become the workload's, at
    /// guest-physical `gpa` onwards: pin, transfer ownership (RMP assignment), flush
    /// host-key cache lines.
    fn prepare(&mut self, gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError>;
    /// Frames are leaving the workload: flush guest-key cache lines, reclaim ownership.
    /// A frame that cannot be reclaimed goes to `quarantine` and is never reused.
    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64));
    /// Leaves covering `[gpa, gpa + size)` were cleared: the CPU must forget them
    /// before the next entry.
    fn zap(&mut self, gpa: u64, size: u64);
    /// A zapped private leaf was installed again for its already prepared frame.
    fn unzap(&mut self, gpa: u64, size: PageSize);

    /// The largest private leaf that may map the prepared frame `pa` (SEV-SNP: no larger
    /// than its RMP entry).
    #[inline]
    fn max_private_leaf(&self, _pa: u64) -> PageSize {
        PageSize::Size2M
    }
    /// A private leaf of `size` mapping `gpa` to `pa` is about to be installed: refuse it
    /// if the hardware would fault on it (the SEV-SNP model checks the RMP entry here).
    #[inline]
    fn check_private_leaf(
        &mut self,
        _gpa: u64,
        _size: PageSize,
        _pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// The hardware refused a 4 KiB access inside the 2 MiB ownership entry of the frames
    /// at `pa` (SEV-SNP: an RMP size mismatch): split the entry into 4 KiB entries. Core
    /// then zaps the 2 MiB range, so it refaults at 4 KiB.
    fn split_private(&mut self, _pa: u64) -> Result<(), VendorError> {
        Ok(())
    }

    /// Launch is over: the workload's initial memory is in place (SEV: LAUNCH_FINISH;
    /// TDX: MR.FINALIZE).
    fn finish_launch(&mut self) -> Result<(), VendorError> {
        Ok(())
    }

    // External second-level tables (SHARED_GPA_BIT != 0 only). Each call is made while
    // the mirror entry concerned holds the FROZEN value.

    /// The mirror linked a table at `level` (1 = last level) covering `gpa`; `page` is
    /// the page for the external table's counterpart.
    fn link_external_table(
        &mut self,
        _gpa: u64,
        _level: usize,
        _page: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// A private mirror leaf now maps `pa`.
    fn set_external_leaf(
        &mut self,
        _gpa: u64,
        _size: PageSize,
        _pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// A private mirror leaf mapping `pa` goes. On success the frame's contents are gone
    /// for the workload; core clears it before anything else sees it.
    fn remove_external_leaf(
        &mut self,
        _gpa: u64,
        _size: PageSize,
        _pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// Launch: the premapped private page at `gpa` (frame `pa`) gets its contents from
    /// the hypervisor page `source` (TDX: PAGE.ADD and MR.EXTEND; SEV-SNP encrypts the
    /// frame in place and ignores `source`). Called only when `LAUNCH_PAGES`.
    fn add_launch_page(&mut self, _gpa: u64, _pa: u64, _source: u64) -> Result<(), VendorError> {
        Ok(())
    }
    /// Teardown, after every external leaf was removed: retire the external side and
    /// take back its `tables`, calling `reclaimed` for each page that may be reused.
    /// Pages not reported are leaked on purpose (the external side may still own them).
    fn teardown_external(
        &mut self,
        tables: &[ExternalTable],
        reclaimed: &mut dyn FnMut(u64),
    ) -> Result<(), VendorError> {
        tables.iter().for_each(|t| reclaimed(t.pa));
        Ok(())
    }
}
