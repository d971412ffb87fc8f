//! The SEV firmware as a software model: the platform, legacy guest and SNP guest state
//! machines with the firmware's status codes, checked in the firmware's order
//! (AMD-ASPFW `sev_mcmd.c`; the order matters when several checks fail, since only the
//! first is reported). It owns the platform's [`RmpModel`] and implements [`Rmp`] by
//! delegating to it, so SNP commands see the RMPUPDATEs the hypervisor made and the
//! hypervisor sees the page transitions the firmware made.
//!
//! Not modelled: SEV-ES (INIT enables no ES, so an ES policy is UNSUPPORTED), guest
//! owner sessions, key sharing, migration, ID blocks, SHUTDOWN, more than one CPU
//! complex, the split between SEV-ES/SNP and legacy ASID ranges (CPUID 0x8000_001F
//! EDX), and cache effects of the firmware's own writes. Measurements use a stand-in
//! digest ([`digest`]), not the firmware's SHA-256/SHA-384 and HMAC.

mod asid;
mod digest;
mod legacy;
mod memory;
mod snp;

pub use asid::AsidState;

use super::{FirmwareError, GuestHandle, LaunchMeasurement, SevCommand, SevFirmware, SnpPageType};
use crate::sev::rmp::{Rmp, RmpEntry, RmpError, RmpModel, RmpReadError, RmpSize, RmpState};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use asid::Asids;
use memory::HostMemory;

/// The legacy SEV platform's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformState {
    Uninit,
    /// Initialized, no guest.
    Init,
    /// At least one guest exists.
    Working,
}

/// The SNP platform's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnpPlatformState {
    Uninit,
    Init,
}

/// A legacy guest's state (the firmware's LUPDATE, LSECRET, RUNNING; the others
/// belong to migration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SevGuestState {
    /// Launching: plaintext is imported and measured.
    Lupdate,
    /// Measured: secrets may be injected.
    Lsecret,
    Running,
}

/// An SNP guest's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnpGuestState {
    /// Context page created, not launched.
    Init,
    Launch,
    Running,
}

/// One command the model ran: the handle, context page or page address it named (0
/// for platform commands), and its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwCall {
    pub command: SevCommand,
    pub arg: u64,
    pub result: Result<(), FirmwareError>,
}

/// The API version the model reports (policies may not ask for more).
const API_MAJOR: u8 = 1;
const API_MINOR: u8 = 55;
const BUILD: u8 = 0;

/// Guests the firmware keeps at once (its `SEV_GUEST_COUNT_MAX` is a build constant).
const DEFAULT_MAX_GUESTS: u32 = 64;

/// The SEV platform as software (module documentation).
#[derive(Clone, Debug)]
pub struct SevFirmwareModel {
    /// The platform's RMP: the hypervisor's RMPUPDATEs and the firmware's page
    /// transitions land here.
    pub rmp: RmpModel,
    platform: PlatformState,
    snp_platform: SnpPlatformState,
    asids: Asids,
    max_guests: u32,
    guests: BTreeMap<u32, legacy::Guest>,
    snp_guests: BTreeMap<u64, snp::Guest>,
    memory: HostMemory,
    nonces: u64,
    /// Injected failures: the command, its calls until it fires, the error.
    inject: Vec<(SevCommand, u32, FirmwareError)>,
    log: Vec<FwCall>,
    /// Record commands in `log` (tests); off for a model that runs a whole workload.
    logging: bool,
}

impl SevFirmwareModel {
    /// A platform before INIT with ASIDs 1 to `max_asid` and an RMP covering every
    /// address.
    pub fn new(max_asid: u32) -> Self {
        Self::with_rmp(max_asid, RmpModel::new())
    }

    /// As [`SevFirmwareModel::new`], over `rmp`.
    pub fn with_rmp(max_asid: u32, rmp: RmpModel) -> Self {
        Self {
            rmp,
            platform: PlatformState::Uninit,
            snp_platform: SnpPlatformState::Uninit,
            asids: Asids::new(max_asid),
            max_guests: DEFAULT_MAX_GUESTS,
            guests: BTreeMap::new(),
            snp_guests: BTreeMap::new(),
            memory: HostMemory::default(),
            nonces: 0,
            inject: Vec::new(),
            log: Vec::new(),
            logging: true,
        }
    }

