//! Deterministic fault injection: the nth next call of a leaf returns a chosen status
//! and changes nothing (spec digest G.2).

use alloc::vec::Vec;

use super::TdxModel;
use crate::status::Status;

#[derive(Clone, Debug, Default)]
pub(super) struct Faults {
    pending: Vec<Fault>,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    leaf: u64,
    /// Calls of `leaf` until this one fires (1 = the next).
    remaining: u32,
    status: Status,
}

impl Faults {
    /// Counts one call of `leaf`; returns the status to fail it with, if one is due.
    /// Two faults due on the same call: the earlier injected wins, both are used up.
    pub fn take(&mut self, leaf: u64) -> Option<Status> {
        let mut due = None;
        self.pending.retain_mut(|fault| {
            if fault.leaf != leaf {
                return true;
            }
            fault.remaining -= 1;
            if fault.remaining > 0 {
                return true;
            }
            due.get_or_insert(fault.status);
            false
        });
        due
    }
}

impl TdxModel {
    /// The `nth` next call of `leaf` (1 = the very next; counted from now, whatever
    /// their outcome) returns `status` without running. Works for every leaf the model
    /// serves, TDH.VP.ENTER included.
    pub fn inject(&mut self, leaf: u64, nth: u32, status: Status) {
        assert!(nth >= 1, "the 1st next call is the earliest");
        assert!(
            status != Status::SUCCESS,
            "inject a failure, not TDX_SUCCESS"
        );
        self.faults.pending.push(Fault {
            leaf,
            remaining: nth,
            status,
        });
    }
}
