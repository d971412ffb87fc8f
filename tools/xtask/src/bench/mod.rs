//! `cargo xtask bench`: boot each benchmark configuration under `-icount shift=0,
//! sleep=off` (one guest TSC tick per executed instruction), read what the hypervisor and
//! the workload printed, and report the figures: a table on stdout, optionally JSON and a
//! PNG plot of launch cost. Targets are reported, never enforced. docs/performance.md
//! says what each figure includes.

mod error;
mod figures;
mod image_size;
mod json;
mod plot;
mod record;
mod suite;
mod table;
mod targets;

use crate::cli::BenchArgs;
use crate::{exit_status, terminal, workspace};
use cloister_runner::{
    BuildOptions, BuiltImage, Error, Outcome, RunOptions, RunResult, build_image, build_image_with,
    ensure_qemu, run, target_dir,
};
use error::BenchError;
use figures::Figures;
use image_size::ImageSize;
use record::Record;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use suite::Bench;
use targets::Targets;

/// Each run's bound. The slowest, 2 GiB prepared up front, scrubs 2 GiB under TCG.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Console lines shown when a run fails.
const CONSOLE_TAIL_LINES: usize = 25;

/// Run the suite and report; the exit status is 0 whether or not targets are met.
pub fn bench(args: &BenchArgs) -> Result<u8, Error> {
    match measure_and_report(args) {
        Ok(()) => Ok(0),
        // The runner's errors keep their own exit statuses (QEMU missing: 2).
        Err(BenchError::Runner(error)) => Err(error),
        Err(error) => {
            terminal::stderr_line(&format!("error: {error}"));
            Ok(exit_status::FAILURE)
        }
    }
}

fn measure_and_report(args: &BenchArgs) -> Result<(), BenchError> {
    let root = workspace::root();
    let benches = if args.quick {
        Bench::quick()
    } else {
        Bench::full()
    };
    let configs = configurations(&workspace::bench_configs_dir(), &benches)?;
    ensure_qemu()?;
    let image = loaded_size(root)?;
    let images = build_all(root, &configs)?;
    let (records, failures) = measure_all(&images)?;
    if !failures.is_empty() {
        // What the other runs gave, for a look; no JSON or plot of a partial suite.
        if let Ok(figures) = Figures::compute(&records, Some(image)) {
            print_table(&figures);
        }
        for failure in &failures {
            terminal::stderr_line(&format!("error: {failure}"));
        }
        return Err(BenchError::Failed {
            failed: failures.len(),
            runs: images.len(),
        });
    }
    let figures = Figures::compute(&records, Some(image))?;
    print_table(&figures);
    if let Some(path) = &args.json {
        let document = json::document(&figures, &Targets::check(&figures), &records, args.quick);
        let text =
            serde_json::to_string_pretty(&document).map_err(|e| BenchError::write(path, e))?;
        std::fs::write(path, text + "\n").map_err(|e| BenchError::write(path, e))?;
        progress(&format!("wrote {}", path.display()));
    }
    // The full suite plots by default; --quick only when asked (one point is no curve).
    let plot_path = match (&args.plot, args.quick) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => Some(default_plot_path(root)),
        (None, true) => None,
    };
    if let Some(path) = plot_path {
        write_plot(&path, &figures)?;
    }
    Ok(())
}

/// Each run's configuration, all checked to exist before anything is built.
fn configurations(dir: &Path, benches: &[Bench]) -> Result<Vec<(Bench, PathBuf)>, BenchError> {
    benches
        .iter()
        .map(|&bench| {
            let path = bench.config_path(dir);
            if path.is_file() {
                Ok((bench, path))
            } else {
                Err(BenchError::MissingConfig { path })
            }
        })
        .collect()
}

/// Every benchmark image, with the bench hooks (`<name>-bench.elf`).
fn build_all(
    root: &Path,
    configs: &[(Bench, PathBuf)],
) -> Result<Vec<(Bench, BuiltImage)>, BenchError> {
    let options = BuildOptions {
        bench_hooks: true,
        ..BuildOptions::default()
    };
    let mut images = Vec::new();
    for (bench, config) in configs {
        progress(&format!("building {bench}"));
        images.push((*bench, build_image_with(root, config, &options)?));
    }
    Ok(images)
}

fn print_table(figures: &Figures) {
    let targets = Targets::check(figures);
    terminal::stdout_line(&table::render(&table::rows(figures, &targets), &targets));
}

fn write_plot(path: &Path, figures: &Figures) -> Result<(), BenchError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::write(dir, e))?;
    }
    plot::write_png(path, &figures.launch).map_err(|e| BenchError::write(path, e))?;
    progress(&format!("wrote {}", path.display()));
    Ok(())
}

