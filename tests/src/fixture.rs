//! Test kernels for checking the runner's QEMU wiring without a hypervisor: a few
//! 32-bit instructions in an ELF that, like the image, has both a PVH note and a
//! Multiboot header, each with its own entry point; QEMU starts either in flat
//! protected mode.

use std::path::{Path, PathBuf};

/// Where the kernel is loaded: 1 MiB, clear of the low memory PVH uses.
const LOAD_ADDRESS: u32 = 0x10_0000;
const ELF_HEADER_SIZE: u32 = 52;
const PROGRAM_HEADER_SIZE: u32 = 32;
const NOTE_OFFSET: u32 = ELF_HEADER_SIZE + 2 * PROGRAM_HEADER_SIZE;
/// namesz, descsz, type, "Xen\0", the 32-bit entry point.
const NOTE_SIZE: u32 = 20;
/// 4-byte aligned, as Multiboot loaders require.
const MULTIBOOT_OFFSET: u32 = NOTE_OFFSET + NOTE_SIZE;
/// magic, flags, checksum.
const MULTIBOOT_SIZE: u32 = 12;
const CODE_OFFSET: u32 = MULTIBOOT_OFFSET + MULTIBOOT_SIZE;
/// XEN_ELFNOTE_PHYS32_ENTRY: the note that makes QEMU boot an ELF by PVH.
const PVH_ENTRY_NOTE: u32 = 18;
/// A Multiboot v1 header's first word.
const MULTIBOOT_HEADER_MAGIC: u32 = 0x1bad_b002;
/// QEMU's isa-debug-exit port, as the runner configures it.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// A straight-line program of port writes.
#[derive(Default, Clone)]
pub struct Program {
    code: Vec<u8>,
    /// The port to name the entry point on before the program runs, if any.
    protocol_report: Option<u16>,
}

impl Program {
    pub fn new() -> Program {
        Program::default()
    }

    /// Write `bytes` to the I/O port `port` one at a time (a UART's data register).
    pub fn write(mut self, port: u16, bytes: &[u8]) -> Program {
        self.mov_dx(port);
        for &byte in bytes {
            self.code.extend_from_slice(&[0xb0, byte]); // mov al, byte
            self.code.push(0xee); // out dx, al
        }
        self
    }

    /// Before the program, write `multiboot\n` or `pvh\n` to `port`: the kernel gets
    /// one entry point per protocol, as the image has, and each names itself. (The
    /// registers cannot tell: qboot, microvm's firmware, enters PVH kernels with the
    /// Multiboot magic still in EAX.)
    pub fn report_boot_protocol(mut self, port: u16) -> Program {
        self.protocol_report = Some(port);
        self
    }

    /// Code before the program, which the Multiboot entry point starts, and the offset
    /// in it of the PVH entry point. Without a report both enter the program directly.
    fn entry_stubs(&self) -> (Vec<u8>, u32) {
        let Some(port) = self.protocol_report else {
            return (Vec::new(), 0);
        };
        let pvh = Program::new().write(port, b"pvh\n").code;
        let mut stubs = Program::new().write(port, b"multiboot\n").code;
        stubs.extend_from_slice(&[0xeb, short_jump(pvh.len())]); // jmp over the PVH stub
        let pvh_entry = stubs.len();
        // Falls through into the program.
        stubs.extend_from_slice(&pvh);
        (stubs, pvh_entry as u32)
    }

    /// Make QEMU exit with status (value << 1) | 1.
    pub fn exit(mut self, value: u32) -> Program {
        self.mov_dx(DEBUG_EXIT_PORT);
        self.code.push(0xb8); // mov eax, value
        self.code.extend_from_slice(&value.to_le_bytes());
        self.code.push(0xef); // out dx, eax
        self.code.extend_from_slice(&[0xf4, 0xeb, 0xfd]); // hlt; jmp back to it
        self
    }

    /// Loop forever: a kernel that only a timeout ends.
    pub fn spin(mut self) -> Program {
        self.code.extend_from_slice(&[0xeb, 0xfe]); // jmp to itself
        self
    }

    fn mov_dx(&mut self, port: u16) {
        self.code.extend_from_slice(&[0x66, 0xba]); // mov dx, imm16
        self.code.extend_from_slice(&port.to_le_bytes());
    }

