//! Entry encodings of the hypervisor's tables, through the `x86` crate's paging types so
//! the bit positions are not spelled out here. Every entry is present, writable,
//! supervisor-only and write-back (PWT, PCD and PAT clear).

use x86::bits64::paging::{
    PAddr, PDEntry, PDFlags, PDPTEntry, PDPTFlags, PML4Entry, PML4Flags, PTEntry, PTFlags,
};

/// PML4 entry pointing at the PDPT at `pa`.
pub(super) fn pml4_table(pa: u64) -> u64 {
    PML4Entry::new(PAddr::from(pa), PML4Flags::P | PML4Flags::RW).0
}

/// PDPT entry pointing at the page directory at `pa`.
pub(super) fn pdpt_table(pa: u64) -> u64 {
    PDPTEntry::new(PAddr::from(pa), PDPTFlags::P | PDPTFlags::RW).0
}

/// PD entry pointing at the page table at `pa`.
pub(super) fn pd_table(pa: u64) -> u64 {
    PDEntry::new(PAddr::from(pa), PDFlags::P | PDFlags::RW).0
}

/// PD entry mapping the 2 MiB page at `pa`.
pub(super) fn pd_2m_page(pa: u64) -> u64 {
    PDEntry::new(PAddr::from(pa), PDFlags::P | PDFlags::RW | PDFlags::PS).0
}

/// PT entry mapping the 4 KiB page at `pa`; `executable: false` sets XD (EFER.NXE is on
/// from boot).
pub(super) fn pt_4k_page(pa: u64, executable: bool) -> u64 {
    let mut flags = PTFlags::P | PTFlags::RW;
    if !executable {
        flags |= PTFlags::XD;
    }
    PTEntry::new(PAddr::from(pa), flags).0
}
