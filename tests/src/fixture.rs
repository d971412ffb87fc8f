//! Test kernels for checking the runner's QEMU wiring without a hypervisor: a few
//! 32-bit instructions in a PVH ELF, which QEMU starts in flat protected mode.

use std::path::{Path, PathBuf};

/// Where the kernel is loaded: 1 MiB, clear of the low memory PVH uses.
const LOAD_ADDRESS: u32 = 0x10_0000;
const ELF_HEADER_SIZE: u32 = 52;
const PROGRAM_HEADER_SIZE: u32 = 32;
const NOTE_OFFSET: u32 = ELF_HEADER_SIZE + 2 * PROGRAM_HEADER_SIZE;
/// namesz, descsz, type, "Xen\0", the 32-bit entry point.
const NOTE_SIZE: u32 = 20;
const CODE_OFFSET: u32 = NOTE_OFFSET + NOTE_SIZE;
/// XEN_ELFNOTE_PHYS32_ENTRY: the note that makes QEMU boot an ELF by PVH.
const PVH_ENTRY_NOTE: u32 = 18;
/// QEMU's isa-debug-exit port, as the runner configures it.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// A straight-line program of port writes.
#[derive(Default, Clone)]
pub struct Program {
    code: Vec<u8>,
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

    /// The program as a PVH-bootable ELF32: one loadable segment holding the headers,
    /// the PVH note and the code, and a note segment pointing at the note.
    pub fn elf(&self) -> Vec<u8> {
        let code_len = u32::try_from(self.code.len()).expect("test programs are small");
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
        u32s(&mut elf, &[entry]);
        debug_assert_eq!(elf.len(), CODE_OFFSET as usize);
        elf.extend_from_slice(&self.code);
        elf
    }

    /// Write the ELF to a fresh temporary file named after `name`.
    pub fn save(&self, name: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "cloister-fixture-{}-{name}.elf",
            std::process::id()
        ));
        std::fs::write(&path, self.elf())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        TempFile { path }
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
}
