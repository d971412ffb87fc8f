//! `cargo xtask fuzz [--time SECONDS] [--target NAME]`: the cargo-fuzz targets of
//! `fuzz/` (a workspace of their own), each for SECONDS, one after the other.
//!
//! `tools/install-fuzz.sh` first (cargo-fuzz, the nightly toolchain), then one build of
//! every target, then each run with its committed seeds (`fuzz/corpus/<target>`) read
//! and what it finds added to a corpus of its own (`fuzz/out/corpus/<target>`, ignored
//! by git), libFuzzer's output in `fuzz/out/<target>.log`. Per target one line: the
//! inputs executed (libFuzzer's final `stat::number_of_executed_units`) and "no finding",
//! or the crash artifact and what the log says about it.
//!
//! Built with debug assertions and overflow checks (`-a`): an overflow in the code under
//! test is a finding. Without a sanitizer (`-s none`): the Cloister code fuzzed has no
//! `unsafe` (core and privmem forbid it; the config crate, cloister-abi, the GHCB and
//! TDVMCALL decoders use none), so AddressSanitizer would only watch the dependencies'
//! `unsafe` (heapless, toml), and it slows every execution.

use crate::cli::FuzzArgs;
use crate::tally::Tally;
use crate::{exit_status, terminal, workspace};
use cloister_runner::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The targets, in the order they run (the `[[bin]]`s of fuzz/Cargo.toml).
pub const TARGETS: &[&str] = &["hypercall", "config", "mmu_ops", "privmem_ops"];
/// Seconds per target when `--time` is not given.
pub const DEFAULT_SECONDS: u64 = 60;
/// An input running longer than this is a finding (a hang), saved as a timeout.
const INPUT_TIMEOUT_SECS: u64 = 60;
/// The line libFuzzer's `-print_final_stats=1` gives the inputs executed on.
const EXECS_STAT: &str = "stat::number_of_executed_units:";
/// What libFuzzer says when it saves the input that failed.
const ARTIFACT_WRITTEN: &str = "Test unit written to ";
/// Lines of the log shown with a finding.
const FINDING_LINES: usize = 12;

/// How one target's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    NoFinding,
    /// libFuzzer stopped on an input (a panic, a crash, a hang, too much memory), saved
    /// at `artifact`; or the run failed before fuzzing (`artifact` is `None`).
    Finding {
        artifact: Option<PathBuf>,
    },
}

#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    /// Inputs executed, if libFuzzer got as far as printing its final stats.
    pub execs: Option<u64>,
    pub outcome: Outcome,
}

/// `cargo xtask fuzz`: 0 if no target found anything, 1 if one did, 2 if the nightly
/// toolchain is missing.
pub fn fuzz(args: &FuzzArgs) -> Result<u8, Error> {
    // The command line checked the name is one of TARGETS.
    let targets: Vec<&'static str> = TARGETS
        .iter()
        .copied()
        .filter(|&t| args.target.as_deref().is_none_or(|name| name == t))
        .collect();
    let Some(reports) = run(&targets, args.seconds)? else {
        return Ok(exit_status::UNAVAILABLE);
    };
    let clean = reports.iter().all(|r| r.outcome == Outcome::NoFinding);
    Ok(if clean { 0 } else { exit_status::FAILURE })
}

/// The pass `cargo xtask test` makes: every target for `seconds`, each counted in
/// `tally` as one test. Whether nothing was found.
pub fn bounded_pass(seconds: u64, tally: &mut Tally) -> Result<bool, Error> {
    let Some(reports) = run(TARGETS, seconds)? else {
        tally.failed += 1;
        return Ok(false);
    };
    for report in &reports {
        match report.outcome {
            Outcome::NoFinding => tally.passed += 1,
            Outcome::Finding { .. } => tally.failed += 1,
        }
    }
    Ok(reports.iter().all(|r| r.outcome == Outcome::NoFinding))
}

