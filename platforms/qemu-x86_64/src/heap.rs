//! The hypervisor heap: a buddy allocator over a static array sized by the config.

use crate::generated::HEAP_SIZE;
use buddy_system_allocator::Heap;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use spinning_top::Spinlock;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

struct LockedHeap(Spinlock<Heap<32>>);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(Spinlock::new(Heap::empty()));

// SAFETY: every allocation and free goes through the buddy heap under its lock.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .alloc(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this layout.
            unsafe { self.0.lock().dealloc(ptr, layout) };
        }
    }
}

/// Hand the arena to the allocator. Call once, before the first allocation.
pub fn init() {
    let start = core::ptr::addr_of_mut!(ARENA) as usize;
    // SAFETY: ARENA is used by nothing but this heap, and init runs once.
    unsafe { HEAP.0.lock().init(start, HEAP_SIZE) };
}
