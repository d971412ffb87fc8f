//! SNP platform and guest commands. Each check cites the firmware function it follows
//! (AMD-ASPFW `sev_mcmd.c`); page states are the firmware's ([`page_state`]).

use super::digest::Fold;
use super::{
    API_MAJOR, API_MINOR, FirmwareError, PlatformState, SevFirmwareModel, SnpGuestState,
    SnpPlatformState,
};
use crate::sev::firmware::{SnpPageState, SnpPageType, page_state};
use crate::sev::rmp::RmpSize;

/// SNP policy bit 17 must be set (`snp_mcmd_launch_start`: POLICY.VMPL).
const POLICY_VMPL: u64 = 1 << 17;
/// Bits 21-63 are reserved in the firmware this follows; newer ABIs define some.
const POLICY_RESERVED: u64 = !((1 << 21) - 1);
/// The CPUID page holds at most this many functions (`SNP_CPUID_COUNT_MAX`).
const CPUID_COUNT_MAX: u32 = 64;
/// `snp_mcmd_launch_update_page_info_t` is 0x70 bytes.
const PAGE_INFO_LEN: u16 = 0x70;

#[derive(Clone, Debug)]
pub struct Guest {
    pub state: SnpGuestState,
    pub policy: u64,
    pub asid: Option<u32>,
    /// GCTX.LD: the launch digest.
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
}

impl SevFirmwareModel {
    /// `snp_mcmd_init_common`: both platforms UNINIT (SNP must come first); every
    /// ASID dirty, every WBINVD_DONE flag clear. The model's RMP is left as it is.
    pub(super) fn do_snp_init(&mut self) -> Result<(), FirmwareError> {
        if self.snp_platform != SnpPlatformState::Uninit || self.platform != PlatformState::Uninit {
            return Err(FirmwareError::INVALID_PLATFORM_STATE);
        }
        self.asids.reset(self.wbinvds());
        self.snp_platform = SnpPlatformState::Init;
        Ok(())
    }

    /// `snp_mcmd_gctx_create`: the page must be a 4 KiB Firmware page (the hypervisor
    /// made it one with RMPUPDATE); it becomes a Context page.
    pub(super) fn do_gctx_create(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.snp_prologue(&[gctx])?;
        let entry = self.rmp.lookup(gctx);
        if page_state(&entry) != SnpPageState::Firmware {
            return Err(FirmwareError::INVALID_PAGE_STATE);
        }
        if entry.size != RmpSize::Size4K {
            return Err(FirmwareError::INVALID_PAGE_SIZE);
        }
        self.set_vmsa(gctx, true);
        let guest = Guest {
            state: SnpGuestState::Init,
            policy: 0,
            asid: None,
            measurement: [0; 48],
            host_data: [0; 32],
        };
        self.snp_guests.insert(gctx, guest);
        Ok(())
    }

