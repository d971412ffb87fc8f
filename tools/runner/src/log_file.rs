//! The file QEMU writes the log UART to.

use crate::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The caller's file, or a temporary one that is removed after the run.
pub(crate) struct LogFile {
    pub path: PathBuf,
    temporary: bool,
}

impl LogFile {
    /// Create (or empty) the file before QEMU starts, so the log tail can open it at once.
    pub fn create(path: Option<PathBuf>) -> Result<LogFile, Error> {
        // Tests boot in parallel threads of one process: the pid alone is not unique.
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let temporary = path.is_none();
        let path = path.unwrap_or_else(|| {
            let run = RUNS.fetch_add(1, Ordering::Relaxed);
            std::env::temp_dir().join(format!("cloister-{}-{run}.defmt", std::process::id()))
        });
        std::fs::File::create(&path)
            .map_err(Error::io(format!("cannot create {}", path.display())))?;
        Ok(LogFile { path, temporary })
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_log_files_are_unique_and_removed() {
        let (a, b) = (
            LogFile::create(None).unwrap(),
            LogFile::create(None).unwrap(),
        );
        assert_ne!(a.path, b.path);
        let path = a.path.clone();
        assert!(path.is_file());
        drop(a);
        assert!(!path.exists());
    }
}
