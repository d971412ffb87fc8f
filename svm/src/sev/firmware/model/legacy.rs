//! Platform and legacy SEV guest commands. Each check cites the firmware function it
//! follows (AMD-ASPFW `sev_mcmd.c` unless named otherwise).

use super::digest::Fold;
use super::{
    API_MAJOR, API_MINOR, BUILD, FirmwareError, GuestHandle, LaunchMeasurement, PlatformState,
    SevFirmwareModel, SevGuestState, SnpPlatformState,
};
use crate::sev::firmware::{SnpPageState, page_state};

/// Policy bit 2: the guest wants SEV-ES.
const POLICY_ES: u32 = 1 << 2;

#[derive(Clone, Debug)]
pub struct Guest {
    pub state: SevGuestState,
    pub policy: u32,
    /// The ASID while activated (pending or active).
    pub asid: Option<u32>,
    /// Everything LAUNCH_UPDATE_DATA imported, in order.
    pub digest: Fold,
}

impl SevFirmwareModel {
    /// `sev_mcmd_init_common`: only from UNINIT. The ASID bookkeeping starts over only
    /// when SNP has not (SNP_INIT did it already).
    pub(super) fn do_init(&mut self) -> Result<(), FirmwareError> {
        if self.platform != PlatformState::Uninit {
            return Err(FirmwareError::INVALID_PLATFORM_STATE);
        }
        if self.snp_platform == SnpPlatformState::Uninit {
            self.asids.reset(self.wbinvds());
        }
        self.platform = PlatformState::Init;
        Ok(())
    }

    /// `mcmd_df_flush_common`, for DF_FLUSH and SNP_DF_FLUSH alike; it checks no
    /// platform state.
    pub(super) fn do_df_flush(&mut self) -> Result<(), FirmwareError> {
        let wbinvds = self.wbinvds();
        self.asids.df_flush(wbinvds)
    }

    /// `sev_mcmd_launch_start`: INIT or WORKING; a free handle; no ES on a platform
    /// initialized without it. The platform is WORKING afterwards.
    pub(super) fn do_launch_start(&mut self, policy: u32) -> Result<GuestHandle, FirmwareError> {
        if self.platform == PlatformState::Uninit {
            return Err(FirmwareError::INVALID_PLATFORM_STATE);
        }
        let handle = (1..=self.max_guests)
            .find(|h| !self.guests.contains_key(h))
            .ok_or(FirmwareError::RESOURCE_LIMIT)?;
        if policy & POLICY_ES != 0 {
            return Err(FirmwareError::UNSUPPORTED);
        }
        let guest = Guest {
            state: SevGuestState::Lupdate,
            policy,
            asid: None,
            digest: Fold::default(),
        };
        self.guests.insert(handle, guest);
        self.platform = PlatformState::Working;
        Ok(GuestHandle(handle))
    }

