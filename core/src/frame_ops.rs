//! The callbacks private memory objects need, built from the board and the vendor.

use crate::guest_tables::GuestTables;
use crate::host::Host;
use crate::mmu::{MmuError, PteFormat, Scope, VendorMmu};
use crate::stop::Stop;
use crate::vm::Stats;
use cloister_privmem::{FRAME_SIZE, FrameHooks, PrivMemError, Unmapper};

/// Scrubbing through the board, preparing and invalidating through the vendor.
pub(crate) struct FrameOps<'a, H: Host, V: VendorMmu> {
    pub host: &'a mut H,
    pub vendor: &'a mut V,
    /// Where the private slot these frames back starts: offset 0 of its object.
    pub slot_gpa: u64,
    /// Host ticks spent scrubbing, accumulated for the benchmarks.
    pub scrub_ticks: &'a mut u64,
}

impl<H: Host, V: VendorMmu> FrameHooks for FrameOps<'_, H, V> {
    fn scrub(&mut self, pa: u64, frames: u64) {
        let start = self.host.ticks();
        for i in 0..frames {
            self.host
                .with_frame(pa + i * FRAME_SIZE, |frame| frame.fill(0));
        }
        *self.scrub_ticks += self.host.ticks().wrapping_sub(start);
    }

    fn prepare(&mut self, offset: u64, pa: u64, frames: u64) -> Result<(), PrivMemError> {
        self.vendor
            .prepare(self.slot_gpa + offset, pa, frames)
            .map_err(|e| PrivMemError::Vendor { code: e.code })
    }

    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        self.vendor.invalidate(pa, frames, quarantine);
    }
}

/// [`FrameOps`] plus unmapping for one private slot: zaps the slot's private leaves in
/// the second-level tables, then tells the vendor to forget them.
pub(crate) struct SlotOps<'a, F: PteFormat, H: Host, V: VendorMmu> {
    pub frames: FrameOps<'a, H, V>,
    pub tables: &'a mut GuestTables<F>,
    pub zapped: &'a mut u64,
    /// Where a refused unmap is recorded: the VM cannot go on.
    pub failure: &'a mut Option<Stop>,
}

impl<'a, F: PteFormat, H: Host, V: VendorMmu> SlotOps<'a, F, H, V> {
    /// The operations for the private slot at `slot_gpa`, counting into `stats`.
    pub fn new(
        tables: &'a mut GuestTables<F>,
        host: &'a mut H,
        vendor: &'a mut V,
        stats: &'a mut Stats,
        failure: &'a mut Option<Stop>,
        slot_gpa: u64,
    ) -> Self {
        let Stats {
            scrub_ticks,
            zapped,
            ..
        } = stats;
        Self {
            frames: FrameOps {
                host,
                vendor,
                slot_gpa,
                scrub_ticks,
            },
            tables,
            zapped,
            failure,
        }
    }
}

impl<F: PteFormat, H: Host, V: VendorMmu> Unmapper for SlotOps<'_, F, H, V> {
    fn unmap(&mut self, offset: u64, len: u64) -> Result<(), PrivMemError> {
        let zapped = self.tables.zap(
            self.frames.host,
            self.frames.vendor,
            self.frames.slot_gpa + offset,
            len,
            Scope::Private,
        );
        *self.zapped += zapped.cleared;
        match zapped.refused {
            None => Ok(()),
            Some((gpa, error)) => {
                self.failure.get_or_insert(Stop::Mmu {
                    error: MmuError::External(error),
                    gpa,
                });
                Err(PrivMemError::Unmap { code: error.code })
            }
        }
    }
}

impl<F: PteFormat, H: Host, V: VendorMmu> FrameHooks for SlotOps<'_, F, H, V> {
    fn scrub(&mut self, pa: u64, frames: u64) {
        self.frames.scrub(pa, frames);
    }

    fn prepare(&mut self, offset: u64, pa: u64, frames: u64) -> Result<(), PrivMemError> {
        self.frames.prepare(offset, pa, frames)
    }

    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        self.frames.invalidate(pa, frames, quarantine);
    }
}
