//! One bounded boot of an image in QEMU.

use crate::accel::Accel;
use crate::boot_elf::elf_to_boot;
use crate::command::{QemuInvocation, gdb_attach_command, shell_line};
use crate::console;
use crate::defmt_log::{self, LogLine, read_table};
use crate::error::Error;
use crate::image::BuiltImage;
use crate::install::QEMU;
use crate::log_file::LogFile;
use crate::options::RunOptions;
use crate::outcome::{Outcome, classify};
use crate::process::QemuProcess;
use crate::qemu_stderr;
use crate::summary::Summary;
use defmt_decoder::Table;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// The standard COM1/COM2 ports, for ELFs booted without a configuration.
const DEFAULT_CONSOLE_PORT: u64 = 0x3f8;
const DEFAULT_LOG_PORT: u64 = 0x2f8;
const DEFAULT_MEMORY_MIB: u64 = 64;

#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: Outcome,
    /// QEMU's exit status; `None` when it was killed (timeout) or died by a signal.
    pub qemu_status: Option<i32>,
    /// Everything on the console UART, undecoded bytes replaced.
    pub console: String,
    /// The console's last line, if it is the hypervisor's summary.
    pub summary: Option<Summary>,
    /// The decoded defmt log.
    pub log: Vec<LogLine>,
    /// The log UART's bytes as received (defmt frames).
    pub raw_log: Vec<u8>,
    /// Log frames the decoder could not decode.
    pub malformed_log_frames: usize,
    /// QEMU's own messages.
    pub qemu_stderr: String,
    /// From QEMU's start to its exit (or kill).
    pub elapsed: Duration,
}

/// Boot `image` and wait for it to end, for at most `options.timeout` (no limit with
/// `options.gdb`). Errors are problems starting or watching the run; how the run ended
/// (including a timeout) is in [`RunResult::outcome`].
pub fn run(image: &BuiltImage, options: &RunOptions) -> Result<RunResult, Error> {
    let table = read_table(&image.elf_path)?.ok_or_else(|| Error::NoDefmtTable {
        elf: image.elf_path.clone(),
    })?;
    let hypervisor = &image.config.hypervisor;
    let target = Target {
        elf: &image.elf_path,
        memory_mib: options.memory_mib.unwrap_or(image.memory_mib),
        console_port: hypervisor.console_port.0,
        log_port: hypervisor.log_port.0,
    };
    boot(&target, Some(&table), options)
}

/// Boot any ELF with a Multiboot header and a PVH note, like an image, on the same
/// machine, with the console on COM1, the log on COM2 and `options.memory_mib` (default
/// 64) MiB of RAM. The log is decoded if the ELF has a defmt table, else only kept raw.
/// For booting things other than built images, such as the runner's own test kernels.
pub fn run_elf(elf: &Path, options: &RunOptions) -> Result<RunResult, Error> {
    let table = read_table(elf)?;
    let target = Target {
        elf,
        memory_mib: options.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
        console_port: DEFAULT_CONSOLE_PORT,
        log_port: DEFAULT_LOG_PORT,
    };
    boot(&target, table.as_ref(), options)
}

struct Target<'a> {
    elf: &'a Path,
    memory_mib: u64,
    console_port: u64,
    log_port: u64,
}

fn boot(target: &Target, table: Option<&Table>, options: &RunOptions) -> Result<RunResult, Error> {
    let boot_elf = elf_to_boot(target.elf, options.boot)?;
    let log_file = LogFile::create(options.log_file.clone())?;
    let invocation = QemuInvocation {
        elf: &boot_elf,
        memory_mib: target.memory_mib,
        machine: options.machine,
        accel: Accel::detect(),
        icount: options.icount,
        gdb: options.gdb,
        console_port: target.console_port,
        log_port: target.log_port,
        log_file: &log_file.path,
        extra_args: &options.extra_qemu_args,
    };
    let args = invocation.args()?;
    if options.echo {
        stderr_line(&format!("cloister: {}", shell_line(QEMU, &args)));
    }
    if options.gdb {
        // The original ELF: gdb wants its symbols, which the PVH copy shares anyway.
        stderr_line(&format!(
            "cloister: QEMU is waiting for gdb; attach with: {}",
            gdb_attach_command(target.elf)
        ));
    }
    let started = Instant::now();
    let qemu = start_qemu(&args)?;
    let deadline = (!options.gdb).then(|| started + options.timeout);
    watch(qemu, started, deadline, &log_file, table, options.echo)
}

fn start_qemu(args: &[OsString]) -> Result<Running, Error> {
    let mut command = Command::new(QEMU);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = QemuProcess::spawn(command).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::QemuMissing { detail: None },
        _ => Error::Io {
            context: format!("cannot start {QEMU}"),
            source: e,
        },
    })?;
    let child = process.child_mut();
    match (child.stdout.take(), child.stderr.take()) {
        (Some(stdout), Some(stderr)) => Ok(Running {
            process,
            stdout,
            stderr,
        }),
        // Dropping `process` kills QEMU.
        _ => Err(Error::Io {
            context: format!("{QEMU}'s output pipes are missing"),
            source: io::ErrorKind::BrokenPipe.into(),
        }),
    }
}

struct Running {
    process: QemuProcess,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

/// Collect the console, QEMU's messages and the log while QEMU runs, until it exits or
/// `deadline` passes; QEMU is dead when this returns, whatever happened.
fn watch(
    qemu: Running,
    started: Instant,
    deadline: Option<Instant>,
    log_file: &LogFile,
    table: Option<&Table>,
    echo: bool,
) -> Result<RunResult, Error> {
    let Running {
        mut process,
        stdout,
        stderr,
    } = qemu;
    let finished = AtomicBool::new(false);
    thread::scope(|scope| {
        let console = scope.spawn(|| console::capture(stdout, echo));
        let messages = scope.spawn(|| qemu_stderr::collect(stderr, echo));
        let log = scope.spawn(|| defmt_log::tail(&log_file.path, table, &finished, echo));
        let waited = process.wait_until(deadline);
        // However the wait ended, QEMU goes before the readers are joined: they only
        // finish once its pipes close and the log tail is told it is over.
        process.kill();
        let elapsed = started.elapsed();
        finished.store(true, Ordering::Release);
        let console = joined(console, "console")?;
        let qemu_stderr = joined(messages, "QEMU's stderr")?;
        let log = joined(log, "defmt log")?;
        let status = waited.map_err(Error::io(format!("cannot wait for {QEMU}")))?;

        let console = String::from_utf8_lossy(&console).into_owned();
        let summary = Summary::find(&console);
        let qemu_status = status.and_then(|s| s.code());
        let outcome = match status {
            None => Outcome::TimedOut,
            Some(_) => classify(qemu_status, summary.as_ref()),
        };
        Ok(RunResult {
            outcome,
            qemu_status,
            console,
            summary,
            log: log.lines,
            raw_log: log.raw,
            malformed_log_frames: log.malformed,
            qemu_stderr,
            elapsed,
        })
    })
}

fn joined<T>(handle: ScopedJoinHandle<'_, io::Result<T>>, what: &str) -> Result<T, Error> {
    let result = handle
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the reader thread panicked")));
    result.map_err(Error::io(format!("cannot read the {what}")))
}

/// Print to stderr, ignoring a closed stderr rather than panicking like `eprintln!`.
fn stderr_line(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_elf_is_an_error_before_qemu_starts() {
        let err = run_elf(Path::new("/no/such/image.elf"), &RunOptions::default()).unwrap_err();
        assert!(err.to_string().contains("/no/such/image.elf"), "{err}");
    }
}
