//! The firmware module's only `unsafe`: volatile access to the PSP's mailbox registers
//! and to the command page the PSP reads and writes behind the compiler's back.

use super::{CommandPage, MailboxRegisters};
use core::ptr::NonNull;

/// The PSP's registers, memory-mapped.
pub struct PspMmio {
    base: NonNull<u8>,
}

impl PspMmio {
    /// # Safety
    ///
    /// `base` is the mapping (uncached, for the life of the program) of the PSP's
    /// register BAR, which nothing else drives; and whoever issues commands through it
    /// hands the firmware the memory each command names (see [`super::PspMailbox::new`]).
    pub const unsafe fn new(base: NonNull<u8>) -> Self {
        Self { base }
    }
}

impl MailboxRegisters for PspMmio {
    fn read(&mut self, offset: usize) -> u32 {
        let reg = self.base.as_ptr().wrapping_add(offset).cast::<u32>();
        // SAFETY: `new`'s contract: the register BAR is mapped at `base`; the mailbox
        // offsets are 4-byte aligned registers inside it.
        unsafe { reg.read_volatile() }
    }

    fn write(&mut self, offset: usize, value: u32) {
        let reg = self.base.as_ptr().wrapping_add(offset).cast::<u32>();
        // SAFETY: as in `read`.
        unsafe { reg.write_volatile(value) }
    }
}

/// The command page, accessed volatile: the PSP reads it after the doorbell and writes
/// results into it before it answers.
pub struct DmaPage {
    page: NonNull<CommandPage>,
}

impl DmaPage {
    pub fn new(page: &'static mut CommandPage) -> Self {
        Self {
            page: NonNull::from(page),
        }
    }

    /// The page's physical address (the hypervisor's identity map, `crate::phys`).
    pub fn pa(&self) -> u64 {
        self.page.as_ptr() as u64
    }

    pub fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= size_of::<CommandPage>());
        let base = self.page.as_ptr().cast::<u8>();
        for (i, &byte) in bytes.iter().enumerate() {
            // SAFETY: in bounds (asserted); the page was handed over `&'static mut`, so
            // only this object and the PSP touch it.
            unsafe { base.add(offset + i).write_volatile(byte) }
        }
    }

    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= size_of::<CommandPage>());
        let base = self.page.as_ptr().cast::<u8>();
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: as in `write`.
            *byte = unsafe { base.add(offset + i).read_volatile() };
        }
    }
}
