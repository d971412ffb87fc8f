//! A QEMU child process that cannot outlive its run.
//!
//! QEMU gets its own process group, so a kill reaches anything it started, and a
//! parent-death signal, so it dies with the thread that started it even when that
//! process is killed outright (Ctrl-C on `cargo xtask run`, a test harness timeout).
//! Dropping a [`QemuProcess`] that has not been reaped kills the group.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often to check for QEMU's exit; also the most a finished run waits extra.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub(crate) struct QemuProcess {
    child: Child,
    status: Option<ExitStatus>,
}

impl QemuProcess {
    /// Start `command` in a new process group with stdin closed: QEMU must never read
    /// the terminal (a background group that does is stopped by SIGTTIN).
    pub fn spawn(mut command: Command) -> io::Result<QemuProcess> {
        let parent = std::process::id() as libc::pid_t;
        command.stdin(Stdio::null()).process_group(0);
        // SAFETY: the closure only makes async-signal-safe system calls and builds an
        // io::Error from an errno, which does not allocate.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            })
        };
        let child = command.spawn()?;
        Ok(QemuProcess {
            child,
            status: None,
        })
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Wait for QEMU to exit, until `deadline` if there is one. `Ok(None)`: still
    /// running at the deadline.
    pub fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                return Ok(Some(status));
            }
            let pause = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(POLL_INTERVAL),
                    _ => return Ok(None),
                },
                None => POLL_INTERVAL,
            };
            std::thread::sleep(pause);
        }
    }

    /// Kill QEMU's process group and reap QEMU. Does nothing once QEMU has been reaped:
    /// its pid, and so the group id, may then belong to someone else.
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions. The group id is QEMU's pid,
        // which stays ours until we reap it below.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        // If the group kill failed (it cannot, short of a kernel oddity), make sure.
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn a_deadline_stops_the_wait_and_drop_kills_the_group() {
        let mut command = Command::new("sh");
        // A grandchild in the same group, which a kill of the pid alone would leave.
        command
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped());
        let mut process = QemuProcess::spawn(command).unwrap();
        let mut line = String::new();
        let stdout = process.child_mut().stdout.take().unwrap();
        io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line).unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let pid = process.child_mut().id();
        let started = Instant::now();
        assert_eq!(
            process
                .wait_until(Some(Instant::now() + Duration::from_millis(100)))
                .unwrap(),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(process);
        assert!(!is_alive(pid), "the child is reaped");
        // The grandchild is not ours to reap, so killed it may stay a zombie a while.
        let dead = || match std::fs::read_to_string(format!("/proc/{grandchild}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dead(), "the grandchild in QEMU's group survived");
    }

    #[test]
    fn an_exit_is_reported_with_its_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 5"]);
        let mut process = QemuProcess::spawn(command).unwrap();
        let status = process.wait_until(None).unwrap().unwrap();
        assert_eq!(status.code(), Some(5));
    }
}
