//! core's vendor hooks for legacy SEV (spec digest B, D.7): no RMP, so ownership is
//! the memory encryption key alone and the hooks are about caches and the launch.
//!
//! - prepare: CLFLUSH the frames unless the CPU keeps caches coherent across keys, so
//!   no host-key line is written back over what the guest writes (PIN-06).
//! - invalidate: VM_PAGE_FLUSH each frame with the guest's ASID before it leaves, so no
//!   guest-key line is written back over the next owner's data (PIN-05).
//! - launch: LAUNCH_UPDATE_DATA encrypts each launch page in place, then
//!   LAUNCH_MEASURE and LAUNCH_FINISH.
//! - retire: WBINVD after DEACTIVATE and before DF_FLUSH (PIN-07; frames leaving
//!   earlier were flushed one by one by invalidate).

use super::cache::SevCache;
use super::firmware::{GuestHandle, LaunchMeasurement, SevFirmware};
use cloister_core::mmu::{PageSize, VendorError, VendorMmu};

const FRAME: u32 = 4096;

/// What the SEV hooks need of the platform.
pub trait SevPlatform: SevFirmware + SevCache {}

impl<T: SevFirmware + SevCache> SevPlatform for T {}

/// The SEV vendor hooks for one guest.
pub struct SevMmu<P: SevPlatform> {
    platform: P,
    asid: u32,
    guest: GuestHandle,
    measurement: Option<LaunchMeasurement>,
    pub launch_pages: u64,
}

impl<P: SevPlatform> SevMmu<P> {
    fn launched(&self) -> bool {
        self.measurement.is_some()
    }
}

impl<P: SevPlatform> SevMmu<P> {
    /// LAUNCH_START with `policy`, then ACTIVATE on `asid` (LAUNCH_UPDATE_DATA needs an
    /// active guest).
    pub fn launch(mut platform: P, asid: u32, policy: u32) -> Result<Self, VendorError> {
        let guest = platform.launch_start(policy)?;
        platform.activate(guest, asid)?;
        Ok(Self {
            platform,
            asid,
            guest,
            measurement: None,
            launch_pages: 0,
        })
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }

    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    pub fn asid(&self) -> u32 {
        self.asid
    }

    /// LAUNCH_MEASURE's answer, once launch finished.
    pub fn measurement(&self) -> Option<LaunchMeasurement> {
        self.measurement
    }

    /// Retire the guest once its private memory is destroyed: DEACTIVATE, every cache
    /// line written back (after DEACTIVATE: the firmware wants a WBINVD since the ASID
    /// last ran before DF_FLUSH), DF_FLUSH (the ASID may then be activated again),
    /// DECOMMISSION.
    pub fn retire(mut self) -> Result<(), VendorError> {
        self.platform.deactivate(self.guest)?;
        self.platform.write_back_all();
        self.platform.df_flush()?;
        self.platform.decommission(self.guest)?;
        Ok(())
    }
}

impl<P: SevPlatform> VendorMmu for SevMmu<P> {
    const LAUNCH_PAGES: bool = true;

    fn prepare(&mut self, _gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError> {
        if !self.platform.coherent_across_keys() {
            self.platform.flush_host_lines(pa, frames);
        }
        Ok(())
    }

    fn invalidate(&mut self, pa: u64, frames: u64, _quarantine: &mut dyn FnMut(u64)) {
        self.platform.flush_guest_lines(pa, frames, self.asid);
    }

    // Every VMRUN flushes the guest's ASID from the TLB (as on plain SVM).
    fn zap(&mut self, _gpa: u64, _size: u64) {}

    fn unzap(&mut self, _gpa: u64, _size: PageSize) {}

    // Launch encrypts and measures what it wrote, 4 KiB at a time, rather than whole
    // 2 MiB blocks of which it wrote a few pages.
    fn max_private_leaf(&self, _pa: u64) -> PageSize {
        if self.launched() {
            PageSize::Size2M
        } else {
            PageSize::Size4K
        }
    }

    fn add_launch_page(&mut self, _gpa: u64, pa: u64, _source: u64) -> Result<(), VendorError> {
        // The firmware reads the page from memory: no host-key line may hold its data.
        if !self.platform.coherent_across_keys() {
            self.platform.flush_host_lines(pa, 1);
        }
        self.platform.launch_update_data(self.guest, pa, FRAME)?;
        self.launch_pages += 1;
        Ok(())
    }

    fn finish_launch(&mut self) -> Result<(), VendorError> {
        self.measurement = Some(self.platform.launch_measure(self.guest)?);
        self.platform.launch_finish(self.guest)?;
        Ok(())
    }
}