    /// `snp_mcmd_launch_start`: a guest in INIT with an acceptable policy -> LAUNCH.
    pub(super) fn do_snp_launch_start(
        &mut self,
        gctx: u64,
        policy: u64,
    ) -> Result<(), FirmwareError> {
        let guest = self.snp_guest(gctx)?;
        if guest.state != SnpGuestState::Init {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        let (major, minor) = ((policy >> 8) as u8, policy as u8);
        if policy & POLICY_VMPL == 0
            || policy & POLICY_RESERVED != 0
            || (major, minor) > (API_MAJOR, API_MINOR)
        {
            return Err(FirmwareError::POLICY_FAILURE);
        }
        let guest = self.snp_guest_mut(gctx);
        guest.state = SnpGuestState::Launch;
        guest.policy = policy;
        Ok(())
    }

    /// `snp_mcmd_activate`: a guest in LAUNCH or RUNNING, no RMP entry assigned to the
    /// ASID yet (INVALID_CONFIG; ASID 0 is not looked for, since Firmware pages carry
    /// it **[inference]**), then the ASID checks.
    pub(super) fn do_snp_activate(&mut self, gctx: u64, asid: u32) -> Result<(), FirmwareError> {
        let guest = self.snp_guest(gctx)?;
        if guest.state == SnpGuestState::Init {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        let (has_asid, running) = (guest.asid.is_some(), guest.state == SnpGuestState::Running);
        if asid != 0 && self.rmp.assigned_frames().any(|(_, e)| e.asid == asid) {
            return Err(FirmwareError::INVALID_CONFIG);
        }
        self.asids.activate(asid, has_asid, running)?;
        self.snp_guest_mut(gctx).asid = Some(asid);
        Ok(())
    }

    /// `snp_mcmd_launch_update`, in its order: a Pre-Guest page of the stated size,
    /// 2 MiB aligned if 2 MiB, a 4 KiB page for the VMSA/secrets/CPUID types; a
    /// launching, activated guest owning the page. Each 4 KiB is measured into
    /// GCTX.LD with the GPA from the RMP entry, and the page becomes guest-valid
    /// (`rmp.fw_launch_update`), a VMSA for the VMSA type.
    pub(super) fn do_snp_launch_update(
        &mut self,
        gctx: u64,
        pa: u64,
        size: RmpSize,
        page_type: SnpPageType,
    ) -> Result<(), FirmwareError> {
        self.snp_prologue(&[gctx, pa])?;
        self.context(gctx)?;
        let entry = self.rmp.lookup(pa);
        if page_state(&entry) != SnpPageState::PreGuest {
            return Err(FirmwareError::INVALID_PAGE_STATE);
        }
        if entry.size != size {
            return Err(FirmwareError::INVALID_PAGE_SIZE);
        }
        if !pa.is_multiple_of(size.bytes()) {
            return Err(FirmwareError::INVALID_ADDRESS);
        }
        if page_type.small_only() && size != RmpSize::Size4K {
            return Err(FirmwareError::INVALID_PAGE_SIZE);
        }
        let guest = self.snp_guest(gctx)?;
        if guest.state != SnpGuestState::Launch {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        let asid = guest.asid.ok_or(FirmwareError::INACTIVE)?;
        if entry.asid != asid {
            return Err(FirmwareError::INVALID_PAGE_OWNER);
        }
        if page_type == SnpPageType::Cpuid && self.cpuid_count(pa) > CPUID_COUNT_MAX {
            return Err(FirmwareError::INVALID_PARAM);
        }
        let mut measurement = guest.measurement;
        for frame in 0..size.frames() {
            let at = pa + frame * 4096;
            measurement = self.page_info_digest(measurement, at, entry.frame_gpa(at), page_type);
        }
        self.snp_guest_mut(gctx).measurement = measurement;
        self.rmp
            .fw_launch_update(pa, asid)
            .expect("checked Pre-Guest and the owner");
        if page_type == SnpPageType::Vmsa {
            self.set_vmsa(pa, true);
        }
        Ok(())
    }

    /// `snp_mcmd_launch_finish` without an ID block: LAUNCH -> RUNNING for an
    /// activated guest; a pending activation takes effect.
    pub(super) fn do_snp_launch_finish(
        &mut self,
        gctx: u64,
        host_data: [u8; 32],
    ) -> Result<(), FirmwareError> {
        let guest = self.snp_guest(gctx)?;
        if guest.state != SnpGuestState::Launch {
            return Err(FirmwareError::INVALID_GUEST_STATE);
        }
        let asid = guest.asid.ok_or(FirmwareError::INACTIVE)?;
        self.asids.finish(asid);
        let guest = self.snp_guest_mut(gctx);
        guest.state = SnpGuestState::Running;
        guest.host_data = host_data;
        Ok(())
    }

    /// `snp_mcmd_page_reclaim`: the stated size must be the entry's (2 MiB aligned if
    /// 2 MiB); a mutable page succeeds unchanged; an immutable Firmware, metadata,
    /// Pre-Guest or Pre-Swap page becomes mutable; anything else (a Context page) is
    /// INVALID_PAGE_STATE.
    pub(super) fn do_page_reclaim(&mut self, pa: u64, size: RmpSize) -> Result<(), FirmwareError> {
        self.snp_prologue(&[pa])?;
        let entry = self.rmp.lookup(pa);
        if entry.size != size {
            return Err(FirmwareError::INVALID_PAGE_SIZE);
        }
        if !pa.is_multiple_of(size.bytes()) {
            return Err(FirmwareError::INVALID_ADDRESS);
        }
        if !entry.immutable {
            return Ok(());
        }
        match page_state(&entry) {
            SnpPageState::Firmware
            | SnpPageState::Metadata
            | SnpPageState::PreGuest
            | SnpPageState::PreSwap => {
                self.rmp.fw_reclaim(pa).expect("checked immutable");
                Ok(())
            }
            _ => Err(FirmwareError::INVALID_PAGE_STATE),
        }
    }

    /// `snp_mcmd_decommission`: from any guest state; deactivates first
    /// (`snp_decommission_common`), and the context page is a Firmware page again.
    pub(super) fn do_snp_decommission(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        let guest = self.snp_guest(gctx)?;
        if let Some(asid) = guest.asid {
            let wbinvds = self.wbinvds();
            self.asids.deactivate(asid, wbinvds);
        }
        self.snp_guests.remove(&gctx);
        self.set_vmsa(gctx, false);
        Ok(())
    }

    /// Reserved low bits in an address are INVALID_PARAM, checked before the platform
    /// state (INVALID_PLATFORM_STATE unless SNP is initialized).
    fn snp_prologue(&self, addresses: &[u64]) -> Result<(), FirmwareError> {
        if addresses.iter().any(|a| a & 0xfff != 0) {
            return Err(FirmwareError::INVALID_PARAM);
        }
        if self.snp_platform != SnpPlatformState::Init {
            return Err(FirmwareError::INVALID_PLATFORM_STATE);
        }
        Ok(())
    }

    /// The page at `gctx` is a Context page (else INVALID_GUEST).
    fn context(&self, gctx: u64) -> Result<(), FirmwareError> {
        match page_state(&self.rmp.lookup(gctx)) {
            SnpPageState::Context => Ok(()),
            _ => Err(FirmwareError::INVALID_GUEST),
        }
    }

    /// The prologue and the context page check, then the guest it holds.
    fn snp_guest(&self, gctx: u64) -> Result<&Guest, FirmwareError> {
        self.snp_prologue(&[gctx])?;
        self.context(gctx)?;
        self.snp_guests
            .get(&gctx)
            .ok_or(FirmwareError::INVALID_GUEST)
    }

    fn snp_guest_mut(&mut self, gctx: u64) -> &mut Guest {
        self.snp_guests
            .get_mut(&gctx)
            .expect("checked by snp_guest")
    }

    fn set_vmsa(&mut self, pa: u64, vmsa: bool) {
        self.rmp.fw_set_vmsa(pa, vmsa).expect("an assigned page");
    }

    /// The CPUID page's function count (offset 0).
    fn cpuid_count(&self, pa: u64) -> u32 {
        let mut count = [0; 4];
        self.memory.read(pa, 4, |b| count.copy_from_slice(b));
        u32::from_le_bytes(count)
    }

    /// The next GCTX.LD: the digest of `snp_mcmd_launch_update_page_info_t` (the
    /// current LD, the page's contents digest for measured types, the length, type,
    /// VMPL permissions (0 here) and GPA).
    fn page_info_digest(
        &self,
        current: [u8; 48],
        pa: u64,
        gpa: u64,
        page_type: SnpPageType,
    ) -> [u8; 48] {
        let mut info = [0u8; PAGE_INFO_LEN as usize];
        info[..48].copy_from_slice(&current);
        if matches!(page_type, SnpPageType::Normal | SnpPageType::Vmsa) {
            let mut contents = Fold::default();
            self.memory.read(pa, 4096, |bytes| {
                contents.update(bytes);
            });
            info[48..96].copy_from_slice(&contents.finish48());
        }
        info[96..98].copy_from_slice(&PAGE_INFO_LEN.to_le_bytes());
        info[98] = page_type as u8;
        info[104..112].copy_from_slice(&gpa.to_le_bytes());
        Fold::of(&info).finish48()
    }
}
