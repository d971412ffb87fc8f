//! The guest side: TDG.MEM.PAGE.ACCEPT and plain accesses to private GPAs, translated
//! through the S-EPT as the CPU and the module do.

use super::mem::is_private;
use super::sept::{Entry, EntryState};
use super::{Accept, Access, TdxModel};
use crate::abi::Level;

impl TdxModel {
    /// TDG.MEM.PAGE.ACCEPT by `vcpu` of the page of `level` at `gpa`
    /// (`tdg_mem_page_accept.c`). Panics unless the vCPU is in guest mode and the
    /// operands are valid (4 KiB or 2 MiB, aligned, private), where the module would
    /// return `TDX_OPERAND_INVALID` to a buggy guest.
    pub fn accept(&mut self, vcpu: usize, gpa: u64, level: Level) -> Accept {
        assert!(self.in_guest(vcpu), "vCPU {vcpu} is not in guest mode");
        assert!(
            level <= Level::L2M && level.align(gpa) == gpa && is_private(gpa),
            "ACCEPT of {gpa:#x} at {level:?}: TDX_OPERAND_INVALID"
        );
        let td = &mut self.td;
        let (reached, entry) = td.sept.walk(gpa, level);
        if reached != level {
            // Stopped above: at a leaf larger than asked for, or a missing or blocked table.
            return match entry.state {
                EntryState::Mapped => Accept::AlreadyAccepted,
                _ => Accept::EptViolation,
            };
        }
        match entry.state {
            EntryState::NlMapped | EntryState::NlBlocked => Accept::SizeMismatch,
            EntryState::Mapped => Accept::AlreadyAccepted,
            EntryState::Pending => {
                let state = EntryState::Mapped;
                td.sept.set(gpa, level, Entry { state, ..entry });
                // Zeroed with the TD's key.
                td.dirty.touch(entry.hpa, level);
                Accept::Accepted
            }
            EntryState::Free | EntryState::Blocked | EntryState::PendingBlocked => {
                Accept::EptViolation
            }
        }
    }

    /// A read or write by `vcpu` of the private `gpa`. Panics unless the vCPU is in
    /// guest mode and `gpa` is private (shared memory is not the S-EPT's).
    pub fn guest_access(&mut self, vcpu: usize, gpa: u64) -> Access {
        assert!(self.in_guest(vcpu), "vCPU {vcpu} is not in guest mode");
        assert!(is_private(gpa), "{gpa:#x} is not a private GPA");
        let td = &mut self.td;
        let (level, entry) = td.sept.walk(gpa, Level::L4K);
        match entry.state {
            EntryState::Mapped => {
                let hpa = entry.hpa + (Level::L4K.align(gpa) - level.align(gpa));
                td.dirty.touch(hpa, Level::L4K);
                Access::Mapped { hpa }
            }
            // Only PENDING (not PENDING_BLOCKED) reports the "pending" exit qualification
            // (`any_pending_and_guest_acceptable` in `sept_state_lookup.c`).
            EntryState::Pending => Access::Pending,
            _ => Access::EptViolation,
        }
    }
}
