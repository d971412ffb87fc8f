//! Booting the images `cargo xtask test` built.

use cloister_runner::{
    BootProtocol, BuildOptions, BuiltImage, Machine, RunOptions, RunResult, Selftest,
    prebuilt_image_with,
};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every QEMU run in these tests ends within this, or fails as timed out.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root: this crate is `<root>/tests`.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// Where `cargo xtask test` put the images. Without it these tests cannot run, and
/// must not pass as if they had.
pub fn images_dir() -> PathBuf {
    match std::env::var_os("CLOISTER_IMAGES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => panic!(
            "CLOISTER_IMAGES is not set: these tests boot prebuilt images; run them with \
             `cargo xtask test`, which builds the images and sets it"
        ),
    }
}

/// The prebuilt image of the configuration at `config` (relative to the workspace root).
pub fn image(config: &str) -> BuiltImage {
    prebuilt(config, &BuildOptions::default())
}

/// The prebuilt image of `config` that fails on purpose with `selftest`.
pub fn selftest_image(config: &str, selftest: Selftest) -> BuiltImage {
    prebuilt(
        config,
        &BuildOptions {
            selftest: Some(selftest),
            ..BuildOptions::default()
        },
    )
}

fn prebuilt(config: &str, options: &BuildOptions) -> BuiltImage {
    let config = workspace_root().join(config);
    prebuilt_image_with(&images_dir(), &config, options).unwrap_or_else(|e| panic!("{e}"))
}

/// Boot `image` on `machine` by `protocol` with the standard timeout; panics (fails the
/// test) if the run could not be started or watched.
pub fn boot(image: &BuiltImage, machine: Machine, protocol: BootProtocol) -> RunResult {
    let options = RunOptions {
        machine,
        boot: protocol,
        ..RunOptions::default()
    };
    boot_with(image, options)
}

/// Boot `image` with `options`, under the standard timeout.
pub fn boot_with(image: &BuiltImage, options: RunOptions) -> RunResult {
    cloister_runner::ensure_qemu().unwrap_or_else(|e| panic!("{e}"));
    let options = RunOptions {
        timeout: TIMEOUT,
        ..options
    };
    cloister_runner::run(image, &options)
        .unwrap_or_else(|e| panic!("booting {}: {e}", image.elf_path.display()))
}

/// Boot the prebuilt image of `config` (microvm, PVH) and require a clean exit.
pub fn run_to_clean_exit(config: &str) -> RunResult {
    let result = boot(&image(config), Machine::Microvm, BootProtocol::Pvh);
    assert_eq!(
        result.outcome,
        cloister_runner::Outcome::WorkloadExited(0),
        "{}",
        describe(&result)
    );
    result
}

/// Everything about a run, for assertion messages.
pub fn describe(result: &RunResult) -> String {
    let mut text = format!(
        "outcome {:?}, QEMU status {:?}, {:.1?}\n--- console ---\n{}\n--- log ---\n",
        result.outcome, result.qemu_status, result.elapsed, result.console
    );
    for line in &result.log {
        let _ = writeln!(text, "{line}");
    }
    let _ = write!(text, "--- QEMU ---\n{}", result.qemu_stderr);
    text
}

/// The counters the SEV backends print in model mode: `cloister: <name> model: ...`.
#[derive(Debug, Default)]
pub struct ModelLine {
    pub rmpupdates: u64,
    pub psmashes: u64,
    pub launch_pages: u64,
    pub quarantined: u64,
    pub assigned_frames: u64,
}

pub fn model_line(console: &str, name: &str) -> Option<ModelLine> {
    let prefix = format!("cloister: {name} model: ");
    let line = console.lines().find_map(|l| l.strip_prefix(&prefix))?;
    let mut model = ModelLine::default();
    for field in line.split_whitespace() {
        let (key, value) = field.split_once('=')?;
        let value: u64 = value.parse().ok()?;
        match key {
            "rmpupdates" => model.rmpupdates = value,
            "psmashes" => model.psmashes = value,
            "launch_pages" => model.launch_pages = value,
            "quarantined" => model.quarantined = value,
            "assigned_frames" => model.assigned_frames = value,
            _ => {}
        }
    }
    Some(model)
}

/// A counter from the `cloister: memory: ...` line the hypervisor prints before the
/// summary (`launch_prepared`, `fault_prepared`, `prepared`, `table_pages`, ...), or
/// `None` when the line or the counter is missing.
pub fn memory_counter(console: &str, name: &str) -> Option<u64> {
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix("cloister: memory: "))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}