/// Install what is missing, build, then run each of `targets` for `seconds`; `None` if
/// the nightly toolchain is missing.
fn run(targets: &[&'static str], seconds: u64) -> Result<Option<Vec<Report>>, Error> {
    let root = workspace::root();
    let fuzz_dir = root.join("fuzz");
    let install = Command::new("bash")
        .arg(root.join("tools").join("install-fuzz.sh"))
        .current_dir(root)
        .status()
        .map_err(|source| Error::Io {
            context: "cannot run tools/install-fuzz.sh".into(),
            source,
        })?;
    match install.code() {
        Some(0) => {}
        // The script said why.
        Some(2) => return Ok(None),
        _ => {
            return Err(Error::Build {
                what: "the fuzzing tools (tools/install-fuzz.sh)".into(),
                status: install,
            });
        }
    }
    // One build of every target: cargo builds the shared dependencies once and in
    // parallel, and each run below finds its target up to date.
    let build = cargo_fuzz(&fuzz_dir)
        .arg("build")
        .args(BUILD_FLAGS)
        .status()
        .map_err(|source| Error::Io {
            context: "cannot run cargo +nightly fuzz build".into(),
            source,
        })?;
    if !build.success() {
        return Err(Error::Build {
            what: "the fuzz targets".into(),
            status: build,
        });
    }
    let mut reports = Vec::new();
    for &target in targets {
        let report = run_target(&fuzz_dir, target, seconds)?;
        print_report(&fuzz_dir, &report, seconds);
        reports.push(report);
    }
    Ok(Some(reports))
}

/// Debug assertions and overflow checks, no sanitizer (see the module's comment).
const BUILD_FLAGS: &[&str] = &["--debug-assertions", "--sanitizer", "none"];

/// `cargo +nightly fuzz` for the project in `fuzz_dir`, with none of the outer cargo's
/// toolchain choices (`cargo xtask` runs under stable cargo, which sets them).
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut command = Command::new("cargo");
    command
        .current_dir(fuzz_dir)
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .args(["+nightly", "fuzz"]);
    command
}

