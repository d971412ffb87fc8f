//! Invoking cargo for bare-metal builds.

use crate::error::Error;
use crate::paths::{IMAGE_RUSTFLAGS, IMAGE_TARGET, release_artifact};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The cargo that runs us (set by `cargo run`), so a pinned toolchain stays pinned.
pub(crate) fn cargo_command() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Our stderr as a child's stdout, so a child's output never mixes into the console
/// stream that callers print on stdout.
pub(crate) fn stderr_as_stdio() -> Result<Stdio, Error> {
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::io("cannot duplicate stderr"))?;
    Ok(Stdio::from(fd))
}

/// Build binary `bin` of `package` for the bare-metal image target, in release mode,
/// with the image rustflags and the extra environment `env`; returns the artifact.
pub(crate) fn build_bare_metal(
    workspace_root: &Path,
    package: &str,
    bin: &str,
    env: &[(&str, OsString)],
) -> Result<PathBuf, Error> {
    let mut command = cargo_command();
    command
        .current_dir(workspace_root)
        .args([
            "build",
            "--release",
            "--target",
            IMAGE_TARGET,
            "--package",
            package,
            "--bin",
            bin,
        ])
        // Explicit --target keeps these flags away from build scripts and proc-macros.
        .env("RUSTFLAGS", IMAGE_RUSTFLAGS)
        // Cargo prefers the encoded form over RUSTFLAGS; an inherited one would win.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(stderr_as_stdio()?);
    for (key, value) in env {
        command.env(key, value);
    }
    let what = format!("{package}/{bin}");
    eprintln!("cloister: building {what}");
    let status = command
        .status()
        .map_err(Error::io(format!("cannot run cargo to build {what}")))?;
    if !status.success() {
        return Err(Error::Build { what, status });
    }
    let artifact = release_artifact(workspace_root, bin);
    if !artifact.is_file() {
        return Err(Error::Io {
            context: format!("cargo built {what} but {} is missing", artifact.display()),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    Ok(artifact)
}
