//! The exit statuses of `cargo xtask`, chosen so scripts can tell the cases apart:
//! a workload's own status passes through, the fixed codes above 123 follow the
//! conventions of `timeout` (124) and shells (125/126 for "could not run properly").

use cloister_runner::{Error, Outcome};

/// The workload was stopped by the hypervisor (triple fault, access outside memory...).
pub const WORKLOAD_STOPPED: u8 = 125;
pub const HYPERVISOR_FAILED: u8 = 126;
pub const TIMED_OUT: u8 = 124;
/// What the run needs is not available here: QEMU is missing and could not be
/// installed, or the image's backend cannot run on this CPU (TDX under QEMU).
pub const UNAVAILABLE: u8 = 2;
/// Usage, configuration and build errors, and failed test steps.
pub const FAILURE: u8 = 1;

pub fn for_outcome(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::WorkloadExited(status) => u8::try_from(*status).unwrap_or(u8::MAX),
        Outcome::WorkloadStopped => WORKLOAD_STOPPED,
        Outcome::HypervisorFailed => HYPERVISOR_FAILED,
        Outcome::TimedOut => TIMED_OUT,
        Outcome::BackendUnavailable => UNAVAILABLE,
    }
}

pub fn for_error(error: &Error) -> u8 {
    match error {
        Error::QemuMissing { .. } => UNAVAILABLE,
        _ => FAILURE,
    }
}

/// The status of a command that returned its own status (`Ok`) or failed (`Err`).
pub fn for_result(result: &Result<u8, Error>) -> u8 {
    match result {
        Ok(status) => *status,
        Err(error) => for_error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_statuses_pass_through_and_saturate() {
        assert_eq!(for_outcome(&Outcome::WorkloadExited(0)), 0);
        assert_eq!(for_outcome(&Outcome::WorkloadExited(7)), 7);
        assert_eq!(for_outcome(&Outcome::WorkloadExited(255)), 255);
        assert_eq!(for_outcome(&Outcome::WorkloadExited(256)), 255);
        assert_eq!(for_outcome(&Outcome::WorkloadExited(u32::MAX)), 255);
    }

    #[test]
    fn other_outcomes_and_errors_have_fixed_codes() {
        assert_eq!(for_outcome(&Outcome::WorkloadStopped), 125);
        assert_eq!(for_outcome(&Outcome::HypervisorFailed), 126);
        assert_eq!(for_outcome(&Outcome::TimedOut), 124);
        assert_eq!(for_error(&Error::QemuMissing { detail: None }), 2);
        assert_eq!(for_error(&Error::MissingImage { path: "x".into() }), 1);
    }

    #[test]
    fn an_unavailable_backend_and_a_missing_qemu_share_status_2() {
        assert_eq!(for_outcome(&Outcome::BackendUnavailable), UNAVAILABLE);
        assert_eq!(
            for_outcome(&Outcome::BackendUnavailable),
            for_error(&Error::QemuMissing { detail: None })
        );
        assert_eq!(UNAVAILABLE, 2);
    }

    #[test]
    fn a_command_status_passes_through_and_errors_are_mapped() {
        assert_eq!(for_result(&Ok(0)), 0);
        assert_eq!(for_result(&Ok(HYPERVISOR_FAILED)), 126);
        assert_eq!(for_result(&Err(Error::QemuMissing { detail: None })), 2);
        let no_header = Error::NoMultibootHeader { elf: "x".into() };
        assert_eq!(for_result(&Err(no_header)), 1);
    }
}
