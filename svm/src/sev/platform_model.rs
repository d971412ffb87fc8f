//! The SEV platform as a software model, behind the same traits as the hardware: the
//! firmware and RMP model ([`SevFirmwareModel`]) plus the two things the hardware does
//! on its own that the hooks rely on — the caches and, in model mode, the guest's
//! PVALIDATE.
//!
//! The model lives outside the MMU hooks ([`ModelAccess`]): the board keeps it where
//! its own memory accesses can be checked against the RMP too, and tests keep it where
//! they can look at it while a VM runs.

use super::cache::SevCache;
use super::firmware::{
    FirmwareError, GuestHandle, LaunchMeasurement, SevFirmware, SevFirmwareModel, SnpPageType,
};
use super::rmp::{Rmp, RmpEntry, RmpError, RmpFault, RmpReadError, RmpSize, RmpState};
use super::snp_mmu::SnpPlatform;
use alloc::rc::Rc;
use core::cell::RefCell;

const FRAME: u64 = 4096;

/// The platform model: firmware, RMP and caches.
#[derive(Clone, Debug)]
pub struct SevModel {
    pub firmware: SevFirmwareModel,
    /// The CPU keeps caches coherent across keys (SME_COHERENT).
    pub coherent: bool,
    /// Stand in for the guest's PVALIDATE: every frame the hypervisor assigns to a
    /// guest (not immutable) is validated at once, as a workload does before touching
    /// it. Model mode under QEMU, where the workload cannot execute PVALIDATE.
    pub guest_validates: bool,
}

impl SevModel {
    /// A platform after INIT and SNP_INIT, caches written back and flushed, with ASIDs
    /// 1 to `max_asid`; not coherent across keys, and the guest validates nothing by
    /// itself.
    pub fn initialised(max_asid: u32) -> Self {
        Self::ready(max_asid, true)
    }

    /// As [`SevModel::initialised`], without SNP_INIT: a legacy SEV platform, whose
    /// commands take their data in hypervisor pages.
    pub fn legacy(max_asid: u32) -> Self {
        Self::ready(max_asid, false)
    }

    fn ready(max_asid: u32, snp: bool) -> Self {
        let mut firmware = SevFirmwareModel::new(max_asid);
        let snp_ready = if snp { firmware.snp_init() } else { Ok(()) };
        let ready = snp_ready
            .and_then(|()| firmware.init())
            .and_then(|()| {
                firmware.wbinvd();
                if snp { firmware.snp_df_flush() } else { Ok(()) }
            })
            .and_then(|()| firmware.df_flush());
        debug_assert_eq!(ready, Ok(()), "a fresh model initialises");
        Self {
            firmware,
            coherent: false,
            guest_validates: false,
        }
    }
}

/// Where the model lives.
pub trait ModelAccess {
    fn with<R>(&self, f: impl FnOnce(&mut SevModel) -> R) -> R;

    /// The hypervisor's view of the frame at `pa`, given to the firmware model before a
    /// launch command measures it (the model has no memory of its own).
    fn read_frame(&self, _pa: u64, _out: &mut [u8; FRAME as usize]) {}
}

