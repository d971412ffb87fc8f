//! The module's locks that another logical processor may hold (spec digest C.4.6). The
//! model runs on one thread, so "another holder" is injected by the harness; a call
//! that conflicts returns `TDX_OPERAND_BUSY` before changing anything.

use super::TdxModel;
use crate::status::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Shared,
    Exclusive,
}

/// Locks held by someone other than the call being made.
#[derive(Clone, Debug, Default)]
pub(super) struct Locks {
    /// TDCS.SECURE_EPT_LOCK.
    tree: Option<Mode>,
    /// TDCS.EPOCH_LOCK: TRACK takes it exclusive, VP.ENTER shared.
    epoch: Option<Mode>,
}

impl Locks {
    /// Takes the S-EPT tree lock: shared for SEPT.ADD, AUG, REMOVE; exclusive for
    /// BLOCK, UNBLOCK, SEPT.REMOVE.
    pub fn tree(&self, mode: Mode) -> Result<(), Status> {
        busy_if(conflicts(self.tree, mode))
    }

    /// Takes the TDR exclusively (PAGE.ADD, MR.EXTEND, MR.FINALIZE, VPFLUSHDONE,
    /// KEY.FREEID), which locks the tree implicitly: whoever holds the tree lock holds
    /// the TDR shared, so any holder conflicts.
    pub fn tdr_exclusive(&self) -> Result<(), Status> {
        busy_if(self.tree.is_some())
    }

    pub fn epoch(&self, mode: Mode) -> Result<(), Status> {
        busy_if(conflicts(self.epoch, mode))
    }
}

fn conflicts(held: Option<Mode>, wanted: Mode) -> bool {
    matches!(
        (held, wanted),
        (Some(Mode::Exclusive), _) | (Some(Mode::Shared), Mode::Exclusive)
    )
}

fn busy_if(busy: bool) -> Result<(), Status> {
    if busy {
        Err(Status::OPERAND_BUSY)
    } else {
        Ok(())
    }
}

impl TdxModel {
    /// Someone else holds the S-EPT tree lock (another vCPU's zero-step mitigation, a
    /// concurrent SEAMCALL) until [`TdxModel::release_tree_lock`].
    pub fn hold_tree_lock(&mut self, exclusive: bool) {
        self.locks.tree = Some(mode(exclusive));
    }

    pub fn release_tree_lock(&mut self) {
        self.locks.tree = None;
    }

    /// Someone else holds the TD epoch lock (shared: a vCPU entering; exclusive: a
    /// concurrent TRACK) until [`TdxModel::release_epoch_lock`].
    pub fn hold_epoch_lock(&mut self, exclusive: bool) {
        self.locks.epoch = Some(mode(exclusive));
    }

    pub fn release_epoch_lock(&mut self) {
        self.locks.epoch = None;
    }
}

fn mode(exclusive: bool) -> Mode {
    if exclusive {
        Mode::Exclusive
    } else {
        Mode::Shared
    }
}
