//! The firmware's RAM map, from PVH's `hvm_start_info` or the Multiboot information.

use crate::boot::{PROTOCOL_MULTIBOOT, PROTOCOL_PVH};

const PVH_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
const MULTIBOOT_FLAG_MMAP: u32 = 1 << 6;

/// Usable RAM ranges `(base, size)` as the firmware reported them.
pub type RamMap = heapless::Vec<(u64, u64), 32>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    UnknownProtocol(u32),
    BadPvhMagic(u32),
    NoMemoryMap,
}

/// Read a `T` from physical memory.
///
/// # Safety
/// `pa` lies in the identity-mapped low 4 GiB and holds a valid `T`.
unsafe fn read<T: Copy>(pa: u64) -> T {
    // SAFETY: per the caller; the firmware structures may be unaligned.
    unsafe { core::ptr::read_unaligned(pa as *const T) }
}

/// The RAM map handed over at boot.
///
/// # Safety
/// `info` is the physical address the boot protocol passed in EBX, and the structures it
/// points to are still intact (nothing has been allocated over them).
pub unsafe fn ram_map(protocol: u32, info: u32) -> Result<RamMap, BootInfoError> {
    let info = u64::from(info);
    let mut map = RamMap::new();
    let mut add = |base: u64, size: u64, kind: u32| {
        if kind == E820_RAM && size > 0 {
            let _ = map.push((base, size));
        }
    };
    match protocol {
        PROTOCOL_PVH => {
            // SAFETY (all reads): hvm_start_info and its memmap, per the caller.
            let magic: u32 = unsafe { read(info) };
            if magic != PVH_MAGIC {
                return Err(BootInfoError::BadPvhMagic(magic));
            }
            let version: u32 = unsafe { read(info + 4) };
            let entries: u32 = unsafe { read(info + 48) };
            if version < 1 || entries == 0 {
                return Err(BootInfoError::NoMemoryMap);
            }
            let table: u64 = unsafe { read(info + 40) };
            for i in 0..u64::from(entries) {
                let entry = table + i * 24;
                unsafe { add(read(entry), read(entry + 8), read(entry + 16)) };
            }
        }
        PROTOCOL_MULTIBOOT => {
            // SAFETY (all reads): the Multiboot information and its mmap, per the caller.
            let flags: u32 = unsafe { read(info) };
            if flags & MULTIBOOT_FLAG_MMAP == 0 {
                return Err(BootInfoError::NoMemoryMap);
            }
            let length = u64::from(unsafe { read::<u32>(info + 44) });
            let start = u64::from(unsafe { read::<u32>(info + 48) });
            let mut entry = start;
            while entry < start + length {
                let size = u64::from(unsafe { read::<u32>(entry) });
                unsafe { add(read(entry + 4), read(entry + 12), read(entry + 20)) };
                entry += size + 4;
            }
        }
        other => return Err(BootInfoError::UnknownProtocol(other)),
    }
    Ok(map)
}

/// Whether `[base, base + size)` lies inside one RAM range of `map`.
pub fn is_ram(map: &RamMap, base: u64, size: u64) -> bool {
    map.iter()
        .any(|&(b, s)| base >= b && base.checked_add(size).is_some_and(|end| end <= b + s))
}