fn run_target(fuzz_dir: &Path, target: &'static str, seconds: u64) -> Result<Report, Error> {
    let io = |context: String| move |source| Error::Io { context, source };
    let out = fuzz_dir.join("out");
    let corpus = out.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(io(format!("cannot create {}", corpus.display())))?;
    let log_path = log_path(fuzz_dir, target);
    let log =
        File::create(&log_path).map_err(io(format!("cannot create {}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(io("cannot share the log file".into()))?;
    terminal::stderr_line(&format!(
        "cloister: fuzzing {target} for {seconds} s (log: {})",
        log_path.display()
    ));
    // The first corpus directory is where libFuzzer adds what it finds; the seeds
    // are only read.
    let mut command = cargo_fuzz(fuzz_dir);
    command
        .arg("run")
        .args(BUILD_FLAGS)
        .arg(target)
        .arg(&corpus)
        .arg(fuzz_dir.join("corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1");
    let dict = fuzz_dir.join("dict").join(format!("{target}.dict"));
    if dict.exists() {
        command.arg(format!("-dict={}", dict.display()));
    }
    let status = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(io("cannot run cargo +nightly fuzz run".into()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let execs = executed_units(&text);
    let outcome = if status.success() {
        Outcome::NoFinding
    } else {
        Outcome::Finding {
            artifact: artifact(&text),
        }
    };
    Ok(Report {
        target,
        execs,
        outcome,
    })
}

fn log_path(fuzz_dir: &Path, target: &str) -> PathBuf {
    fuzz_dir.join("out").join(format!("{target}.log"))
}

fn print_report(fuzz_dir: &Path, report: &Report, seconds: u64) {
    let target = report.target;
    let execs = report
        .execs
        .map_or_else(|| "no stats".to_owned(), |n| format!("{n} execs"));
    let Outcome::Finding { artifact } = &report.outcome else {
        terminal::stdout_line(&format!(
            "cloister: fuzz {target}: {execs} in {seconds} s, no finding"
        ));
        return;
    };
    let log = log_path(fuzz_dir, target);
    let what = artifact.as_ref().map_or_else(
        || format!("the run failed; see {}", log.display()),
        |a| format!("crash artifact {}", a.display()),
    );
    terminal::stdout_line(&format!(
        "cloister: fuzz {target}: FINDING after {execs}: {what}"
    ));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for line in finding_lines(&text) {
        terminal::stderr_line(&format!("  {line}"));
    }
    if let Some(artifact) = artifact {
        terminal::stderr_line(&format!(
            "  reproduce: cd fuzz && cargo +nightly fuzz run {} {target} {}",
            BUILD_FLAGS.join(" "),
            artifact.display()
        ));
    }
}

/// The inputs executed, from libFuzzer's final stats (the last report, if several).
fn executed_units(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(EXECS_STAT))
        .and_then(|count| count.trim().parse().ok())
}

/// Where libFuzzer saved the input that failed.
fn artifact(log: &str) -> Option<PathBuf> {
    log.lines()
        .rev()
        .find_map(|line| line.split_once(ARTIFACT_WRITTEN))
        .map(|(_, path)| PathBuf::from(path.trim()))
}

/// What the log says about a finding: the panic and its message, or libFuzzer's error.
fn finding_lines(log: &str) -> Vec<&str> {
    let start = log
        .lines()
        .position(|l| l.contains("panicked at") || l.contains("ERROR: libFuzzer"));
    let Some(start) = start else {
        // No panic, no libFuzzer error: the build or the command failed; its end says why.
        let lines: Vec<&str> = log.lines().collect();
        return lines[lines.len().saturating_sub(FINDING_LINES)..].to_vec();
    };
    log.lines()
        .skip(start)
        .take_while(|l| !l.starts_with("stack backtrace:") && !l.starts_with("note: run with"))
        .take(FINDING_LINES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of a real run (cargo-fuzz 0.13, libFuzzer with -print_final_stats=1).
    const CLEAN_RUN: &str = "\
#524288\tpulse  cov: 2012 ft: 9123 corp: 1190/96Kb lim: 4096 exec/s: 1001 rss: 36Mb
Done 31050 runs in 31 second(s)
stat::number_of_executed_units: 31050
stat::average_exec_per_sec:     1001
stat::new_units_added:          1190
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              36
";

    const CRASH: &str = "\
#16\tNEW    cov: 706 ft: 1169 corp: 8/1666b lim: 512 exec/s: 0 rss: 35Mb L: 320/512 MS: 1 CrossOver-

thread '<unnamed>' (8486) panicked at src/hypercall.rs:713:80:
attempt to add with overflow
stack backtrace:
   0: __rustc::rust_begin_unwind
==8486== ERROR: libFuzzer: deadly signal
MS: 2 ChangeBit-CrossOver-; base unit: 4e7b
artifact_prefix='/work/fuzz/artifacts/hypercall/'; Test unit written to /work/fuzz/artifacts/hypercall/crash-7a89fdb1
Base64: AAEC
stat::number_of_executed_units: 19
stat::average_exec_per_sec:     0
";

    #[test]
    fn the_execs_come_from_the_final_stats() {
        assert_eq!(executed_units(CLEAN_RUN), Some(31050));
        assert_eq!(executed_units(CRASH), Some(19));
        // A run that never got to fuzzing (a build error) has none.
        assert_eq!(executed_units("error: could not compile `x`\n"), None);
        // The last report counts, and an unreadable count is no count.
        let twice = "stat::number_of_executed_units: 5\nstat::number_of_executed_units: 7\n";
        assert_eq!(executed_units(twice), Some(7));
        assert_eq!(
            executed_units("stat::number_of_executed_units: many\n"),
            None
        );
    }

    #[test]
    fn a_finding_names_its_artifact_and_shows_the_panic() {
        assert_eq!(artifact(CLEAN_RUN), None);
        assert_eq!(
            artifact(CRASH),
            Some(PathBuf::from(
                "/work/fuzz/artifacts/hypercall/crash-7a89fdb1"
            ))
        );
        assert_eq!(
            finding_lines(CRASH),
            [
                "thread '<unnamed>' (8486) panicked at src/hypercall.rs:713:80:",
                "attempt to add with overflow",
            ]
        );
        // Without a panic, the end of the log says what went wrong.
        let build_error = "error[E0425]: cannot find value `x`\nerror: could not compile\n";
        assert_eq!(
            finding_lines(build_error),
            [
                "error[E0425]: cannot find value `x`",
                "error: could not compile"
            ]
        );
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        let fuzz_dir = workspace::root().join("fuzz");
        let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target} is not a [[bin]] of fuzz/Cargo.toml"
            );
            assert!(
                fuzz_dir
                    .join("fuzz_targets")
                    .join(format!("{target}.rs"))
                    .exists()
            );
            let seeds = std::fs::read_dir(fuzz_dir.join("corpus").join(target)).unwrap();
            assert!(seeds.count() > 0, "{target} has no seeds in fuzz/corpus");
        }
    }
}
