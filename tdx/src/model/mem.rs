//! The S-EPT SEAMCALLs (spec digest C.4.4): build (PAGE.ADD, MR.EXTEND, MR.FINALIZE),
//! mapping (SEPT.ADD, PAGE.AUG) and removal (BLOCK, UNBLOCK, TRACK, REMOVE,
//! SEPT.REMOVE). Each checks in the module's order and commits only when all pass.

use super::codes;
use super::locks::{Locks, Mode};
use super::pamt::{PageType, pages_in};
use super::sept::{Entry, EntryState};
use super::{Lifecycle, OpState, Td};
use crate::abi::{EXTEND_CHUNK, Level, SHARED_BIT_4_LEVEL};
use crate::status::Status;

impl Td {
    /// The TDR is still the module's: once reclaimed, any call naming it finds an NDA
    /// page (`check_lock_and_map_explicit_tdr`).
    pub(super) fn alive(&self) -> Result<(), Status> {
        match self.pamt.page_type(self.tdr) {
            PageType::Tdr => Ok(()),
            _ => Err(Status::PAGE_METADATA_INCORRECT),
        }
    }

    /// `check_td_in_correct_build_state`: refused from VPFLUSHDONE on.
    pub(super) fn keys_configured(&self) -> Result<(), Status> {
        match self.lifecycle {
            Lifecycle::KeysConfigured => Ok(()),
            _ => Err(codes::TD_KEYS_NOT_CONFIGURED),
        }
    }

    /// The op-state gate of PAGE.ADD, MR.EXTEND and MR.FINALIZE (the other memory
    /// leaves are allowed in both INITIALIZED and RUNNABLE).
    fn building(&self) -> Result<(), Status> {
        match self.op_state {
            OpState::Initialized => Ok(()),
            OpState::Runnable => Err(Status::OP_STATE_INCORRECT),
        }
    }

    /// Prologue of the leaves that lock the TDR shared.
    fn gate(&self) -> Result<(), Status> {
        self.alive()?;
        self.keys_configured()
    }

    /// Prologue of the leaves that lock the TDR exclusively and build the TD.
    fn gate_build(&self, locks: &Locks) -> Result<(), Status> {
        self.alive()?;
        locks.tdr_exclusive()?;
        self.keys_configured()?;
        self.building()
    }

    /// The removal rule when the TD may be running (C.4.5): the entry must be blocked,
    /// and every vCPU that could still translate through it must have left.
    fn check_tracked(&self, entry: Entry) -> Result<(), Status> {
        if self.op_state != OpState::Runnable {
            return Ok(());
        }
        if !entry.state.is_blocked() {
            return Err(Status::GPA_RANGE_NOT_BLOCKED);
        }
        if !self.epoch.is_tracked(entry.bepoch) {
            return Err(Status::TLB_TRACKING_NOT_DONE);
        }
        Ok(())
    }

    pub(super) fn sept_add(
        &mut self,
        gpa: u64,
        level: Level,
        page: u64,
        locks: &Locks,
    ) -> Result<(), Status> {
        self.gate()?;
        check_gpa(gpa, level, Level::L2M, Level::TOP)?;
        locks.tree(Mode::Shared)?;
        // NL_MAPPED is allowed only for adding L2 (TD partitioning) tables; without
        // them the module refuses it like any other state (`tdh_mem_sept_add.c`).
        expect_state(self.sept.reach(gpa, level)?, &[EntryState::Free])?;
        self.pamt.check_free(page, Level::L4K)?;

        self.sept
            .set(gpa, level, new_entry(EntryState::NlMapped, page));
        self.pamt.assign(page, Level::L4K, PageType::Sept, self.tdr);
        self.child_count += 1;
        // The module initializes the table with the TD's key.
        self.dirty.touch(page, Level::L4K);
        Ok(())
    }

    pub(super) fn page_add(
        &mut self,
        gpa: u64,
        page: u64,
        source: u64,
        locks: &Locks,
    ) -> Result<(), Status> {
        self.gate_build(locks)?;
        check_gpa(gpa, Level::L4K, Level::L4K, Level::L4K)?;
        expect_state(self.sept.reach(gpa, Level::L4K)?, &[EntryState::Free])?;
        // The source is a shared page: only its alignment is checked (`tdh_mem_page_add.c`).
        if !source.is_multiple_of(Level::L4K.span()) {
            return Err(Status::OPERAND_INVALID);
        }
        self.pamt.check_free(page, Level::L4K)?;

        self.sept
            .set(gpa, Level::L4K, new_entry(EntryState::Mapped, page));
        self.pamt.assign(page, Level::L4K, PageType::Reg, self.tdr);
        self.child_count += 1;
        // Copied in with the TD's key.
        self.dirty.touch(page, Level::L4K);
        Ok(())
    }

    pub(super) fn page_aug(
        &mut self,
        gpa: u64,
        level: Level,
        page: u64,
        locks: &Locks,
    ) -> Result<(), Status> {
        self.gate()?;
        check_gpa(gpa, level, Level::L4K, Level::L2M)?;
        locks.tree(Mode::Shared)?;
        expect_state(self.sept.reach(gpa, level)?, &[EntryState::Free])?;
        self.pamt.check_free(page, level)?;

        // The page is not touched until the guest accepts (and so zeroes) it.
        self.sept
            .set(gpa, level, new_entry(EntryState::Pending, page));
        self.pamt.assign(page, level, PageType::Reg, self.tdr);
        self.child_count += pages_in(level);
        Ok(())
    }

