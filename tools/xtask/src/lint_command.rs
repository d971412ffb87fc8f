//! `cargo xtask lint`: formatting and clippy, warnings denied.
//!
//! Clippy runs in two groups because one build of the whole workspace unifies features
//! across packages: the host tooling's defmt-decoder turns on byteorder's `std`, which
//! the bare-metal image would then link against `core` (`duplicate lang item`).

use crate::{terminal, workspace};
use cloister_runner::Error;
use std::process::Command;

/// Packages that run on the host, tests included.
pub const HOST_PACKAGES: &[&str] = &[
    "cloister-abi",
    "cloister-core",
    "cloister-privmem",
    "cloister-svm",
    "cloister-tdx",
    "cloister-config",
    "cloister-runner",
    "xtask",
    "cloister-tests",
    "cloister-loom-models",
];

/// Packages built only for the bare-metal image and the workloads.
pub const BARE_METAL_PACKAGES: &[&str] = &[
    "cloister-rt",
    "cloister-x86",
    "cloister-qemu-x86_64",
    "cloister-guest",
    "cloister-demo",
    "cloister-test-workloads",
    "cloister-bench-workloads",
];

/// Whether formatting and both clippy groups are clean.
pub fn lint() -> Result<bool, Error> {
    let mut clean = run(cargo(&["fmt", "--all", "--check"]))?;
    for group in [HOST_PACKAGES, BARE_METAL_PACKAGES] {
        let mut command = cargo(&["clippy", "--quiet", "--all-targets"]);
        for package in group {
            command.args(["--package", package]);
        }
        command.args(["--", "--deny", "warnings"]);
        clean &= run(command)?;
    }
    if !clean {
        terminal::stderr_line("cloister: lint failed (cargo fmt --all, and fix what clippy says)");
    }
    Ok(clean)
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace::root()).args(args);
    command
}

fn run(mut command: Command) -> Result<bool, Error> {
    let status = command.status().map_err(|source| Error::Io {
        context: "cannot run cargo".into(),
        source,
    })?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workspace_package_is_in_exactly_one_group() {
        let manifest = std::fs::read_to_string(workspace::root().join("Cargo.toml")).unwrap();
        let members: Vec<&str> = manifest
            .split("members = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap()
            .split('"')
            .skip(1)
            .step_by(2)
            .collect();
        let grouped = HOST_PACKAGES.len() + BARE_METAL_PACKAGES.len();
        assert_eq!(
            members.len(),
            grouped,
            "a member is missing from the lint groups: {members:?}"
        );
    }
}
