//! core's `Host` on this board: tables from the heap, shared frames through the identity
//! map, private frames through the window, console on the UART, CPUID from the CPU.

use crate::{BACKEND, Backend, host_tables, sev_backend};
use alloc::alloc::{Layout, alloc_zeroed};
use cloister_core::host::{CpuidResult, Host};
use cloister_core::mmu::{ENTRIES, TableMemory};
use core::arch::x86_64::__cpuid_count;

const PAGE: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(layout) => layout,
    Err(_) => panic!("page layout"),
};

/// Physical memory below 4 GiB, private pools excepted, is identity mapped (see
/// `host_tables`), so a physical address outside those pools is also a pointer.
pub struct BoardHost;

impl TableMemory for BoardHost {
    fn alloc_table(&mut self) -> Option<u64> {
        // SAFETY: PAGE has a non-zero size.
        let page = unsafe { alloc_zeroed(PAGE) };
        (!page.is_null()).then_some(page as u64)
    }

    fn free_table(&mut self, pa: u64) {
        // SAFETY: `pa` came from `alloc_table` with the same layout, and the nested table
        // no longer links to it.
        unsafe { alloc::alloc::dealloc(pa as *mut u8, PAGE) };
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` came from `alloc_table`: a live, page-aligned heap page that only
        // the nested table owns; the `&mut self` borrow keeps the reference unique.
        unsafe { &mut *(pa as *mut [u64; ENTRIES]) }
    }
}

impl BoardHost {
    /// The frame at `pa`, without the model's RMP check (the model reading what the
    /// hypervisor wrote, to measure it).
    pub fn frame<R>(pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
        assert!(
            pa.is_multiple_of(4096),
            "frame {pa:#x} is not 4 KiB aligned"
        );
        if host_tables::is_private(pa) {
            // SAFETY: core only asks for frames of the workload's pools, which the boot
            // check proved are RAM and which nothing else in the hypervisor references.
            return unsafe { cloister_x86::paging::with_window(pa, f) };
        }
        assert!(pa < 1 << 32, "frame {pa:#x} outside the identity map");
        // SAFETY: as above, and a frame outside the private pools is identity mapped; the
        // reference does not outlive the call.
        f(unsafe { &mut *(pa as *mut [u8; 4096]) })
    }
}

impl Host for BoardHost {
    fn with_frame<R>(&mut self, pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
        if matches!(BACKEND, Backend::Sev | Backend::SevSnp) {
            sev_backend::check_host_write(pa);
        }
        Self::frame(pa, f)
    }

    fn console_write(&mut self, bytes: &[u8]) {
        cloister_x86::console::write_bytes(bytes);
    }

    fn ticks(&self) -> u64 {
        // SAFETY: RDTSC only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = __cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
}