/// Boot every image in turn. A run that fails or prints garbage does not stop the
/// others (the suite takes minutes); it is returned with the rest. Errors starting or
/// watching QEMU do stop the suite.
fn measure_all(
    images: &[(Bench, BuiltImage)],
) -> Result<(BTreeMap<Bench, Record>, Vec<BenchError>), BenchError> {
    let mut records = BTreeMap::new();
    let mut failures = Vec::new();
    for (index, (bench, image)) in images.iter().enumerate() {
        progress(&format!(
            "[{}/{}] {bench}: booting under icount with {} MiB of RAM",
            index + 1,
            images.len(),
            image.memory_mib
        ));
        match measure(*bench, image) {
            Ok(record) => {
                records.insert(*bench, record);
            }
            Err(BenchError::Runner(error)) => return Err(BenchError::Runner(error)),
            Err(failure) => failures.push(failure),
        }
    }
    Ok((records, failures))
}

/// Where the plot goes without `--plot`: `<target dir>/bench/launch.png`.
fn default_plot_path(root: &Path) -> PathBuf {
    target_dir(root).join("bench").join("launch.png")
}

/// The loaded size of the default image (config/default.toml, built as `build` does).
fn loaded_size(root: &Path) -> Result<ImageSize, BenchError> {
    progress("building config/default.toml for the image size");
    let image = build_image(root, &workspace::default_config())?;
    let bytes = std::fs::read(&image.elf_path).map_err(|source| Error::Io {
        context: format!("cannot read {}", image.elf_path.display()),
        source,
    })?;
    ImageSize::of_elf(&bytes)
        .map_err(|problem| BenchError::output(image.elf_path.display(), problem))
}

/// Boot one benchmark image and read its numbers; the workload must exit 0.
fn measure(bench: Bench, image: &BuiltImage) -> Result<Record, BenchError> {
    let options = RunOptions {
        icount: true,
        timeout: RUN_TIMEOUT,
        ..RunOptions::default()
    };
    let result = run(image, &options)?;
    progress(&format!(
        "{bench}: {} in {:.1} s",
        result.outcome,
        result.elapsed.as_secs_f64()
    ));
    if result.outcome != Outcome::WorkloadExited(0) {
        return Err(BenchError::RunFailed {
            run: bench.to_string(),
            detail: failure_detail(&result),
        });
    }
    let log = result.log.iter().map(|line| line.text.as_str());
    Record::parse(&result.console, log).map_err(|problem| BenchError::output(bench, problem))
}

/// How the run ended, the console's last lines and QEMU's messages.
fn failure_detail(result: &RunResult) -> String {
    let mut text = format!("{} (the workload must exit 0)", result.outcome);
    let lines: Vec<&str> = result.console.lines().collect();
    let tail = &lines[lines.len().saturating_sub(CONSOLE_TAIL_LINES)..];
    text.push_str("\n--- console (last lines) ---\n");
    text.push_str(&tail.join("\n"));
    if let Some(last) = result.log.last() {
        text.push_str(&format!("\n--- last log line ---\n{last}"));
    }
    // Less the warnings about EPYC features TCG lacks, which come with every run.
    let qemu: Vec<&str> = result
        .qemu_stderr
        .lines()
        .filter(|line| !line.contains("TCG doesn't support requested feature"))
        .collect();
    if !qemu.is_empty() {
        text.push_str("\n--- QEMU ---\n");
        text.push_str(&qemu.join("\n"));
    }
    text
}

fn progress(message: &str) {
    terminal::stderr_line(&format!("cloister: bench: {message}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloister_runner::{LogLevel, LogLine};

    #[test]
    fn a_failed_run_shows_its_end_its_last_log_line_and_real_qemu_messages() {
        let console: String = (1..=40).map(|n| format!("line {n}\n")).collect();
        let result = RunResult {
            outcome: Outcome::WorkloadStopped,
            qemu_status: Some(5),
            console,
            summary: None,
            log: vec![LogLine {
                level: Some(LogLevel::Info),
                timestamp: None,
                text: "workload stopped after 0 exits".into(),
            }],
            raw_log: Vec::new(),
            malformed_log_frames: 0,
            qemu_stderr: "qemu-system-x86_64: warning: TCG doesn't support requested \
                          feature: CPUID.07H:EBX.rdseed [bit 18]\nsomething real\n"
                .into(),
            elapsed: Duration::ZERO,
        };
        let detail = failure_detail(&result);
        assert!(detail.starts_with("workload stopped abnormally (the workload must exit 0)\n"));
        assert!(!detail.contains("line 15\n"), "{detail}");
        assert!(detail.contains("line 16\n"), "{detail}");
        assert!(detail.contains("line 40\n--- last log line ---\n[log info] workload stopped"));
        assert!(detail.ends_with("--- QEMU ---\nsomething real"), "{detail}");
        assert!(!detail.contains("rdseed"), "{detail}");
    }

    #[test]
    fn a_missing_configuration_is_named() {
        let err = configurations(Path::new("/no/configs"), &Bench::quick()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "benchmark configuration /no/configs/launch-64m-demand.toml does not exist (the \
             bench configurations live in tools/bench/configs, beside the \
             cloister-bench-workloads package)"
        );
    }

    #[test]
    fn the_default_plot_goes_under_the_target_directory() {
        let path = default_plot_path(Path::new("/ws"));
        assert!(path.ends_with("bench/launch.png"), "{}", path.display());
    }
}
