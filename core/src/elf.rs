//! Just enough ELF64 to load a workload image: header checks and PT_LOAD segments.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ElfError {
    /// Shorter than its headers claim.
    Truncated,
    NotElf,
    /// Not ELF64, little-endian, x86-64.
    WrongArchitecture,
    /// Not an executable (ET_EXEC): relocatable and shared objects are not loaded.
    NotExecutable,
    /// A segment's file size exceeds its memory size, or its addresses wrap.
    BadSegment {
        index: usize,
    },
}

impl ElfError {
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Truncated => "truncated ELF file",
            Self::NotElf => "not an ELF file",
            Self::WrongArchitecture => "not an ELF64 little-endian x86-64 file",
            Self::NotExecutable => "not an executable ELF (ET_EXEC)",
            Self::BadSegment { .. } => "malformed PT_LOAD segment",
        }
    }
}

/// A loadable segment: `data` goes at `gpa`, the rest up to `mem_size` is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub gpa: u64,
    pub data: &'a [u8],
    pub mem_size: u64,
}

pub struct ElfImage<'a> {
    bytes: &'a [u8],
    pub entry: u64,
    phoff: usize,
    phnum: usize,
}

const PT_LOAD: u32 = 1;
const PHDR_SIZE: usize = 56;

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    let s = b.get(at..at + 2).ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    let s = b.get(at..at + 4).ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    Ok(u64::from(u32_at(b, at)?) | (u64::from(u32_at(b, at + 4)?) << 32))
}

impl<'a> ElfImage<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(if bytes.len() < 4 {
                ElfError::Truncated
            } else {
                ElfError::NotElf
            });
        }
        // EI_CLASS = ELFCLASS64, EI_DATA = little-endian, e_machine = EM_X86_64.
        if bytes.get(4..6) != Some([2u8, 1].as_slice()) || u16_at(bytes, 18)? != 62 {
            return Err(ElfError::WrongArchitecture);
        }
        if u16_at(bytes, 16)? != 2 {
            return Err(ElfError::NotExecutable);
        }
        let phoff = usize::try_from(u64_at(bytes, 32)?).map_err(|_| ElfError::Truncated)?;
        let phnum = usize::from(u16_at(bytes, 56)?);
        let table_end = phnum
            .checked_mul(PHDR_SIZE)
            .and_then(|n| n.checked_add(phoff));
        if table_end.is_none_or(|end| end > bytes.len()) {
            return Err(ElfError::Truncated);
        }
        Ok(Self {
            bytes,
            entry: u64_at(bytes, 24)?,
            phoff,
            phnum,
        })
    }

    /// The PT_LOAD segments in file order.
    pub fn segments(&self) -> impl Iterator<Item = Result<Segment<'a>, ElfError>> + '_ {
        (0..self.phnum).filter_map(move |index| self.segment(index).transpose())
    }

    fn segment(&self, index: usize) -> Result<Option<Segment<'a>>, ElfError> {
        let ph = self.phoff + index * PHDR_SIZE;
        if u32_at(self.bytes, ph)? != PT_LOAD {
            return Ok(None);
        }
        let bad = ElfError::BadSegment { index };
        let offset = u64_at(self.bytes, ph + 8)?;
        let gpa = u64_at(self.bytes, ph + 24)?; // p_paddr: the workload is identity mapped
        let file_size = u64_at(self.bytes, ph + 32)?;
        let mem_size = u64_at(self.bytes, ph + 40)?;
        if file_size > mem_size || gpa.checked_add(mem_size).is_none() {
            return Err(bad);
        }
        let start = usize::try_from(offset).map_err(|_| bad)?;
        let end = usize::try_from(file_size)
            .ok()
            .and_then(|n| n.checked_add(start))
            .ok_or(bad)?;
        let data = self.bytes.get(start..end).ok_or(ElfError::Truncated)?;
        Ok(Some(Segment {
            gpa,
            data,
            mem_size,
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// A minimal ET_EXEC image with one PT_LOAD segment of `data` at `gpa`.
    pub(crate) fn build_elf(entry: u64, gpa: u64, data: &[u8], mem_size: u64) -> Vec<u8> {
        let mut b = std::vec![0u8; 64 + PHDR_SIZE];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&((64 + PHDR_SIZE) as u64).to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&gpa.to_le_bytes());
        b[ph + 24..ph + 32].copy_from_slice(&gpa.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&mem_size.to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_entry_and_load_segment() {
        let elf = build_elf(0x20_0010, 0x20_0000, b"code", 0x2000);
        let image = ElfImage::parse(&elf).unwrap();
        assert_eq!(image.entry, 0x20_0010);
        let segs: Vec<_> = image.segments().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            segs,
            [Segment {
                gpa: 0x20_0000,
                data: b"code",
                mem_size: 0x2000
            }]
        );
    }

    #[test]
    fn rejects_malformed_images_with_named_errors() {
        assert_eq!(ElfImage::parse(b"\x7fEL").err(), Some(ElfError::Truncated));
        assert_eq!(
            ElfImage::parse(b"MZ\x90\x00rest").err(),
            Some(ElfError::NotElf)
        );
        let mut elf = build_elf(0, 0x20_0000, b"x", 1);
        elf[4] = 1; // 32-bit
        assert_eq!(
            ElfImage::parse(&elf).err(),
            Some(ElfError::WrongArchitecture)
        );
        let mut elf = build_elf(0, 0x20_0000, b"x", 1);
        elf[16] = 3; // ET_DYN
        assert_eq!(ElfImage::parse(&elf).err(), Some(ElfError::NotExecutable));
        let elf = build_elf(0, 0x20_0000, b"abcd", 2); // file size > memory size
        let image = ElfImage::parse(&elf).unwrap();
        assert_eq!(
            image.segments().next(),
            Some(Err(ElfError::BadSegment { index: 0 }))
        );
        let mut elf = build_elf(0, 0x20_0000, b"abcd", 4);
        elf.truncate(elf.len() - 1);
        let image = ElfImage::parse(&elf).unwrap();
        assert_eq!(image.segments().next(), Some(Err(ElfError::Truncated)));
    }
}