    /// At most `max` legacy guests at once (LAUNCH_START is RESOURCE_LIMIT beyond).
    pub fn with_max_guests(mut self, max: u32) -> Self {
        self.max_guests = max;
        self
    }

    /// WBINVD on every CPU: written back under every key, and the WBINVD_DONE flags
    /// DF_FLUSH checks are set. A WBINVD issued on [`Self::rmp`] counts the same.
    pub fn wbinvd(&mut self) {
        self.rmp.wbinvd();
    }

    /// The hypervisor writes plaintext at `pa` (what the launch commands measure).
    pub fn host_write(&mut self, pa: u64, bytes: &[u8]) {
        self.memory.write(pa, bytes);
    }

    pub fn platform_state(&self) -> PlatformState {
        self.platform
    }

    pub fn snp_platform_state(&self) -> SnpPlatformState {
        self.snp_platform
    }

    /// `None` beyond the ASIDs the platform has.
    pub fn asid_state(&self, asid: u32) -> Option<AsidState> {
        self.asids.state(asid)
    }

    /// `None` for no such guest.
    pub fn guest_state(&self, guest: GuestHandle) -> Option<SevGuestState> {
        self.guests.get(&guest.0).map(|g| g.state)
    }

    /// The ASID the guest is activated on.
    pub fn guest_asid(&self, guest: GuestHandle) -> Option<u32> {
        self.guests.get(&guest.0).and_then(|g| g.asid)
    }

    /// The digest of every LAUNCH_UPDATE_DATA so far (what LAUNCH_MEASURE covers).
    pub fn launch_digest(&self, guest: GuestHandle) -> Option<[u8; 32]> {
        self.guests.get(&guest.0).map(|g| g.digest.finish32())
    }

    pub fn snp_guest_state(&self, gctx: u64) -> Option<SnpGuestState> {
        self.snp_guests.get(&gctx).map(|g| g.state)
    }

    pub fn snp_guest_asid(&self, gctx: u64) -> Option<u32> {
        self.snp_guests.get(&gctx).and_then(|g| g.asid)
    }

    /// The SNP launch digest (GCTX.LD, what the attestation report carries).
    pub fn snp_measurement(&self, gctx: u64) -> Option<[u8; 48]> {
        self.snp_guests.get(&gctx).map(|g| g.measurement)
    }

    /// The `nth` next call of `command` (1 = the very next, counted whatever its
    /// outcome) fails with `error` and changes nothing.
    pub fn inject(&mut self, command: SevCommand, nth: u32, error: FirmwareError) {
        assert!(nth >= 1, "the 1st next call is the earliest");
        self.inject.push((command, nth, error));
    }

    /// Commands since the last `take_log`.
    pub fn take_log(&mut self) -> Vec<FwCall> {
        core::mem::take(&mut self.log)
    }

    /// Stop recording commands and RMP calls (a model running a whole workload).
    pub fn stop_logging(&mut self) {
        self.logging = false;
        self.log = Vec::new();
        self.rmp.stop_logging();
    }

    pub fn log(&self) -> &[FwCall] {
        &self.log
    }

    fn wbinvds(&self) -> u64 {
        self.rmp.counts().wbinvds
    }

    /// Run one command: an injected failure if one is due, else `body`; logged.
    fn run<T>(
        &mut self,
        command: SevCommand,
        arg: u64,
        body: impl FnOnce(&mut Self) -> Result<T, FirmwareError>,
    ) -> Result<T, FirmwareError> {
        let result = match self.take_injected(command) {
            Some(error) => Err(error),
            None => body(self),
        };
        if self.logging {
            self.log.push(FwCall {
                command,
                arg,
                result: result.as_ref().map(drop).map_err(|e| *e),
            });
        }
        result
    }

    fn take_injected(&mut self, command: SevCommand) -> Option<FirmwareError> {
        let mut due = None;
        self.inject.retain_mut(|(target, remaining, error)| {
            if *target != command {
                return true;
            }
            *remaining -= 1;
            if *remaining == 0 {
                due = due.or(Some(*error));
            }
            *remaining > 0
        });
        due
    }

