//! `cargo xtask test`: everything, in the order that fails fastest.

use crate::cli::BenchArgs;
use crate::tally::{Tally, run_counted};
use crate::{exit_status, shipped_configs, terminal, workspace};
use cloister_runner::{BuildOptions, Error, Selftest, build_image_with, ensure_qemu, images_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Lint, host tests, every image, the QEMU tests, the bench smoke check, then a short
/// fuzz pass; stops at the first failure. The last line printed is the total of both
/// test runs, plus one for the smoke check and one per fuzz target.
pub fn test_all() -> Result<u8, Error> {
    let root = workspace::root();
    let mut tally = Tally::default();
    let status = run_steps(root, &mut tally);
    println!("{}", tally.line());
    status
}

fn run_steps(root: &Path, tally: &mut Tally) -> Result<u8, Error> {
    step("0/5: lint (cargo fmt --check, clippy)");
    if !crate::lint_command::lint()? {
        return Ok(exit_status::FAILURE);
    }
    step("1/5: host tests (cargo test)");
    // Plain `cargo test` at the root: the default members, which all run on the host.
    let mut host_tests = cargo_command(root);
    host_tests.arg("test");
    if !succeeded(host_tests, tally)? {
        terminal::stderr_line("cloister: host tests failed");
        return Ok(exit_status::FAILURE);
    }
    step("2/5: images");
    ensure_qemu()?;
    for (config, options) in image_builds()? {
        build_image_with(root, &config, &options)?;
    }
    let images = images_dir(root);
    step(&format!(
        "3/5: QEMU tests (cargo test -p cloister-tests, CLOISTER_IMAGES={})",
        images.display()
    ));
    let mut tests = cargo_command(root);
    tests
        .args(["test", "--package", "cloister-tests"])
        .env("CLOISTER_IMAGES", &images);
    if !succeeded(tests, tally)? {
        terminal::stderr_line("cloister: QEMU tests failed");
        return Ok(exit_status::FAILURE);
    }
    step("4/5: bench smoke check (cargo xtask bench --quick)");
    // Counted as one test: it must run and read every number, whatever their values.
    let quick = BenchArgs {
        quick: true,
        ..BenchArgs::default()
    };
    match crate::bench::bench(&quick) {
        Ok(0) => tally.passed += 1,
        failed => {
            tally.failed += 1;
            terminal::stderr_line("cloister: bench smoke check failed");
            return failed.map(|_| exit_status::FAILURE);
        }
    }
    step(&format!(
        "5/5: bounded fuzz pass (cargo xtask fuzz --time {FUZZ_SECONDS})"
    ));
    // Each target counts as one test: it must build, run and find nothing in the time.
    if !crate::fuzz_command::bounded_pass(FUZZ_SECONDS, tally)? {
        terminal::stderr_line("cloister: the fuzz pass found something (see above)");
        return Ok(exit_status::FAILURE);
    }
    Ok(0)
}

/// Seconds per fuzz target in the test run: long enough to get past the seeds into new
/// inputs (hundreds of thousands for the fast targets), short enough for CI's two cores.
const FUZZ_SECONDS: u64 = 15;

fn step(what: &str) {
    terminal::stderr_line(&format!("cloister: test step {what}"));
}

/// Every image the QEMU tests boot: the shipped configurations that build (the default
/// first), the default's selftest images, then tests/configs/*.toml in name order.
fn image_builds() -> Result<Vec<(PathBuf, BuildOptions)>, Error> {
    let default = workspace::default_config();
    let selftests = Selftest::ALL.into_iter().map(|selftest| BuildOptions {
        selftest: Some(selftest),
        ..BuildOptions::default()
    });
    let mut builds: Vec<_> = shipped_configs::built()
        .into_iter()
        .map(|config| (config, BuildOptions::default()))
        .collect();
    builds.extend(selftests.map(|options| (default.clone(), options)));
    builds.extend(
        test_configs()?
            .into_iter()
            .map(|config| (config, BuildOptions::default())),
    );
    Ok(builds)
}

/// tests/configs/*.toml in name order.
fn test_configs() -> Result<Vec<PathBuf>, Error> {
    let dir = workspace::test_configs_dir();
    let mut configs = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| Error::Io {
                context: format!("cannot list {}", dir.display()),
                source,
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(Error::Io {
                context: format!("cannot list {}", dir.display()),
                source,
            });
        }
    };
    configs.retain(|path| path.extension().is_some_and(|ext| ext == "toml"));
    configs.sort();
    Ok(configs)
}

/// The cargo that runs us (set by `cargo run`), in the workspace root.
fn cargo_command(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

fn succeeded(command: Command, tally: &mut Tally) -> Result<bool, Error> {
    run_counted(command, tally).map_err(|source| Error::Io {
        context: "cannot run cargo".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_images_come_first_then_the_selftests_then_the_test_configs() {
        let builds = image_builds().unwrap();
        let selftest = |selftest| BuildOptions {
            selftest: Some(selftest),
            ..BuildOptions::default()
        };
        let default = workspace::default_config();
        let shipped = workspace::shipped_configs_dir();
        assert_eq!(
            builds[..8],
            [
                (default.clone(), BuildOptions::default()),
                (shipped.join("edge-gateway.toml"), BuildOptions::default()),
                (shipped.join("tdx.toml"), BuildOptions::default()),
                (shipped.join("sev.toml"), BuildOptions::default()),
                (shipped.join("sev-snp.toml"), BuildOptions::default()),
                (default.clone(), selftest(Selftest::PageFault)),
                (default.clone(), selftest(Selftest::Panic)),
                (default, selftest(Selftest::ReadPrivate)),
            ]
        );
        let tests: Vec<_> = builds[8..].iter().map(|(config, _)| config).collect();
        assert!(tests.contains(&&workspace::test_configs_dir().join("world-switch.toml")));
        assert!(tests.iter().all(|c| c.extension().unwrap() == "toml"));
        assert!(
            tests
                .iter()
                .all(|c| c.starts_with(workspace::test_configs_dir()))
        );
        assert!(tests.is_sorted());
        assert!(
            builds[8..]
                .iter()
                .all(|(_, options)| options.selftest.is_none())
        );
    }
}
