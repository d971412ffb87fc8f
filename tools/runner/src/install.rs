//! Making sure QEMU is there. It is not on a fresh machine, and CI runs as root, so the
//! runner installs it itself when it can rather than failing every QEMU test.

use crate::cargo::stderr_as_stdio;
use crate::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// The emulator the runner boots images in.
pub const QEMU: &str = "qemu-system-x86_64";

/// Path of QEMU, installing Debian's package first if QEMU is missing and this process
/// may install it (root, with apt-get). Otherwise an error that gives the command.
///
/// Callers in one process (parallel tests) take turns, so only one of them installs.
pub fn ensure_qemu() -> Result<PathBuf, Error> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    // A panic elsewhere while holding the lock leaves nothing half-done that matters.
    let _turn = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(qemu) = find_in_path(QEMU) {
        return Ok(qemu);
    }
    if !is_root() || find_in_path("apt-get").is_none() {
        return Err(Error::QemuMissing { detail: None });
    }
    eprintln!("cloister: {QEMU} is missing; installing qemu-system-x86 with apt-get");
    apt_get(&["update"])?;
    apt_get(&["install", "-y", "qemu-system-x86"])?;
    find_in_path(QEMU).ok_or(Error::QemuMissing {
        detail: Some("apt-get installed qemu-system-x86 but it is still not on PATH".into()),
    })
}

/// Run apt-get with its output on stderr, so stdout stays the console's.
fn apt_get(args: &[&str]) -> Result<(), Error> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(stderr_as_stdio()?)
        .status()
        .map_err(Error::io("cannot run apt-get"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::QemuMissing {
            detail: Some(format!("`apt-get {}` failed: {status}", args.join(" "))),
        })
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The first executable file named `program` in PATH.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_not_others() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("cloister-no-such-program").is_none());
    }

    #[test]
    fn the_missing_qemu_message_gives_the_install_command() {
        let message = Error::QemuMissing { detail: None }.to_string();
        assert!(
            message.contains("sudo apt-get install -y qemu-system-x86"),
            "{message}"
        );
    }
}