    /// The program as an ELF32 bootable by PVH and by Multiboot: one loadable segment
    /// holding the headers, the PVH note, the Multiboot header and the code, and a note
    /// segment pointing at the note. The Multiboot header has no flags, so a loader
    /// takes the load address and entry point (the Multiboot one) from the ELF header;
    /// the PVH note has its own.
    pub fn elf(&self) -> Vec<u8> {
        let (stubs, pvh_entry) = self.entry_stubs();
        let code = [stubs, self.code.clone()].concat();
        let code_len = u32::try_from(code.len()).expect("test programs are small");
        let total = CODE_OFFSET + code_len;
        let entry = LOAD_ADDRESS + CODE_OFFSET;
        let mut elf = Vec::new();
        // e_ident: magic, 32-bit, little-endian, version 1.
        elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        u16s(&mut elf, &[2, 3]); // ET_EXEC, EM_386
        u32s(&mut elf, &[1, entry, ELF_HEADER_SIZE, 0, 0]); // version, entry, phoff, shoff, flags
        u16s(
            &mut elf,
            &[
                ELF_HEADER_SIZE as u16,
                PROGRAM_HEADER_SIZE as u16,
                2,
                0,
                0,
                0,
            ],
        );
        // PT_LOAD: type, offset, vaddr, paddr, filesz, memsz, flags (R+X), align.
        u32s(
            &mut elf,
            &[1, 0, LOAD_ADDRESS, LOAD_ADDRESS, total, total, 5, 0x1000],
        );
        // PT_NOTE; QEMU insists on 4-byte alignment.
        let note = LOAD_ADDRESS + NOTE_OFFSET;
        u32s(
            &mut elf,
            &[4, NOTE_OFFSET, note, note, NOTE_SIZE, NOTE_SIZE, 4, 4],
        );
        u32s(&mut elf, &[4, 4, PVH_ENTRY_NOTE]);
        elf.extend_from_slice(b"Xen\0");
        u32s(&mut elf, &[LOAD_ADDRESS + CODE_OFFSET + pvh_entry]);
        let flags = 0u32;
        let checksum = 0u32
            .wrapping_sub(MULTIBOOT_HEADER_MAGIC)
            .wrapping_sub(flags);
        u32s(&mut elf, &[MULTIBOOT_HEADER_MAGIC, flags, checksum]);
        debug_assert_eq!(elf.len(), CODE_OFFSET as usize);
        elf.extend_from_slice(&code);
        elf
    }

    /// Write the ELF to a fresh temporary directory named after `name`, which also
    /// takes the runner's PVH copy of it.
    pub fn save(&self, name: &str) -> SavedKernel {
        let dir = TempDir::new(&format!("fixture-{name}"));
        let path = dir.path().join("kernel.elf");
        std::fs::write(&path, self.elf())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        SavedKernel { _dir: dir, path }
    }
}

/// The offset of a short jump over `len` bytes of code.
fn short_jump(len: usize) -> u8 {
    u8::try_from(len)
        .ok()
        .filter(|&offset| offset <= 127)
        .expect("a short jump reaches 127 bytes")
}

/// A saved test kernel, removed with its directory when dropped.
pub struct SavedKernel {
    _dir: TempDir,
    path: PathBuf,
}

impl SavedKernel {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn u16s(elf: &mut Vec<u8>, values: &[u16]) {
    values
        .iter()
        .for_each(|v| elf.extend_from_slice(&v.to_le_bytes()));
}

fn u32s(elf: &mut Vec<u8>, values: &[u32]) {
    values
        .iter()
        .for_each(|v| elf.extend_from_slice(&v.to_le_bytes()));
}

/// A file removed when dropped.
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub fn new(path: PathBuf) -> TempFile {
        TempFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A fresh temporary directory, removed with its contents when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("cloister-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_elf_has_its_entry_and_note_where_the_headers_say() {
        let elf = Program::new().exit(0).elf();
        let word = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(word(24), LOAD_ADDRESS + CODE_OFFSET, "e_entry");
        assert_eq!(&elf[NOTE_OFFSET as usize + 12..][..4], b"Xen\0");
        assert_eq!(
            word(NOTE_OFFSET as usize + 16),
            word(24),
            "the PVH note points at the entry"
        );
        assert_eq!(&elf[CODE_OFFSET as usize..][..4], [0x66, 0xba, 0xf4, 0x00]);
    }

    #[test]
    fn the_elf_has_a_valid_multiboot_header_in_its_first_8_kib() {
        let elf = Program::new().exit(0).elf();
        let at = MULTIBOOT_OFFSET as usize;
        let word = |i: usize| u32::from_le_bytes(elf[at + 4 * i..][..4].try_into().unwrap());
        assert_eq!(at % 4, 0);
        assert!(at + 12 <= 8192);
        assert_eq!(word(0), 0x1bad_b002);
        assert_eq!(word(0).wrapping_add(word(1)).wrapping_add(word(2)), 0);
    }

    #[test]
    fn each_protocol_enters_at_its_own_stub_before_the_program() {
        let elf = Program::new().report_boot_protocol(0x3f8).exit(0).elf();
        let word = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        let code = LOAD_ADDRESS + CODE_OFFSET;
        // The "multiboot\n" writer (34 bytes) and its jmp over the 16-byte "pvh\n" writer.
        assert_eq!(word(24), code, "e_entry, the Multiboot entry");
        assert_eq!(word(NOTE_OFFSET as usize + 16), code + 36, "the PVH entry");
        assert_eq!(elf[(CODE_OFFSET + 34) as usize..][..2], [0xeb, 16]);
        let program = (CODE_OFFSET + 36 + 16) as usize;
        assert_eq!(
            elf[program..][..4],
            [0x66, 0xba, 0xf4, 0x00],
            "then the program"
        );
    }
}
