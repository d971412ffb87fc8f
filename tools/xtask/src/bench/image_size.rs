//! The image's loaded size: what its PT_LOAD segments take in the file and in memory.

use cloister_core::elf::ElfImage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    /// Bytes the loader copies from the file (the segments' p_filesz).
    pub file_bytes: u64,
    /// Bytes the segments occupy once loaded, zero-filled parts included (p_memsz).
    pub memory_bytes: u64,
}

impl ImageSize {
    /// The sums over the PT_LOAD segments of the ELF `bytes`.
    pub fn of_elf(bytes: &[u8]) -> Result<ImageSize, String> {
        let elf = ElfImage::parse(bytes).map_err(|e| e.describe().to_owned())?;
        let mut size = ImageSize {
            file_bytes: 0,
            memory_bytes: 0,
        };
        for segment in elf.segments() {
            let segment = segment.map_err(|e| e.describe().to_owned())?;
            size.file_bytes += segment.data.len() as u64;
            size.memory_bytes += segment.mem_size;
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ET_EXEC x86-64 ELF with the given PT_LOAD (file size, memory size) segments
    /// and one PT_NOTE, whose size must not count.
    fn elf(segments: &[(u64, u64)]) -> Vec<u8> {
        const PHDR: usize = 56;
        let phnum = segments.len() + 1;
        let data_at = 64 + PHDR * phnum;
        let file_total: u64 = segments.iter().map(|s| s.0).sum();
        let mut b = vec![0u8; data_at + file_total as usize];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little-endian
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut offset = data_at as u64;
        for (i, &(file, mem)) in segments.iter().chain([&(0, 0x5000)]).enumerate() {
            let ph = 64 + i * PHDR;
            let kind: u32 = if i < segments.len() { 1 } else { 4 }; // PT_LOAD, PT_NOTE
            b[ph..ph + 4].copy_from_slice(&kind.to_le_bytes());
            b[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            b[ph + 24..ph + 32].copy_from_slice(&(0x10_0000 * (i as u64 + 1)).to_le_bytes());
            b[ph + 32..ph + 40].copy_from_slice(&file.to_le_bytes());
            b[ph + 40..ph + 48].copy_from_slice(&mem.to_le_bytes());
            offset += file;
        }
        b
    }

    #[test]
    fn sums_the_load_segments_in_file_and_in_memory() {
        let size = ImageSize::of_elf(&elf(&[(0x1200, 0x1200), (0x300, 0x8000)])).unwrap();
        assert_eq!(
            size,
            ImageSize {
                file_bytes: 0x1500,
                memory_bytes: 0x9200
            }
        );
    }

    #[test]
    fn a_file_that_is_not_an_image_says_why() {
        assert_eq!(
            ImageSize::of_elf(b"#!/bin/sh\n").unwrap_err(),
            "not an ELF file"
        );
    }
}
