//! What a run's QEMU exit status means.
//!
//! The hypervisor ends every run by writing V to isa-debug-exit, so QEMU exits with
//! (V<<1)|1: V=0 the workload exited 0, V=1 it exited non-zero, V=2 it was stopped,
//! V=3 the hypervisor failed, V=4 the image's backend cannot run on this CPU. Any
//! other status is a failure too (QEMU died, or the host triple-faulted and
//! `-no-reboot` turned the reset into exit 0).

use crate::summary::{Summary, WorkloadEnd};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The workload exited with this status.
    WorkloadExited(u32),
    /// The hypervisor stopped the workload; the summary gives the reason.
    WorkloadStopped,
    /// The hypervisor failed (panic, CPU exception, refused to start) or QEMU ended
    /// without the hypervisor's say-so.
    HypervisorFailed,
    /// The run did not end within its timeout and QEMU was killed.
    TimedOut,
    /// The image's backend cannot run on this CPU (a TDX image under QEMU's
    /// emulation): the hypervisor said why on the console and started nothing.
    BackendUnavailable,
}

/// The outcome of a QEMU that exited with `status` (`None`: killed by a signal).
///
/// An exit needs the summary's agreement: status 1 is also how QEMU itself reports a
/// bad command line, and status 3 does not say which non-zero status the workload gave.
pub fn classify(status: Option<i32>, summary: Option<&Summary>) -> Outcome {
    let end = summary.map(|s| &s.end);
    match (status, end) {
        (Some(1), Some(WorkloadEnd::Exited(0))) => Outcome::WorkloadExited(0),
        (Some(3), Some(&WorkloadEnd::Exited(code))) if code != 0 => Outcome::WorkloadExited(code),
        (Some(5), _) => Outcome::WorkloadStopped,
        (Some(9), _) => Outcome::BackendUnavailable,
        _ => Outcome::HypervisorFailed,
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::WorkloadExited(status) => write!(f, "workload exited with status {status}"),
            Outcome::WorkloadStopped => f.write_str("workload stopped abnormally"),
            Outcome::HypervisorFailed => f.write_str("hypervisor failure"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::BackendUnavailable => f.write_str("backend unavailable on this CPU"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(end: WorkloadEnd) -> Summary {
        Summary {
            name: "w".into(),
            end,
            exits: 1,
            npf: 1,
            hypercalls: 1,
        }
    }

    #[test]
    fn debug_exit_values_map_to_outcomes() {
        let exited = |code| summary(WorkloadEnd::Exited(code));
        assert_eq!(
            classify(Some(1), Some(&exited(0))),
            Outcome::WorkloadExited(0)
        );
        assert_eq!(
            classify(Some(3), Some(&exited(42))),
            Outcome::WorkloadExited(42)
        );
        let stopped = summary(WorkloadEnd::Stopped("triple fault".into()));
        assert_eq!(classify(Some(5), Some(&stopped)), Outcome::WorkloadStopped);
        assert_eq!(classify(Some(7), None), Outcome::HypervisorFailed);
    }

    #[test]
    fn debug_exit_value_4_is_an_unavailable_backend_with_or_without_a_summary() {
        // The image stops before any workload exists, so there is no summary line.
        assert_eq!(classify(Some(9), None), Outcome::BackendUnavailable);
        let exited = summary(WorkloadEnd::Exited(0));
        assert_eq!(
            classify(Some(9), Some(&exited)),
            Outcome::BackendUnavailable
        );
        assert_eq!(
            Outcome::BackendUnavailable.to_string(),
            "backend unavailable on this CPU"
        );
    }

    #[test]
    fn exits_without_an_agreeing_summary_are_failures() {
        assert_eq!(
            classify(Some(1), None),
            Outcome::HypervisorFailed,
            "QEMU's own usage error"
        );
        assert_eq!(classify(Some(3), None), Outcome::HypervisorFailed);
        assert_eq!(
            classify(Some(3), Some(&summary(WorkloadEnd::Exited(0)))),
            Outcome::HypervisorFailed
        );
        let stopped = summary(WorkloadEnd::Stopped("x".into()));
        assert_eq!(classify(Some(1), Some(&stopped)), Outcome::HypervisorFailed);
    }

    #[test]
    fn other_statuses_and_signals_are_failures() {
        let exited = summary(WorkloadEnd::Exited(0));
        for status in [Some(0), Some(2), Some(11), Some(255), None] {
            assert_eq!(
                classify(status, Some(&exited)),
                Outcome::HypervisorFailed,
                "{status:?}"
            );
        }
    }
}
