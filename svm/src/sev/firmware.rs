//! The SEV firmware on the AMD Secure Processor (PSP): the platform, legacy SEV guest
//! and SEV-SNP guest commands the hypervisor issues, behind [`SevFirmware`].
//!
//! [`PspMailbox`] sends them through the PSP's command mailbox: compiled, never run
//! here (QEMU has no PSP). [`SevFirmwareModel`] is the software model the tests drive:
//! the command state machines with the firmware's own status codes, over an
//! [`RmpModel`](super::rmp::RmpModel) it owns, so one object stands for the whole SEV
//! platform (firmware, RMP, caches).
//!
//! Command IDs and status codes: Linux `include/linux/psp-sev.h` (`enum sev_cmd`) and
//! `include/uapi/linux/psp-sev.h` (`sev_ret_code`; the SNP codes from 0x19 as the
//! firmware numbers them, which some Linux versions got wrong). Checks and their
//! order: AMD's SEV firmware source (amd/AMD-ASPFW, `sev_uapp/src/sev_mcmd.c`,
//! `sev_guest.c`), cited per rule in the model.

pub mod abi;
mod command;
mod mailbox;
mod model;
mod page_state;
mod status;

pub use command::SevCommand;
pub use mailbox::{CommandPage, MailboxLayout, MailboxRegisters, PspMailbox, PspMmio};
pub use model::{
    AsidState, FwCall, PlatformState, SevFirmwareModel, SevGuestState, SnpGuestState,
    SnpPlatformState,
};
pub use page_state::{SnpPageState, page_state};
pub use status::FirmwareError;

use super::rmp::RmpSize;

/// A legacy SEV guest's handle, chosen by the firmware at LAUNCH_START.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestHandle(pub u32);

/// SNP_LAUNCH_UPDATE page types, with the firmware's values (Linux
/// `SNP_PAGE_TYPE_*`, AMD-ASPFW `snp_launch_update_page_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnpPageType {
    /// Guest data, measured.
    Normal = 1,
    /// A vCPU's save area, measured; the page becomes a VMSA.
    Vmsa = 2,
    /// Zeroed by the firmware; measured as its type and GPA only.
    Zero = 3,
    /// Encrypted but not measured.
    Unmeasured = 4,
    /// The firmware writes the guest's secrets (VMPCKs) into it.
    Secrets = 5,
    /// CPUID values the firmware checks against the CPU's.
    Cpuid = 6,
}

impl SnpPageType {
    /// Only 4 KiB pages may have these types.
    pub const fn small_only(self) -> bool {
        matches!(self, Self::Vmsa | Self::Secrets | Self::Cpuid)
    }
}

/// LAUNCH_MEASURE's output (Linux `struct sev_data_launch_measure` points at it): the
/// measurement and the nonce it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchMeasurement {
    pub measurement: [u8; 32],
    pub mnonce: [u8; 16],
}

/// The PSP commands the hypervisor needs. Each method is one command; errors are the
/// firmware's status unchanged. Addresses are system physical addresses.
///
/// Order for a legacy SEV guest: [`init`](Self::init), WBINVD on every CPU,
/// [`df_flush`](Self::df_flush) (Linux does this right after INIT: every ASID starts
/// dirty), [`launch_start`](Self::launch_start), [`activate`](Self::activate) (LAUNCH_UPDATE_DATA of an
/// inactive guest is INACTIVE), [`launch_update_data`](Self::launch_update_data)...,
/// [`launch_measure`](Self::launch_measure), [`launch_finish`](Self::launch_finish);
/// teardown [`deactivate`](Self::deactivate), [`decommission`](Self::decommission);
/// before the ASID is activated again, WBINVD and DF_FLUSH, the WBINVD after the
/// DEACTIVATE (which clears the CPUs' WBINVD_DONE flags; Linux `sev_flush_asids`).
///
/// Order for an SNP guest: [`snp_init`](Self::snp_init) (before INIT), WBINVD,
/// [`snp_df_flush`](Self::snp_df_flush); RMPUPDATE the context page to a Firmware page
/// (assigned, ASID 0, immutable), then [`snp_launch_begin`](Self::snp_launch_begin)
/// (GCTX_CREATE, LAUNCH_START, ACTIVATE: KVM's order; ACTIVATE wants a launched guest
/// and no RMP entry of the ASID yet); per page RMPUPDATE to Pre-Guest (private,
/// immutable) and [`snp_launch_update`](Self::snp_launch_update); then
/// [`snp_launch_finish`](Self::snp_launch_finish). A page the firmware refused stays
/// immutable: [`snp_page_reclaim`](Self::snp_page_reclaim) it before RMPUPDATE to
/// shared. Teardown: [`snp_decommission`](Self::snp_decommission) (which also
/// deactivates), reclaim the context page, then WBINVD + SNP_DF_FLUSH.
pub trait SevFirmware {
    /// INIT: the legacy SEV platform goes UNINIT -> INIT. SEV-ES is not enabled (flags
    /// 0, no trusted memory region).
    fn init(&mut self) -> Result<(), FirmwareError>;
    /// SNP_INIT: initializes the RMP and the SNP platform; both platforms must be
    /// UNINIT. The CPUs must have SYSCFG.SNP_EN and the RMP base/end MSRs set.
    fn snp_init(&mut self) -> Result<(), FirmwareError>;
    /// DF_FLUSH: dirty ASIDs become clean. WBINVD_REQUIRED unless every CPU ran
    /// WBINVD since an ASID last became dirty.
    fn df_flush(&mut self) -> Result<(), FirmwareError>;
    /// SNP_DF_FLUSH: as DF_FLUSH (the firmware runs the same code for both).
    fn snp_df_flush(&mut self) -> Result<(), FirmwareError>;

