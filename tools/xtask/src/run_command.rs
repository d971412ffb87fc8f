//! `cargo xtask run`: build, boot, and report how the run ended.

use crate::cli::RunArgs;
use crate::{exit_status, terminal, workspace};
use cloister_runner::{Error, Outcome, RunOptions, RunResult, build_image, ensure_qemu, run};
use std::time::Duration;

/// Boot the image with the console streaming to stdout; returns the exit status.
pub fn run_image(args: RunArgs) -> Result<u8, Error> {
    // Before the build, which takes far longer than finding out QEMU is missing.
    ensure_qemu()?;
    let config = args
        .config
        .clone()
        .unwrap_or_else(workspace::default_config);
    let image = build_image(workspace::root(), &config)?;
    let options = RunOptions {
        machine: args.machine,
        boot: args.boot,
        icount: args.icount,
        gdb: args.gdb,
        timeout: Duration::from_secs(args.timeout_secs),
        memory_mib: args.memory_mib,
        echo: true,
        extra_qemu_args: Vec::new(),
        // Kept beside the image, for a second look with `defmt-print -e <image>`.
        log_file: Some(image.elf_path.with_extension("defmt")),
    };
    let result = run(&image, &options)?;
    report(&result, args.timeout_secs);
    Ok(exit_status::for_outcome(&result.outcome))
}

/// Explain anything unusual on stderr, then print the summary: the last line on stdout.
fn report(result: &RunResult, timeout_secs: u64) {
    if result.malformed_log_frames > 0 {
        terminal::stderr_line(&format!(
            "cloister: {} log frame(s) could not be decoded",
            result.malformed_log_frames
        ));
    }
    match result.outcome {
        Outcome::TimedOut => {
            terminal::stderr_line(&format!("cloister: timed out after {timeout_secs} s"))
        }
        Outcome::HypervisorFailed => terminal::stderr_line(&failure_message(result)),
        // The hypervisor's own console line (already on stdout) says which and why.
        Outcome::BackendUnavailable => {}
        Outcome::WorkloadExited(_) | Outcome::WorkloadStopped => {}
    }
    // The summary is the console's last non-blank line; printed as the hypervisor wrote it.
    if result.summary.is_some()
        && let Some(line) = result
            .console
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
    {
        terminal::stdout_line(line.trim_end());
    }
}

fn failure_message(result: &RunResult) -> String {
    let how = match result.qemu_status {
        Some(status) => format!("QEMU exited with status {status}"),
        None => "QEMU was killed by a signal".to_owned(),
    };
    let summary = if result.summary.is_some() {
        ""
    } else {
        ", no summary line"
    };
    format!("cloister: hypervisor failure ({how}{summary})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(qemu_status: Option<i32>) -> RunResult {
        RunResult {
            outcome: Outcome::HypervisorFailed,
            qemu_status,
            console: String::new(),
            summary: None,
            log: Vec::new(),
            raw_log: Vec::new(),
            malformed_log_frames: 0,
            qemu_stderr: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn failures_say_how_qemu_ended() {
        assert_eq!(
            failure_message(&result(Some(7))),
            "cloister: hypervisor failure (QEMU exited with status 7, no summary line)"
        );
        assert_eq!(
            failure_message(&result(None)),
            "cloister: hypervisor failure (QEMU was killed by a signal, no summary line)"
        );
    }
}
