//! vCPUs: TDH.VP.ENTER and TD exits, which drive the TLB epoch refcounts. Not part of
//! [`crate::TdxModule`]: the test harness plays the vCPU threads.

use super::locks::{Locks, Mode};
use super::{OpState, Td, TdxModel};
use crate::abi::seamcall;
use crate::status::Status;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Vcpu {
    pub in_guest: bool,
    /// Entered since its last VP.FLUSH (associated with a logical processor).
    pub associated: bool,
    /// The epoch it entered in, while in guest mode.
    pub epoch: u64,
}

impl TdxModel {
    /// TDH.VP.ENTER. Refused with `TDX_OP_STATE_INCORRECT` before MR.FINALIZE and with
    /// [`super::codes::TD_KEYS_NOT_CONFIGURED`] from VPFLUSHDONE on. Not logged; faults
    /// injected for `TDH_VP_ENTER` apply. Panics if the vCPU does not exist or is
    /// already in guest mode (a harness bug).
    pub fn vp_enter(&mut self, vcpu: usize) -> Result<(), Status> {
        assert!(vcpu < self.td.vcpus.len(), "no vCPU {vcpu}");
        assert!(!self.in_guest(vcpu), "vCPU {vcpu} is already in guest mode");
        if let Some(status) = self.faults.take(seamcall::TDH_VP_ENTER) {
            return Err(status);
        }
        self.td.vp_enter(vcpu, &self.locks)
    }

    /// TD exit of a vCPU in guest mode (panics otherwise: a harness bug).
    pub fn vp_exit(&mut self, vcpu: usize) {
        assert!(self.in_guest(vcpu), "vCPU {vcpu} is not in guest mode");
        self.td.vp_exit(vcpu);
    }

    pub fn in_guest(&self, vcpu: usize) -> bool {
        self.td.vcpus.get(vcpu).is_some_and(|v| v.in_guest)
    }
}

impl Td {
    fn vp_enter(&mut self, vcpu: usize, locks: &Locks) -> Result<(), Status> {
        self.alive()?;
        self.keys_configured()?;
        if self.op_state != OpState::Runnable {
            return Err(Status::OP_STATE_INCORRECT);
        }
        locks.epoch(Mode::Shared)?;

        let epoch = self.epoch.enter();
        self.vcpus[vcpu] = Vcpu {
            in_guest: true,
            associated: true,
            epoch,
        };
        Ok(())
    }

    fn vp_exit(&mut self, vcpu: usize) {
        let state = &mut self.vcpus[vcpu];
        state.in_guest = false;
        self.epoch.exit(state.epoch);
    }

    /// What a kick does: every vCPU in guest mode exits.
    pub(super) fn exit_all_vcpus(&mut self) {
        for vcpu in 0..self.vcpus.len() {
            if self.vcpus[vcpu].in_guest {
                self.vp_exit(vcpu);
            }
        }
    }
}