    /// LAUNCH_START without a guest-owner session: a new guest in LUPDATE.
    fn launch_start(&mut self, policy: u32) -> Result<GuestHandle, FirmwareError>;
    /// LAUNCH_UPDATE_DATA: encrypt `len` bytes at `pa` in place with the guest's key
    /// and measure them. Both 16-byte aligned; the guest must be activated.
    fn launch_update_data(
        &mut self,
        guest: GuestHandle,
        pa: u64,
        len: u32,
    ) -> Result<(), FirmwareError>;
    /// LAUNCH_MEASURE: LUPDATE -> LSECRET.
    fn launch_measure(&mut self, guest: GuestHandle) -> Result<LaunchMeasurement, FirmwareError>;
    /// LAUNCH_FINISH: LSECRET -> RUNNING; a pending activation takes effect.
    fn launch_finish(&mut self, guest: GuestHandle) -> Result<(), FirmwareError>;
    /// ACTIVATE: load the guest's key for `asid` on every CPU complex.
    fn activate(&mut self, guest: GuestHandle, asid: u32) -> Result<(), FirmwareError>;
    /// DEACTIVATE: unbind the guest from its ASID; if it ran, the ASID is dirty.
    fn deactivate(&mut self, guest: GuestHandle) -> Result<(), FirmwareError>;
    /// DECOMMISSION: delete a deactivated guest.
    fn decommission(&mut self, guest: GuestHandle) -> Result<(), FirmwareError>;

    /// SNP_GCTX_CREATE: the Firmware page at `gctx` becomes the guest's context page.
    fn snp_gctx_create(&mut self, gctx: u64) -> Result<(), FirmwareError>;
    /// SNP_LAUNCH_START: INIT -> LAUNCH with `policy` (Linux's default 0x30000).
    fn snp_launch_start(&mut self, gctx: u64, policy: u64) -> Result<(), FirmwareError>;
    /// SNP_ACTIVATE: bind the guest to `asid`.
    fn snp_activate(&mut self, gctx: u64, asid: u32) -> Result<(), FirmwareError>;
    /// SNP_LAUNCH_UPDATE of the Pre-Guest page at `pa`: encrypted, measured at the GPA
    /// its RMP entry holds (the command carries no GPA), then guest-valid.
    fn snp_launch_update(
        &mut self,
        gctx: u64,
        pa: u64,
        size: RmpSize,
        page_type: SnpPageType,
    ) -> Result<(), FirmwareError>;
    /// SNP_LAUNCH_FINISH without an ID block: LAUNCH -> RUNNING.
    fn snp_launch_finish(&mut self, gctx: u64, host_data: [u8; 32]) -> Result<(), FirmwareError>;
    /// SNP_PAGE_RECLAIM: an immutable Firmware, Pre-Guest or metadata page becomes
    /// mutable, so RMPUPDATE may take it back. A mutable page is already reclaimed.
    fn snp_page_reclaim(&mut self, pa: u64, size: RmpSize) -> Result<(), FirmwareError>;
    /// SNP_DECOMMISSION: deactivate and delete the guest; its context page becomes a
    /// Firmware page again (reclaim it before reuse).
    fn snp_decommission(&mut self, gctx: u64) -> Result<(), FirmwareError>;

    /// GCTX_CREATE, LAUNCH_START and ACTIVATE, stopping at the first refusal.
    fn snp_launch_begin(&mut self, gctx: u64, policy: u64, asid: u32) -> Result<(), FirmwareError> {
        self.snp_gctx_create(gctx)?;
        self.snp_launch_start(gctx, policy)?;
        self.snp_activate(gctx, asid)
    }
}
