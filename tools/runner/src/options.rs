//! How to boot an image.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The QEMU machine type. Both boot the same image; microvm skips the BIOS, so it
/// starts in milliseconds, and `pc` checks that nothing depends on microvm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    #[default]
    Microvm,
    Pc,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Machine {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "microvm" => Ok(Machine::Microvm),
            "pc" => Ok(Machine::Pc),
            other => Err(format!(
                "unknown machine {other:?} (expected \"microvm\" or \"pc\")"
            )),
        }
    }
}

/// How QEMU enters the image. The image carries both a Multiboot v1 header and a PVH
/// ELF note, and QEMU's `-kernel` loader tries Multiboot first; so Multiboot boots the
/// ELF as built and PVH boots a copy whose Multiboot header is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootProtocol {
    /// Xen's PVH entry (the `XEN_ELFNOTE_PHYS32_ENTRY` note), which direct-boot VMMs
    /// such as QEMU, Firecracker and cloud-hypervisor support.
    #[default]
    Pvh,
    /// Multiboot v1, which GRUB and QEMU support.
    Multiboot,
}

impl BootProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            BootProtocol::Pvh => "pvh",
            BootProtocol::Multiboot => "multiboot",
        }
    }
}

impl fmt::Display for BootProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BootProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pvh" => Ok(BootProtocol::Pvh),
            "multiboot" => Ok(BootProtocol::Multiboot),
            other => Err(format!(
                "unknown boot protocol {other:?} (expected \"pvh\" or \"multiboot\")"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub machine: Machine,
    pub boot: BootProtocol,
    /// Deterministic execution (`-icount shift=0,sleep=off`): one guest TSC tick per
    /// instruction. Forces TCG, which is the only accelerator that supports it.
    pub icount: bool,
    /// Start halted with a gdb server on :1234 and no timeout.
    pub gdb: bool,
    /// QEMU is killed when this runs out (ignored with `gdb`).
    pub timeout: Duration,
    /// Guest RAM in MiB instead of the configuration's, used as given: no minimum, so a
    /// run can have less RAM than the configuration declares (the boot then stops on
    /// the pool placement check).
    pub memory_mib: Option<u64>,
    /// Stream the console to stdout and the decoded log to stderr while QEMU runs. The
    /// summary line is held back, for the caller to print last.
    pub echo: bool,
    /// Appended to QEMU's command line as they are.
    pub extra_qemu_args: Vec<String>,
    /// Where QEMU writes the raw defmt frames; a temporary file, removed after the run,
    /// when `None`.
    pub log_file: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            machine: Machine::Microvm,
            boot: BootProtocol::Pvh,
            icount: false,
            gdb: false,
            timeout: Duration::from_secs(60),
            memory_mib: None,
            echo: false,
            extra_qemu_args: Vec::new(),
            log_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_parse_from_their_qemu_names() {
        assert_eq!("microvm".parse(), Ok(Machine::Microvm));
        assert_eq!("pc".parse(), Ok(Machine::Pc));
        assert!("q35".parse::<Machine>().unwrap_err().contains("\"q35\""));
    }

    #[test]
    fn boot_protocols_parse_from_their_names_and_pvh_is_the_default() {
        for protocol in [BootProtocol::Pvh, BootProtocol::Multiboot] {
            assert_eq!(protocol.as_str().parse(), Ok(protocol));
        }
        assert!(
            "PVH"
                .parse::<BootProtocol>()
                .unwrap_err()
                .contains("\"PVH\"")
        );
        assert_eq!(RunOptions::default().boot, BootProtocol::Pvh);
    }
}