impl ModelAccess for Rc<RefCell<SevModel>> {
    fn with<R>(&self, f: impl FnOnce(&mut SevModel) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

/// A platform that forwards to the model behind `A`.
#[derive(Clone, Debug, Default)]
pub struct ModelPlatform<A>(pub A);

impl<A: ModelAccess> ModelPlatform<A> {
    fn firmware<R>(&self, f: impl FnOnce(&mut SevFirmwareModel) -> R) -> R {
        self.0.with(|model| f(&mut model.firmware))
    }

    /// Give the firmware model what the hypervisor wrote at `pa`.
    fn show_frames(&self, pa: u64, frames: u64) {
        let mut page = [0u8; FRAME as usize];
        for frame in (0..frames).map(|i| pa + i * FRAME) {
            self.0.read_frame(frame, &mut page);
            self.firmware(|fw| fw.host_write(frame, &page));
        }
    }
}

impl<A: ModelAccess> Rmp for ModelPlatform<A> {
    fn rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError> {
        self.0.with(|model| {
            model.firmware.rmpupdate(pa, state)?;
            if model.guest_validates && state.assigned && !state.immutable && state.asid != 0 {
                // What the workload's PVALIDATE of the new page would do.
                let _ = model
                    .firmware
                    .rmp
                    .pvalidate(state.asid, state.gpa, pa, state.size, true);
            }
            Ok(())
        })
    }

    fn psmash(&mut self, pa: u64) -> Result<(), RmpError> {
        self.firmware(|fw| fw.psmash(pa))
    }

    fn entry(&self, pa: u64) -> Result<RmpEntry, RmpReadError> {
        self.firmware(|fw| fw.entry(pa))
    }
}

impl<A: ModelAccess> SevCache for ModelPlatform<A> {
    fn coherent_across_keys(&self) -> bool {
        self.0.with(|model| model.coherent)
    }

    fn flush_host_lines(&mut self, pa: u64, frames: u64) {
        self.firmware(|fw| (0..frames).for_each(|i| fw.rmp.clflush(pa + i * FRAME)));
    }

    fn flush_guest_lines(&mut self, pa: u64, frames: u64, asid: u32) {
        self.firmware(|fw| (0..frames).for_each(|i| fw.rmp.vm_page_flush(pa + i * FRAME, asid)));
    }

    fn write_back_all(&mut self) {
        self.firmware(|fw| fw.wbinvd());
    }
}

impl<A: ModelAccess> SevFirmware for ModelPlatform<A> {
    fn init(&mut self) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.init())
    }
    fn snp_init(&mut self) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_init())
    }
    fn df_flush(&mut self) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.df_flush())
    }
    fn snp_df_flush(&mut self) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_df_flush())
    }
    fn launch_start(&mut self, policy: u32) -> Result<GuestHandle, FirmwareError> {
        self.firmware(|fw| fw.launch_start(policy))
    }
    fn launch_update_data(
        &mut self,
        guest: GuestHandle,
        pa: u64,
        len: u32,
    ) -> Result<(), FirmwareError> {
        self.show_frames(pa, u64::from(len).div_ceil(FRAME));
        self.firmware(|fw| fw.launch_update_data(guest, pa, len))
    }
    fn launch_measure(&mut self, guest: GuestHandle) -> Result<LaunchMeasurement, FirmwareError> {
        self.firmware(|fw| fw.launch_measure(guest))
    }
    fn launch_finish(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.launch_finish(guest))
    }
    fn activate(&mut self, guest: GuestHandle, asid: u32) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.activate(guest, asid))
    }
    fn deactivate(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.deactivate(guest))
    }
    fn decommission(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.decommission(guest))
    }
    fn snp_gctx_create(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_gctx_create(gctx))
    }
    fn snp_launch_start(&mut self, gctx: u64, policy: u64) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_launch_start(gctx, policy))
    }
    fn snp_activate(&mut self, gctx: u64, asid: u32) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_activate(gctx, asid))
    }
    fn snp_launch_update(
        &mut self,
        gctx: u64,
        pa: u64,
        size: RmpSize,
        page_type: SnpPageType,
    ) -> Result<(), FirmwareError> {
        self.show_frames(pa, size.frames());
        self.firmware(|fw| fw.snp_launch_update(gctx, pa, size, page_type))
    }
    fn snp_launch_finish(&mut self, gctx: u64, host_data: [u8; 32]) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_launch_finish(gctx, host_data))
    }
    fn snp_page_reclaim(&mut self, pa: u64, size: RmpSize) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_page_reclaim(pa, size))
    }
    fn snp_decommission(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.firmware(|fw| fw.snp_decommission(gctx))
    }
}

impl<A: ModelAccess> SnpPlatform for ModelPlatform<A> {
    const MODEL: bool = true;

    fn check_nested_map(
        &self,
        asid: u32,
        gpa: u64,
        pa: u64,
        size: RmpSize,
    ) -> Result<(), RmpFault> {
        match self
            .firmware(|fw| fw.rmp.check_nested_map(asid, gpa, pa, size))
            .fault()
        {
            None => Ok(()),
            Some(fault) => Err(fault),
        }
    }
}