    /// `launch_update_common`: WORKING, a guest in LUPDATE that is activated (pending
    /// counts), 16-byte aligned address and nonzero aligned length; with SNP
    /// initialized, the range must be Firmware pages (`check_page_range_firmware_
    /// writable`; the status it returns is **[inference]**).
    pub(super) fn do_launch_update_data(
        &mut self,
        guest: GuestHandle,
        pa: u64,
        len: u32,
    ) -> Result<(), FirmwareError> {
        let g = self.working_guest(guest)?;
        if g.state != SevGuestState::Lupdate {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        if g.asid.is_none() {
            return Err(FirmwareError::INACTIVE);
        }
        if !pa.is_multiple_of(16) {
            return Err(FirmwareError::INVALID_ADDRESS);
        }
        if len == 0 || !len.is_multiple_of(16) {
            return Err(FirmwareError::INVALID_LEN);
        }
        let end = pa + u64::from(len);
        if self.snp_platform == SnpPlatformState::Init
            && (pa & !0xfff..end)
                .step_by(4096)
                .any(|page| page_state(&self.rmp.lookup(page)) != SnpPageState::Firmware)
        {
            return Err(FirmwareError::INVALID_PAGE_STATE);
        }
        let mut digest = self.guests[&guest.0].digest.clone();
        self.memory.read(pa, u64::from(len), |bytes| {
            digest.update(bytes);
        });
        self.guest_mut(guest).digest = digest;
        Ok(())
    }

    /// `sev_mcmd_launch_measure`: WORKING, LUPDATE -> LSECRET. The measurement covers
    /// the API version, the policy, the launch digest and a nonce (`sev_guest_measure`,
    /// there an HMAC under the guest owner's key).
    pub(super) fn do_launch_measure(
        &mut self,
        guest: GuestHandle,
    ) -> Result<LaunchMeasurement, FirmwareError> {
        let g = self.working_guest(guest)?;
        if g.state != SevGuestState::Lupdate {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        let (policy, launch_digest) = (g.policy, g.digest.finish32());
        let mnonce = self.next_nonce();
        let mut fold = Fold::of(&[0x04, API_MAJOR, API_MINOR, BUILD]);
        fold.update(&policy.to_le_bytes())
            .update(&launch_digest)
            .update(&mnonce);
        self.guest_mut(guest).state = SevGuestState::Lsecret;
        Ok(LaunchMeasurement {
            measurement: fold.finish32(),
            mnonce,
        })
    }

    /// `sev_mcmd_launch_finish`: WORKING, LSECRET -> RUNNING; a pending activation
    /// takes effect (its ASID is in use from now on).
    pub(super) fn do_launch_finish(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        let g = self.working_guest(guest)?;
        if g.state != SevGuestState::Lsecret {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        if let Some(asid) = g.asid {
            self.asids.finish(asid);
        }
        self.guest_mut(guest).state = SevGuestState::Running;
        Ok(())
    }

    /// `sev_mcmd_activate`: WORKING, a guest, then the ASID checks (`Asids::activate`).
    /// Any guest state will do (ACTIVATE is allowed in LUPDATE, LSECRET and RUNNING).
    pub(super) fn do_activate(
        &mut self,
        guest: GuestHandle,
        asid: u32,
    ) -> Result<(), FirmwareError> {
        let g = self.working_guest(guest)?;
        let (has_asid, running) = (g.asid.is_some(), g.state == SevGuestState::Running);
        self.asids.activate(asid, has_asid, running)?;
        self.guest_mut(guest).asid = Some(asid);
        Ok(())
    }

    /// `sev_mcmd_deactivate`: WORKING, an activated guest (else INACTIVE).
    pub(super) fn do_deactivate(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        let asid = self
            .working_guest(guest)?
            .asid
            .ok_or(FirmwareError::INACTIVE)?;
        let wbinvds = self.wbinvds();
        self.asids.deactivate(asid, wbinvds);
        self.guest_mut(guest).asid = None;
        Ok(())
    }

    /// `sev_mcmd_decommission`: WORKING, a deactivated guest (else ACTIVE); the last
    /// guest gone, the platform is back to INIT.
    pub(super) fn do_decommission(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        if self.working_guest(guest)?.asid.is_some() {
            return Err(FirmwareError::ACTIVE);
        }
        self.guests.remove(&guest.0);
        if self.guests.is_empty() {
            self.platform = PlatformState::Init;
        }
        Ok(())
    }

    /// The common prologue: platform WORKING (INVALID_PLATFORM_STATE), then a live
    /// handle (INVALID_GUEST, `handle_is_valid`).
    fn working_guest(&self, guest: GuestHandle) -> Result<&Guest, FirmwareError> {
        if self.platform != PlatformState::Working {
            return Err(FirmwareError::INVALID_PLATFORM_STATE);
        }
        self.guests
            .get(&guest.0)
            .ok_or(FirmwareError::INVALID_GUEST)
    }

    fn guest_mut(&mut self, guest: GuestHandle) -> &mut Guest {
        self.guests
            .get_mut(&guest.0)
            .expect("checked by working_guest")
    }
}
