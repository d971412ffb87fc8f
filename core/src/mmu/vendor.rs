//! What a vendor backend does when private memory changes hands or mappings change.

use super::PageSize;

/// A vendor operation failed; carries the vendor's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VendorError {
    pub code: u64,
}

/// Hooks the MMU and the private memory objects call into. Plain SVM needs none of the
/// ownership steps, SEV/SNP and TDX need all of them.
pub trait VendorMmu {
    /// Frames are about to become the workload's: pin, transfer ownership (RMP
    /// assignment), flush host-key cache lines.
    fn prepare(&mut self, pa: u64, frames: u64) -> Result<(), VendorError>;
    /// Frames are leaving the workload: flush guest-key cache lines, reclaim ownership.
    fn invalidate(&mut self, pa: u64, frames: u64);
    /// Leaves covering `[gpa, gpa + size)` were cleared: the CPU must forget them
    /// before the next entry.
    fn zap(&mut self, gpa: u64, size: u64);
    /// A zapped private leaf was installed again for its already prepared frame.
    fn unzap(&mut self, gpa: u64, size: PageSize);

    // External second-level tables (TDX S-EPT), kept in step with the mirror table.
    // Backends without one have nothing to keep in step: the defaults succeed.

    /// A mirror table page was linked at `level` for `gpa`.
    fn link_external_table(
        &mut self,
        _gpa: u64,
        _level: usize,
        _table_pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// A mirror leaf now maps `pa`.
    fn set_external_leaf(
        &mut self,
        _gpa: u64,
        _size: PageSize,
        _pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// A mirror leaf mapping `pa` was removed.
    fn remove_external_leaf(
        &mut self,
        _gpa: u64,
        _size: PageSize,
        _pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
    /// An empty mirror table page at `level` for `gpa` is being freed.
    fn free_external_table(
        &mut self,
        _gpa: u64,
        _level: usize,
        _table_pa: u64,
    ) -> Result<(), VendorError> {
        Ok(())
    }
}
