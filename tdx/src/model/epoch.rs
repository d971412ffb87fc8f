//! TLB epoch tracking (spec digest C.4.5): the TD epoch and how many vCPUs run in it
//! and in the one before.

use crate::status::Status;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Epoch {
    td_epoch: u64,
    /// vCPUs in guest mode that entered in an epoch of each parity.
    refcount: [u32; 2],
}

impl Epoch {
    /// TDH.MNG.INIT starts the epoch at 1 (tdx-module `tdh_mng_init.c`).
    pub fn new() -> Self {
        Self {
            td_epoch: 1,
            refcount: [0; 2],
        }
    }

    pub fn current(&self) -> u64 {
        self.td_epoch
    }

    /// TDH.VP.ENTER: the vCPU joins the current epoch, which is returned.
    pub fn enter(&mut self) -> u64 {
        self.refcount[parity(self.td_epoch)] += 1;
        self.td_epoch
    }

    /// TD exit of a vCPU that entered in `entered`.
    pub fn exit(&mut self, entered: u64) {
        self.refcount[parity(entered)] -= 1;
    }

    /// TDH.MEM.TRACK: refused while a vCPU still runs in the previous epoch, since its
    /// refcount becomes the new epoch's.
    pub fn advance(&mut self) -> Result<(), Status> {
        if self.refcount[1 - parity(self.td_epoch)] != 0 {
            return Err(Status::PREVIOUS_TLB_EPOCH_BUSY);
        }
        self.td_epoch += 1;
        Ok(())
    }

    /// `is_tlb_tracked`: every vCPU that could hold a translation from before a block in
    /// `bepoch` has left since: TRACK ran twice after it, or once and the vCPUs of
    /// `bepoch` have all exited.
    pub fn is_tracked(&self, bepoch: u64) -> bool {
        bepoch + 1 < self.td_epoch
            || (bepoch + 1 == self.td_epoch && self.refcount[parity(bepoch)] == 0)
    }

    /// vCPUs in guest mode.
    pub fn running(&self) -> u32 {
        self.refcount[0] + self.refcount[1]
    }
}

fn parity(epoch: u64) -> usize {
    (epoch & 1) as usize
}
