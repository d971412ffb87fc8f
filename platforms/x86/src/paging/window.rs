//! The window: one 4 KiB slot just above the identity map through which the hypervisor
//! reaches a frame its identity map leaves out (a private frame), mapped only while one
//! closure runs.
//!
//! One slot is enough: interrupts are always off in the hypervisor and it runs on one
//! CPU, so nothing can preempt a window user, and no caller needs two frames at once (a
//! nested call panics rather than silently remapping the slot under its caller). The
//! slot's page table has room for 512 should that ever change.

use super::arena::{self, Table};
use super::entries;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering, compiler_fence};

/// The window's virtual address: just above the 4 GiB identity map.
pub const WINDOW_BASE: u64 = 1 << 32;
const PDPT_INDEX: usize = (WINDOW_BASE >> 30) as usize;
const _: () = assert!(
    WINDOW_BASE.is_multiple_of(1 << 30) && PDPT_INDEX < 512,
    "the window starts a 1 GiB region of PML4[0]: its PD entry 0 and PT entry 0"
);

/// The window's page table, once `install` ran.
static PT: AtomicPtr<Table> = AtomicPtr::new(core::ptr::null_mut());
/// Set while a closure runs with the slot mapped.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Give the window its PD and PT under `pdpt` (the PDPT of PML4[0]).
pub(super) fn install(pdpt: &mut Table) {
    let pd = arena::alloc();
    let pt = arena::alloc();
    pd.0[0] = entries::pd_table(pt.pa());
    pdpt.0[PDPT_INDEX] = entries::pdpt_table(pd.pa());
    PT.store(core::ptr::from_mut(pt), Ordering::Relaxed);
}

/// Run `f` on the 4 KiB frame at physical address `pa`, mapped at [`WINDOW_BASE`] (not
/// executable) for the call and unmapped again before this returns.
///
/// Panics if the tables are not built yet (`init`), if `pa` is not 4 KiB aligned, or if
/// called from inside `f`.
///
/// # Safety
/// `pa` is a RAM frame that nothing else in the hypervisor references during the call:
/// `f` gets it as `&mut`.
pub unsafe fn with_window<R>(pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
    assert!(
        pa.is_multiple_of(4096),
        "window: frame {pa:#x} is not 4 KiB aligned"
    );
    let pt = PT.load(Ordering::Relaxed);
    assert!(
        !pt.is_null(),
        "window: the host page tables are not built yet"
    );
    assert!(
        !BUSY.swap(true, Ordering::Relaxed),
        "window: already in use (with_window is not re-entrant)"
    );
    // SAFETY: `pt` is the window's page table, in the identity-mapped arena; nothing but
    // this function touches it after `install`, and BUSY makes this call the only one.
    let slot = unsafe { &raw mut (*pt).0[0] };
    // SAFETY: `slot` is valid (above); the volatile write is the one the MMU reads.
    unsafe { slot.write_volatile(entries::pt_4k_page(pa, false)) };
    // SAFETY: INVLPG only drops translations; the slot may have been cached unmapped.
    unsafe { x86::tlb::flush(WINDOW_BASE as usize) };
    // Keep the closure's accesses between the map and the unmap.
    compiler_fence(Ordering::SeqCst);
    // SAFETY: WINDOW_BASE now maps `pa`, a frame nothing else references (the caller's
    // promise), and the reference ends with the call (`f` cannot keep it).
    let result = f(unsafe { &mut *(WINDOW_BASE as *mut [u8; 4096]) });
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as above; clearing the slot and flushing it leaves no way to `pa`.
    unsafe {
        slot.write_volatile(0);
        x86::tlb::flush(WINDOW_BASE as usize);
    }
    BUSY.store(false, Ordering::Relaxed);
    result
}