    fn next_nonce(&mut self) -> [u8; 16] {
        self.nonces += 1;
        let mut nonce = [0; 16];
        nonce[..8].copy_from_slice(&self.nonces.to_le_bytes());
        nonce
    }
}

impl SevFirmware for SevFirmwareModel {
    fn init(&mut self) -> Result<(), FirmwareError> {
        self.run(SevCommand::Init, 0, Self::do_init)
    }

    fn snp_init(&mut self) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpInit, 0, Self::do_snp_init)
    }

    fn df_flush(&mut self) -> Result<(), FirmwareError> {
        self.run(SevCommand::DfFlush, 0, Self::do_df_flush)
    }

    fn snp_df_flush(&mut self) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpDfFlush, 0, Self::do_df_flush)
    }

    fn launch_start(&mut self, policy: u32) -> Result<GuestHandle, FirmwareError> {
        self.run(SevCommand::LaunchStart, 0, |m| m.do_launch_start(policy))
    }

    fn launch_update_data(
        &mut self,
        guest: GuestHandle,
        pa: u64,
        len: u32,
    ) -> Result<(), FirmwareError> {
        self.run(SevCommand::LaunchUpdateData, guest.0.into(), |m| {
            m.do_launch_update_data(guest, pa, len)
        })
    }

    fn launch_measure(&mut self, guest: GuestHandle) -> Result<LaunchMeasurement, FirmwareError> {
        self.run(SevCommand::LaunchMeasure, guest.0.into(), |m| {
            m.do_launch_measure(guest)
        })
    }

    fn launch_finish(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.run(SevCommand::LaunchFinish, guest.0.into(), |m| {
            m.do_launch_finish(guest)
        })
    }

    fn activate(&mut self, guest: GuestHandle, asid: u32) -> Result<(), FirmwareError> {
        self.run(SevCommand::Activate, guest.0.into(), |m| {
            m.do_activate(guest, asid)
        })
    }

    fn deactivate(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.run(SevCommand::Deactivate, guest.0.into(), |m| {
            m.do_deactivate(guest)
        })
    }

    fn decommission(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.run(SevCommand::Decommission, guest.0.into(), |m| {
            m.do_decommission(guest)
        })
    }

    fn snp_gctx_create(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpGctxCreate, gctx, |m| m.do_gctx_create(gctx))
    }

    fn snp_launch_start(&mut self, gctx: u64, policy: u64) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpLaunchStart, gctx, |m| {
            m.do_snp_launch_start(gctx, policy)
        })
    }

    fn snp_activate(&mut self, gctx: u64, asid: u32) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpActivate, gctx, |m| {
            m.do_snp_activate(gctx, asid)
        })
    }

    fn snp_launch_update(
        &mut self,
        gctx: u64,
        pa: u64,
        size: RmpSize,
        page_type: SnpPageType,
    ) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpLaunchUpdate, pa, |m| {
            m.do_snp_launch_update(gctx, pa, size, page_type)
        })
    }

    fn snp_launch_finish(&mut self, gctx: u64, host_data: [u8; 32]) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpLaunchFinish, gctx, |m| {
            m.do_snp_launch_finish(gctx, host_data)
        })
    }

    fn snp_page_reclaim(&mut self, pa: u64, size: RmpSize) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpPageReclaim, pa, |m| {
            m.do_page_reclaim(pa, size)
        })
    }

    fn snp_decommission(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.run(SevCommand::SnpDecommission, gctx, |m| {
            m.do_snp_decommission(gctx)
        })
    }
}

/// The hypervisor's RMP instructions go to the platform's RMP.
impl Rmp for SevFirmwareModel {
    fn rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError> {
        self.rmp.rmpupdate(pa, state)
    }

    fn psmash(&mut self, pa: u64) -> Result<(), RmpError> {
        self.rmp.psmash(pa)
    }

    fn entry(&self, pa: u64) -> Result<RmpEntry, RmpReadError> {
        self.rmp.entry(pa)
    }
}
