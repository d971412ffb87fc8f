//! The workload image as far as it can be known without building: a file the
//! configuration names, or a package binary some earlier build left behind.

use cloister_config::Config;
use cloister_core::elf::ElfImage;
use cloister_runner::{Error, workload_elf_path};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadImage {
    /// Not there: a package binary not built yet, or a named file that is missing.
    Absent {
        path: PathBuf,
    },
    Present(PresentImage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentImage {
    pub path: PathBuf,
    pub bytes: u64,
    /// `None` when the file is not an ELF the hypervisor can load (see `problems`).
    pub entry: Option<u64>,
    pub segments: Vec<LoadSegment>,
    /// What `cloister_config::check_image` finds wrong, each problem fully rendered.
    pub problems: Vec<String>,
}

/// A PT_LOAD segment: `file_size` bytes from the file at `gpa`, zeros up to `mem_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    pub gpa: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

impl WorkloadImage {
    /// Look for the workload image of `config` (read from `config_path`) without
    /// building anything.
    pub fn find(
        workspace_root: &Path,
        config_path: &Path,
        config: &Config,
    ) -> Result<WorkloadImage, Error> {
        let path = workload_elf_path(workspace_root, config_path, config);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(WorkloadImage::Absent { path });
            }
            Err(source) => {
                return Err(Error::Io {
                    context: format!("cannot read {}", path.display()),
                    source,
                });
            }
        };
        Ok(WorkloadImage::Present(PresentImage::read(
            path,
            &bytes,
            config_path,
            config,
        )))
    }
}

impl PresentImage {
    /// Describe the image `bytes` found at `path` and check it against `config`.
    pub fn read(path: PathBuf, bytes: &[u8], config_path: &Path, config: &Config) -> Self {
        let elf = ElfImage::parse(bytes).ok();
        // Malformed segments are left out here; the check below reports them.
        let segments = elf
            .iter()
            .flat_map(|elf| elf.segments().filter_map(Result::ok))
            .map(|s| LoadSegment {
                gpa: s.gpa,
                file_size: s.data.len() as u64,
                mem_size: s.mem_size,
            })
            .collect();
        let problems = match cloister_config::check_image(config_path, config, bytes) {
            Ok(()) => Vec::new(),
            Err(report) => report.problems,
        };
        PresentImage {
            path,
            bytes: bytes.len() as u64,
            entry: elf.map(|elf| elf.entry),
            segments,
            problems,
        }
    }
}
