//! The workload boot protocol: the state a workload finds at its first instruction.
//!
//! The workload is an ELF64 x86-64 image whose loadable segments lie in private memory.
//! It starts at its ELF entry point in 64-bit long mode with:
//! - RDI = [`BOOT_INFO_GPA`], the guest-physical (and virtual) address of a [`BootInfo`];
//! - RSP = [`STACK_TOP_GPA`]; the stack is ordinary private memory below it;
//! - CR3 = [`PAGE_TABLES_GPA`]: an identity map of the low 512 GiB of guest-physical
//!   space with 1 GiB pages (read/write/execute, write-back). Only the regions listed in
//!   the boot info are memory; touching anything else stops the workload;
//! - CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = LME|LMA|NXE (on SVM
//!   also SVME, which VMRUN requires; the SVM instructions themselves are intercepted);
//! - RFLAGS = 0x2 (interrupts off), every other GPR zero, x87/SSE in their reset state;
//! - CS a flat 64-bit code segment, DS/ES/SS/FS/GS flat data, GDTR and IDTR empty.
//!   A workload that wants to handle its own exceptions loads its own GDT and IDT;
//!   without one, any exception escalates to a triple fault and the workload stops.

/// Guest-physical address of the [`BootInfo`] page.
pub const BOOT_INFO_GPA: u64 = 0x1000;
/// Guest-physical address of the PML4 the workload starts with (the PDPT follows it).
pub const PAGE_TABLES_GPA: u64 = 0x2000;
/// Initial stack pointer. The stack grows down through private memory from here and is
/// populated on demand; the boot pages above stay reserved.
pub const STACK_TOP_GPA: u64 = 0x20_0000;
/// Lowest address a workload image may load at: below it lie the boot info, page tables
/// and stack.
pub const IMAGE_MIN_GPA: u64 = 0x20_0000;
/// Guest-physical space covered by the initial identity map.
pub const IDENTITY_MAP_LIMIT: u64 = 512 << 30;

/// `BootInfo::magic`: "CLOISTER" in little-endian ASCII.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"CLOISTER");
/// Capacity of [`BootInfo::regions`].
pub const MAX_REGIONS: usize = 16;
/// Capacity of [`BootInfo::name`] in bytes (UTF-8, NUL padded).
pub const NAME_LEN: usize = 32;

/// Who may read a region: the workload alone, or the workload and the hypervisor.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Confidential: the hypervisor never reads it once the workload runs.
    Private = 1,
    /// Visible to the hypervisor; hypercall buffers live here.
    Shared = 2,
}

impl MemoryKind {
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Private),
            2 => Some(Self::Shared),
            _ => None,
        }
    }
}

/// One guest-physical memory region.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub gpa: u64,
    pub size: u64,
    /// A [`MemoryKind`] as its raw value.
    pub kind: u32,
    pub reserved: u32,
}

impl MemoryRegion {
    pub const EMPTY: Self = Self {
        gpa: 0,
        size: 0,
        kind: 0,
        reserved: 0,
    };

    pub fn kind(&self) -> Option<MemoryKind> {
        MemoryKind::from_raw(self.kind)
    }

    pub fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.gpa && len <= self.size && gpa - self.gpa <= self.size - len
    }
}

/// What the hypervisor tells the workload at boot. Written into private memory at
/// [`BOOT_INFO_GPA`] before the first instruction, so it is part of the launch image.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`crate::ABI_VERSION`] of the hypervisor.
    pub abi_version: u32,
    /// Number of valid entries in `regions`.
    pub region_count: u32,
    /// Bit i set: hypercall number i is permitted for this workload.
    pub allowed_calls: u64,
    /// `FEATURE_*` bits of [`crate::hypercall`] the hypervisor implements.
    pub features: u64,
    /// Workload name from the configuration, UTF-8, NUL padded.
    pub name: [u8; NAME_LEN],
    /// The guest-physical memory map, sorted by address, non-overlapping.
    pub regions: [MemoryRegion; MAX_REGIONS],
}

impl BootInfo {
    pub fn regions(&self) -> &[MemoryRegion] {
        let count = (self.region_count as usize).min(MAX_REGIONS);
        &self.regions[..count]
    }

