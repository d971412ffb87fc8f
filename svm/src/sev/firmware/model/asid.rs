//! Which ASIDs a guest may be activated on, per the firmware's bookkeeping
//! (AMD-ASPFW `sev_mcmd.c`: `asid_dirty/clean/allocated/in_use`, one bit per CPU
//! complex; the model has one complex). INIT and SNP_INIT leave every ASID dirty;
//! DF_FLUSH after a WBINVD on every CPU makes dirty ones clean; ACTIVATE takes a clean
//! one; DEACTIVATE gives it back clean if the guest never ran, dirty if it did.

use super::FirmwareError;
use alloc::vec;
use alloc::vec::Vec;

/// An ASID's firmware state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsidState {
    /// May hold a guest's cache lines: DF_FLUSH (after WBINVD) before reuse.
    Dirty,
    /// Free to activate.
    Clean,
    /// Activated for a guest not yet running (takes effect at LAUNCH_FINISH).
    Allocated,
    /// A running guest's.
    InUse,
}

#[derive(Clone, Debug)]
pub struct Asids {
    states: Vec<AsidState>,
    /// The WBINVD count when the WBINVD_DONE flags were last cleared; DF_FLUSH needs a
    /// WBINVD after it.
    wbinvd_epoch: u64,
}

impl Asids {
    pub fn new(max_asid: u32) -> Self {
        Self {
            states: vec![AsidState::Dirty; max_asid as usize],
            wbinvd_epoch: 0,
        }
    }

    /// INIT / SNP_INIT: every ASID dirty, every WBINVD_DONE flag clear.
    pub fn reset(&mut self, wbinvds: u64) {
        self.states.fill(AsidState::Dirty);
        self.wbinvd_epoch = wbinvds;
    }

    pub fn state(&self, asid: u32) -> Option<AsidState> {
        let index = usize::try_from(asid).ok()?.checked_sub(1)?;
        self.states.get(index).copied()
    }

    /// The checks of `mcmd_activate_common` and `activate_common`, in their order;
    /// on success the ASID is the guest's: in use if it runs already, else allocated.
    pub fn activate(
        &mut self,
        asid: u32,
        guest_has_asid: bool,
        running: bool,
    ) -> Result<(), FirmwareError> {
        let state = self.state(asid).ok_or(FirmwareError::INVALID_ASID)?;
        if matches!(state, AsidState::Allocated | AsidState::InUse) {
            return Err(FirmwareError::ASID_OWNED);
        }
        if guest_has_asid {
            return Err(FirmwareError::ACTIVE);
        }
        if state == AsidState::Dirty {
            return Err(FirmwareError::DFFLUSH_REQUIRED);
        }
        self.set(
            asid,
            if running {
                AsidState::InUse
            } else {
                AsidState::Allocated
            },
        );
        Ok(())
    }

    /// LAUNCH_FINISH of a guest with a pending activation.
    pub fn finish(&mut self, asid: u32) {
        if self.state(asid) == Some(AsidState::Allocated) {
            self.set(asid, AsidState::InUse);
        }
    }

    /// DEACTIVATE: an ASID that never ran a guest is clean again; one that did is
    /// dirty, and its CPUs' WBINVD_DONE flags are cleared (`sev_guest_deactivate`).
    pub fn deactivate(&mut self, asid: u32, wbinvds: u64) {
        match self.state(asid) {
            Some(AsidState::Allocated) => self.set(asid, AsidState::Clean),
            Some(AsidState::InUse) => {
                self.set(asid, AsidState::Dirty);
                self.wbinvd_epoch = wbinvds;
            }
            _ => {}
        }
    }

    /// DF_FLUSH (`mcmd_df_flush_common`): refused until a WBINVD ran on every CPU
    /// since the flags were cleared; then every dirty ASID is clean.
    pub fn df_flush(&mut self, wbinvds: u64) -> Result<(), FirmwareError> {
        if wbinvds <= self.wbinvd_epoch {
            return Err(FirmwareError::WBINVD_REQUIRED);
        }
        for state in &mut self.states {
            if *state == AsidState::Dirty {
                *state = AsidState::Clean;
            }
        }
        Ok(())
    }

    fn set(&mut self, asid: u32, state: AsidState) {
        self.states[asid as usize - 1] = state;
    }
}
