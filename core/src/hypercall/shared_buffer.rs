//! Workload buffers: validated once, entirely inside one shared region, then copied
//! frame by frame. The hypervisor never follows a pointer into private memory.

use crate::host::Host;
use crate::memslot::Backing;
use crate::mmu::{PteFormat, VendorMmu};
use crate::vm::Vm;
use cloister_abi::Error;

const PAGE: u64 = 4096;

/// A validated buffer: host-physical start and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SharedBuffer {
    pa: u64,
    len: u64,
}

impl SharedBuffer {
    /// `[gpa, gpa + len)` if it lies entirely inside one shared region, or inside
    /// private memory that was converted to shared page by page. Where shared memory
    /// has its own alias (TDX), the workload may name the buffer by either.
    pub fn new<F: PteFormat, V: VendorMmu>(
        vm: &Vm<F, V>,
        gpa: u64,
        len: u64,
    ) -> Result<Self, Error> {
        let gpa = gpa & !V::SHARED_GPA_BIT;
        let slot = vm.slot_containing(gpa, len).ok_or(Error::NotShared)?;
        let offset = gpa - slot.gpa;
        match &slot.backing {
            Backing::Shared { host_base } => Ok(Self {
                pa: host_base + offset,
                len,
            }),
            // Conversion is in place: the frames are the object's, base + offset.
            Backing::Private(object) if object.is_shared(offset, len) => Ok(Self {
                pa: object.base() + offset,
                len,
            }),
            Backing::Private(_) => Err(Error::NotShared),
        }
    }

    /// The part `[offset, offset + len)` of the buffer (clamped to it).
    pub fn slice(self, offset: u64, len: u64) -> Self {
        let offset = offset.min(self.len);
        Self {
            pa: self.pa + offset,
            len: len.min(self.len - offset),
        }
    }

    /// Visit the buffer as the frame-bounded pieces `(pa of the frame, range in it)`.
    fn pieces(self, mut visit: impl FnMut(u64, core::ops::Range<usize>)) {
        let (mut pa, mut left) = (self.pa, self.len);
        while left > 0 {
            let offset = pa % PAGE;
            let n = left.min(PAGE - offset);
            visit(pa - offset, offset as usize..(offset + n) as usize);
            pa += n;
            left -= n;
        }
    }

    /// Copy `data` (at most the buffer's length) to the start of the buffer.
    pub fn write(self, host: &mut impl Host, data: &[u8]) {
        let mut done = 0;
        let len = (data.len() as u64).min(self.len);
        SharedBuffer { len, ..self }.pieces(|frame, range| {
            let n = range.len();
            host.with_frame(frame, |bytes| {
                bytes[range].copy_from_slice(&data[done..done + n])
            });
            done += n;
        });
    }

    /// Copy a buffer that is one whole frame into `out`.
    pub fn read_frame(self, host: &mut impl Host, out: &mut [u8; PAGE as usize]) {
        debug_assert!(self.pa.is_multiple_of(PAGE) && self.len == PAGE);
        host.with_frame(self.pa, |bytes| out.copy_from_slice(bytes));
    }

    /// Pass the buffer's bytes, in order and in small chunks, to `sink`, which gets the
    /// host back to do something with each chunk.
    pub fn read<H: Host>(self, host: &mut H, mut sink: impl FnMut(&mut H, &[u8])) {
        let mut chunk = [0u8; 256];
        let mut pieces = heapless::Vec::<(u64, core::ops::Range<usize>), 2>::new();
        let mut start = self.pa;
        let end = self.pa + self.len;
        while start < end {
            // At most one frame boundary per chunk-sized step keeps this simple: take a
            // chunk, split it where it crosses a frame.
            let n = (end - start).min(chunk.len() as u64);
            pieces.clear();
            SharedBuffer { pa: start, len: n }.pieces(|frame, range| {
                let _ = pieces.push((frame, range));
            });
            let mut filled = 0;
            for (frame, range) in pieces.iter().cloned() {
                let len = range.len();
                host.with_frame(frame, |bytes| {
                    chunk[filled..filled + len].copy_from_slice(&bytes[range])
                });
                filled += len;
            }
            sink(host, &chunk[..filled]);
            start += n;
        }
    }
}