    /// The first shared region, where hypercall buffers go.
    pub fn shared_region(&self) -> Option<&MemoryRegion> {
        self.regions()
            .iter()
            .find(|r| r.kind() == Some(MemoryKind::Shared))
    }

    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// Size of the encoded [`BootInfo`] (its `repr(C)` size).
pub const BOOT_INFO_SIZE: usize = 64 + MAX_REGIONS * 24;
const _: () = assert!(core::mem::size_of::<BootInfo>() == BOOT_INFO_SIZE);
const _: () = assert!(BOOT_INFO_SIZE <= crate::PAGE_SIZE as usize);

impl BootInfo {
    /// The `repr(C)` byte image of `self`, for a writer that must not cast pointers.
    pub fn to_bytes(&self) -> [u8; BOOT_INFO_SIZE] {
        let mut out = [0u8; BOOT_INFO_SIZE];
        out[0..8].copy_from_slice(&self.magic.to_le_bytes());
        out[8..12].copy_from_slice(&self.abi_version.to_le_bytes());
        out[12..16].copy_from_slice(&self.region_count.to_le_bytes());
        out[16..24].copy_from_slice(&self.allowed_calls.to_le_bytes());
        out[24..32].copy_from_slice(&self.features.to_le_bytes());
        out[32..64].copy_from_slice(&self.name);
        for (i, r) in self.regions.iter().enumerate() {
            let at = 64 + i * 24;
            out[at..at + 8].copy_from_slice(&r.gpa.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&r.size.to_le_bytes());
            out[at + 16..at + 20].copy_from_slice(&r.kind.to_le_bytes());
            out[at + 20..at + 24].copy_from_slice(&r.reserved.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_contains_rejects_wrapping_and_oversized_ranges() {
        let r = MemoryRegion {
            gpa: 0x1000,
            size: 0x2000,
            kind: 2,
            reserved: 0,
        };
        assert!(r.contains(0x1000, 0x2000));
        assert!(r.contains(0x2fff, 1));
        assert!(!r.contains(0x2fff, 2));
        assert!(!r.contains(0xfff, 1));
        assert!(!r.contains(u64::MAX, 2));
        assert!(!r.contains(0x1000, u64::MAX));
    }

    #[test]
    fn boot_info_finds_shared_region_and_name() {
        let mut info = BootInfo {
            magic: BOOT_INFO_MAGIC,
            abi_version: crate::ABI_VERSION,
            region_count: 2,
            allowed_calls: 0,
            features: 0,
            name: [0; NAME_LEN],
            regions: [MemoryRegion::EMPTY; MAX_REGIONS],
        };
        info.name[..4].copy_from_slice(b"demo");
        info.regions[0] = MemoryRegion {
            gpa: 0,
            size: 1 << 26,
            kind: 1,
            reserved: 0,
        };
        info.regions[1] = MemoryRegion {
            gpa: 1 << 30,
            size: 1 << 21,
            kind: 2,
            reserved: 0,
        };
        assert_eq!(info.shared_region().unwrap().gpa, 1 << 30);
        assert_eq!(info.name(), "demo");
        info.region_count = 1;
        assert!(info.shared_region().is_none());
    }

    #[test]
    fn encoding_matches_the_repr_c_layout() {
        let mut info = BootInfo {
            magic: BOOT_INFO_MAGIC,
            abi_version: 0x0001_0002,
            region_count: 1,
            allowed_calls: 0b110,
            features: 1,
            name: [b'x'; NAME_LEN],
            regions: [MemoryRegion::EMPTY; MAX_REGIONS],
        };
        info.regions[MAX_REGIONS - 1] = MemoryRegion {
            gpa: 7,
            size: 9,
            kind: 2,
            reserved: 3,
        };
        let bytes = info.to_bytes();
        assert_eq!(core::mem::offset_of!(BootInfo, regions), 64);
        assert_eq!(core::mem::offset_of!(BootInfo, features), 24);
        assert_eq!(u64::from_le_bytes(bytes[24..32].try_into().unwrap()), 1);
        assert_eq!(&bytes[..8], b"CLOISTER");
        assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 0b110);
        let last = 64 + (MAX_REGIONS - 1) * 24;
        assert_eq!(
            u64::from_le_bytes(bytes[last..last + 8].try_into().unwrap()),
            7
        );
        assert_eq!(
            u32::from_le_bytes(bytes[last + 16..last + 20].try_into().unwrap()),
            2
        );
    }
}
