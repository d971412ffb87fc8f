//! Host-side tooling for Cloister: build a bootable image for an appliance
//! configuration, boot it in QEMU, and report what happened.
//!
//! A run is bounded: every QEMU process gets a timeout (unless a debugger is attached)
//! and is killed with its process group on every path out, including a panic or the
//! death of the calling process.
//!
//! The QEMU machine has two 16550 UARTs: the hypervisor's text console (which also
//! carries the workload's output and ends with the [`Summary`] line) and a binary channel
//! of defmt log frames, decoded here against the image's symbols.
//!
//! Images carry both a Multiboot header and a PVH note; QEMU prefers Multiboot, so a PVH
//! boot (the default, see [`BootProtocol`]) boots a copy with the Multiboot header hidden.

mod accel;
mod boot_elf;
mod build_options;
mod cargo;
mod command;
mod console;
mod defmt_log;
mod error;
mod image;
mod install;
mod log_file;
mod multiboot_header;
mod options;
mod outcome;
mod paths;
mod process;
mod qemu_stderr;
mod run;
mod summary;
mod workload;

pub use accel::Accel;
pub use build_options::{BuildOptions, Selftest};
pub use defmt_log::{LogLevel, LogLine};
pub use error::Error;
pub use image::{
    BuiltImage, build_image, build_image_with, memory_mib, prebuilt_image, prebuilt_image_with,
};
pub use install::{QEMU, ensure_qemu};
pub use options::{BootProtocol, Machine, RunOptions};
pub use outcome::Outcome;
pub use paths::{images_dir, target_dir};
pub use run::{RunResult, run, run_elf};
pub use summary::{Summary, WorkloadEnd};
pub use workload::workload_elf_path;
