//! QEMU's command line for one run.
//!
//! Both UARTs are explicit `isa-serial` devices rather than `-serial` options: microvm
//! creates an ISA UART only for the first `-serial` (a second one is silently left
//! unconnected), while explicit devices work the same on microvm and pc and let the
//! I/O ports follow the configuration.

use crate::accel::Accel;
use crate::error::Error;
use crate::options::Machine;
use std::ffi::OsString;
use std::path::Path;

/// Port of QEMU's isa-debug-exit device: writing V there makes QEMU exit with (V<<1)|1.
const DEBUG_EXIT: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// The TCP port of QEMU's gdb server (`-s`).
pub(crate) const GDB_PORT: u16 = 1234;

#[derive(Debug, Clone)]
pub(crate) struct QemuInvocation<'a> {
    pub elf: &'a Path,
    pub memory_mib: u64,
    pub machine: Machine,
    pub accel: Accel,
    pub icount: bool,
    pub gdb: bool,
    /// I/O port of the text console UART; QEMU's stdout carries it.
    pub console_port: u64,
    /// I/O port of the defmt UART; QEMU writes it to `log_file`.
    pub log_port: u64,
    pub log_file: &'a Path,
    pub extra_args: &'a [String],
}

impl QemuInvocation<'_> {
    /// Arguments after the program name.
    pub fn args(&self) -> Result<Vec<OsString>, Error> {
        // icount is a TCG feature; KVM would reject it.
        let accel = if self.icount { Accel::Tcg } else { self.accel };
        let log_file = self.log_file.to_str().ok_or_else(|| Error::NonUtf8Path {
            path: self.log_file.to_path_buf(),
            why: "QEMU takes it inside an option string",
        })?;
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&["-nodefaults", "-machine", self.machine.as_str()]);
        push(&accel.args());
        push(&["-m", &format!("{}M", self.memory_mib)]);
        push(&[
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
            "-device",
            DEBUG_EXIT,
        ]);
        push(&["-chardev", "stdio,id=console"]);
        push(&[
            "-device",
            &format!(
                "isa-serial,chardev=console,iobase={:#x},irq=4",
                self.console_port
            ),
        ]);
        push(&[
            "-chardev",
            &format!("file,id=log,path={}", escape_option_value(log_file)),
        ]);
        push(&[
            "-device",
            &format!("isa-serial,chardev=log,iobase={:#x},irq=3", self.log_port),
        ]);
        if self.icount {
            push(&["-icount", "shift=0,sleep=off"]);
        }
        if self.gdb {
            push(&["-s", "-S"]);
        }
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        push(&extra);
        // Last, and not through the option parser, so any path works.
        args.push("-kernel".into());
        args.push(self.elf.into());
        Ok(args)
    }
}

/// QEMU splits option strings at commas; a literal comma is written twice.
fn escape_option_value(value: &str) -> String {
    value.replace(',', ",,")
}

/// `program args...` as a shell would need it typed, for messages.
pub(crate) fn shell_line(program: &str, args: &[OsString]) -> String {
    std::iter::once(program.to_owned())
        .chain(args.iter().map(|arg| shell_quote(&arg.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command that attaches gdb to a run started with `gdb`.
pub(crate) fn gdb_attach_command(elf: &Path) -> String {
    format!(
        "gdb {} -ex 'target remote :{GDB_PORT}'",
        shell_quote(&elf.to_string_lossy())
    )
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation<'a>(extra: &'a [String]) -> QemuInvocation<'a> {
        QemuInvocation {
            elf: Path::new("/t/images/default.elf"),
            memory_mib: 512,
            machine: Machine::Microvm,
            accel: Accel::Tcg,
            icount: false,
            gdb: false,
            console_port: 0x3f8,
            log_port: 0x2f8,
            log_file: Path::new("/t/default.defmt"),
            extra_args: extra,
        }
    }

    fn line(inv: &QemuInvocation) -> String {
        shell_line("qemu-system-x86_64", &inv.args().unwrap())
    }

    #[test]
    fn the_default_command_line_has_both_uarts_and_the_exit_device() {
        assert_eq!(
            line(&invocation(&[])),
            "qemu-system-x86_64 -nodefaults -machine microvm -accel tcg -cpu EPYC,+svm,+npt -m 512M \
             -display none -no-reboot -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -chardev stdio,id=console -device isa-serial,chardev=console,iobase=0x3f8,irq=4 \
             -chardev file,id=log,path=/t/default.defmt -device isa-serial,chardev=log,iobase=0x2f8,irq=3 \
             -kernel /t/images/default.elf"
        );
    }

    #[test]
    fn options_add_their_arguments() {
        let extra = vec!["-d".to_owned(), "int".to_owned()];
        let mut inv = invocation(&extra);
        inv.machine = Machine::Pc;
        inv.accel = Accel::Kvm;
        inv.gdb = true;
        inv.memory_mib = 4096;
        let text = line(&inv);
        assert!(
            text.contains("-machine pc -accel kvm -cpu host -m 4096M"),
            "{text}"
        );
        assert!(text.contains("-s -S -d int -kernel"), "{text}");
        assert!(!text.contains("-icount"), "{text}");
    }

    #[test]
    fn icount_forces_tcg() {
        let mut inv = invocation(&[]);
        inv.accel = Accel::Kvm;
        inv.icount = true;
        let text = line(&inv);
        assert!(text.contains("-accel tcg -cpu EPYC,+svm,+npt"), "{text}");
        assert!(text.contains("-icount shift=0,sleep=off"), "{text}");
    }

    #[test]
    fn ports_follow_the_configuration() {
        let mut inv = invocation(&[]);
        inv.console_port = 0x3e8;
        inv.log_port = 0x2e8;
        let text = line(&inv);
        assert!(
            text.contains("chardev=console,iobase=0x3e8,")
                && text.contains("chardev=log,iobase=0x2e8,"),
            "{text}"
        );
    }

    #[test]
    fn commas_in_the_log_path_are_escaped_for_qemu() {
        let mut inv = invocation(&[]);
        inv.log_file = Path::new("/t/a,b.defmt");
        let args = inv.args().unwrap();
        assert!(
            args.contains(&OsString::from("file,id=log,path=/t/a,,b.defmt")),
            "{args:?}"
        );
    }

    #[test]
    fn a_non_utf8_log_path_is_an_error_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let mut inv = invocation(&[]);
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/t/\xff.defmt"));
        inv.log_file = path;
        assert!(matches!(inv.args(), Err(Error::NonUtf8Path { .. })));
    }

    #[test]
    fn the_gdb_command_is_ready_to_paste() {
        assert_eq!(
            gdb_attach_command(Path::new("/t/default.elf")),
            "gdb /t/default.elf -ex 'target remote :1234'"
        );
        assert_eq!(
            gdb_attach_command(Path::new("/my dir/x.elf")),
            "gdb '/my dir/x.elf' -ex 'target remote :1234'"
        );
    }
}