    pub(super) fn range_block(
        &mut self,
        gpa: u64,
        level: Level,
        locks: &Locks,
    ) -> Result<(), Status> {
        self.gate()?;
        check_gpa(gpa, level, Level::L4K, Level::TOP)?;
        locks.tree(Mode::Exclusive)?;
        let entry = self.sept.reach(gpa, level)?;
        let Some(state) = entry.state.blocked() else {
            return Err(if entry.state.is_blocked() {
                Status::GPA_RANGE_ALREADY_BLOCKED
            } else {
                Status::EPT_ENTRY_STATE_INCORRECT
            });
        };

        let bepoch = self.epoch.current();
        self.sept.set(
            gpa,
            level,
            Entry {
                state,
                bepoch,
                ..entry
            },
        );
        Ok(())
    }

    pub(super) fn range_unblock(
        &mut self,
        gpa: u64,
        level: Level,
        locks: &Locks,
    ) -> Result<(), Status> {
        self.gate()?;
        check_gpa(gpa, level, Level::L4K, Level::TOP)?;
        locks.tree(Mode::Exclusive)?;
        let entry = self.sept.reach(gpa, level)?;
        let state = entry
            .state
            .unblocked()
            .ok_or(Status::EPT_ENTRY_STATE_INCORRECT)?;
        self.check_tracked(entry)?;

        self.sept.set(gpa, level, Entry { state, ..entry });
        Ok(())
    }

    pub(super) fn track(&mut self, locks: &Locks) -> Result<(), Status> {
        self.gate()?;
        locks.epoch(Mode::Exclusive)?;
        self.epoch.advance()
    }

    pub(super) fn page_remove(
        &mut self,
        gpa: u64,
        level: Level,
        locks: &Locks,
    ) -> Result<u64, Status> {
        self.gate()?;
        check_gpa(gpa, level, Level::L4K, Level::L1G)?;
        locks.tree(Mode::Shared)?;
        let entry = self.sept.reach(gpa, level)?;
        if !entry.state.is_leaf() {
            return Err(Status::EPT_ENTRY_STATE_INCORRECT);
        }
        self.check_tracked(entry)?;

        self.sept.remove(gpa, level);
        self.pamt.release(entry.hpa);
        self.child_count -= pages_in(level);
        Ok(entry.hpa)
    }

    pub(super) fn sept_remove(
        &mut self,
        gpa: u64,
        level: Level,
        locks: &Locks,
    ) -> Result<u64, Status> {
        self.gate()?;
        check_gpa(gpa, level, Level::L2M, Level::TOP)?;
        locks.tree(Mode::Exclusive)?;
        let entry = self.sept.reach(gpa, level)?;
        expect_state(entry, &[EntryState::NlMapped, EntryState::NlBlocked])?;
        self.check_tracked(entry)?;
        if !self.sept.table_is_empty(gpa, level) {
            return Err(Status::EPT_PAGE_NOT_FREE);
        }

        self.sept.remove(gpa, level);
        self.pamt.release(entry.hpa);
        self.child_count -= 1;
        Ok(entry.hpa)
    }

    pub(super) fn mr_extend(&mut self, gpa: u64, locks: &Locks) -> Result<(), Status> {
        self.gate_build(locks)?;
        if !gpa.is_multiple_of(EXTEND_CHUNK) || !is_private(gpa) {
            return Err(Status::OPERAND_INVALID);
        }
        // Walks to whatever leaf maps the GPA; anything but MAPPED is "not present"
        // (`tdh_mr_extend.c`).
        match self.sept.walk(gpa, Level::L4K) {
            (_, entry) if entry.state == EntryState::Mapped => {}
            _ => return Err(Status::EPT_ENTRY_NOT_PRESENT),
        }

        self.mrtd_extends += 1;
        Ok(())
    }

    pub(super) fn mr_finalize(&mut self, locks: &Locks) -> Result<(), Status> {
        self.gate_build(locks)?;
        if self.vcpus.is_empty() {
            return Err(Status::NO_VCPUS);
        }

        self.op_state = OpState::Runnable;
        Ok(())
    }
}

/// A private GPA with 4-level EPT: the shared bit 47 and the bits above it clear.
pub(super) const fn is_private(gpa: u64) -> bool {
    gpa & !(SHARED_BIT_4_LEVEL - 1) == 0
}

/// `verify_page_info_input` and `check_gpa_validity`: the level within the leaf's
/// range, the GPA aligned to it and private; else `TDX_OPERAND_INVALID`.
fn check_gpa(gpa: u64, level: Level, min: Level, max: Level) -> Result<(), Status> {
    if level < min || level > max || level.align(gpa) != gpa || !is_private(gpa) {
        return Err(Status::OPERAND_INVALID);
    }
    Ok(())
}

/// The allowed-state check (`sept_state_is_seamcall_leaf_allowed`).
fn expect_state(entry: Entry, allowed: &[EntryState]) -> Result<(), Status> {
    if allowed.contains(&entry.state) {
        Ok(())
    } else {
        Err(Status::EPT_ENTRY_STATE_INCORRECT)
    }
}

fn new_entry(state: EntryState, hpa: u64) -> Entry {
    Entry {
        state,
        hpa,
        bepoch: 0,
    }
}
