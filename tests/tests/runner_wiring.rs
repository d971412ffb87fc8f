//! The runner against QEMU with tiny test kernels instead of the hypervisor: both
//! UARTs, the exit-status protocol, the boot-protocol choice and the timeout, on both
//! machine types. These need QEMU but no images.

use cloister_runner::{
    BootProtocol, Error, Machine, Outcome, RunOptions, RunResult, WorkloadEnd, ensure_qemu,
    prebuilt_image, run_elf,
};
use cloister_tests::fixture::{Program, TempDir, TempFile};
use cloister_tests::harness::{TIMEOUT, describe, workspace_root};
use std::time::Duration;

const COM1: u16 = 0x3f8;
const COM2: u16 = 0x2f8;

fn boot(program: &Program, name: &str, options: &RunOptions) -> RunResult {
    ensure_qemu().unwrap_or_else(|e| panic!("{e}"));
    let elf = program.save(name);
    run_elf(elf.path(), options).unwrap_or_else(|e| panic!("{e}"))
}

fn finishing(machine: Machine) -> RunOptions {
    RunOptions {
        machine,
        timeout: TIMEOUT,
        ..RunOptions::default()
    }
}

fn console_log_and_clean_exit(machine: Machine) {
    let program = Program::new()
        .write(
            COM1,
            b"hello\ncloister: workload 'fixture' exited 0; exits=1 npf=2 hypercalls=3\n",
        )
        .write(COM2, b"frames")
        .exit(0);
    let result = boot(
        &program,
        &format!("clean-exit-{machine}"),
        &finishing(machine),
    );
    let context = describe(&result);
    assert_eq!(result.qemu_status, Some(1), "{context}");
    assert_eq!(result.outcome, Outcome::WorkloadExited(0), "{context}");
    assert!(result.console.starts_with("hello\n"), "{context}");
    assert_eq!(result.summary.as_ref().map(|s| s.npf), Some(2), "{context}");
    assert_eq!(
        result.raw_log, b"frames",
        "COM2 reaches the log file\n{context}"
    );
}

#[test]
fn console_log_and_exit_status_on_microvm() {
    console_log_and_clean_exit(Machine::Microvm);
}

#[test]
fn console_log_and_exit_status_on_pc() {
    console_log_and_clean_exit(Machine::Pc);
}

/// The kernel reports on COM1 which protocol QEMU entered it by.
fn entered_by(machine: Machine, protocol: BootProtocol) -> String {
    let program = Program::new().report_boot_protocol(COM1).exit(0);
    let options = RunOptions {
        boot: protocol,
        ..finishing(machine)
    };
    let result = boot(&program, &format!("{protocol}-{machine}"), &options);
    assert_eq!(result.qemu_status, Some(1), "{}", describe(&result));
    result.console
}

#[test]
fn the_chosen_boot_protocol_is_the_one_qemu_uses() {
    for machine in [Machine::Microvm, Machine::Pc] {
        assert_eq!(entered_by(machine, BootProtocol::Pvh), "pvh\n", "{machine}");
        assert_eq!(
            entered_by(machine, BootProtocol::Multiboot),
            "multiboot\n",
            "{machine}"
        );
    }
}

#[test]
fn a_stop_and_a_failure_are_told_apart() {
    let stopped = Program::new()
        .write(
            COM1,
            b"cloister: workload 'fixture' stopped: triple fault; exits=1 npf=0 hypercalls=0\n",
        )
        .exit(2);
    let result = boot(&stopped, "stopped", &finishing(Machine::Microvm));
    assert_eq!(
        result.outcome,
        Outcome::WorkloadStopped,
        "{}",
        describe(&result)
    );
    assert_eq!(
        result.summary.map(|s| s.end),
        Some(WorkloadEnd::Stopped("triple fault".into()))
    );

    let failed = Program::new().write(COM1, b"panicked\n").exit(3);
    let result = boot(&failed, "failed", &finishing(Machine::Microvm));
    assert_eq!(
        (result.outcome.clone(), result.qemu_status),
        (Outcome::HypervisorFailed, Some(7)),
        "{}",
        describe(&result)
    );
}

#[test]
fn a_hung_run_is_killed_at_its_timeout_and_leaves_no_qemu_behind() {
    let log = TempFile::new(
        std::env::temp_dir().join(format!("cloister-hung-{}.defmt", std::process::id())),
    );
    let options = RunOptions {
        timeout: Duration::from_secs(2),
        log_file: Some(log.path().to_path_buf()),
        ..RunOptions::default()
    };
    let result = boot(&Program::new().spin(), "hung", &options);
    assert_eq!(result.outcome, Outcome::TimedOut, "{}", describe(&result));
    assert!(
        result.elapsed < Duration::from_secs(10),
        "{:.1?}",
        result.elapsed
    );
    // The log file's unique path is on QEMU's command line: no process may still have it.
    let marker = log.path().to_string_lossy().into_owned();
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&marker))
        .collect();
    assert!(survivors.is_empty(), "{survivors:?}");
}

#[test]
fn an_image_without_a_defmt_table_is_refused() {
    // An images directory whose default.elf is a kernel without defmt.
    let dir = TempDir::new("no-defmt");
    std::fs::write(dir.path().join("default.elf"), Program::new().exit(0).elf()).unwrap();
    let image = prebuilt_image(dir.path(), &workspace_root().join("config/default.toml")).unwrap();
    let err = cloister_runner::run(&image, &RunOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NoDefmtTable { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("image has no defmt table (missing defmt.x?)"),
        "{err}"
    );
}
