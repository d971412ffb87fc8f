//! Host memory contents the model measures: what the hypervisor put in a page before
//! a launch command encrypts it. Unwritten bytes read as zero.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct HostMemory {
    pages: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl HostMemory {
    pub fn write(&mut self, pa: u64, bytes: &[u8]) {
        for (i, &byte) in bytes.iter().enumerate() {
            let at = pa + i as u64;
            let page = self
                .pages
                .entry(at >> 12)
                .or_insert_with(|| Box::new([0; 4096]));
            page[(at & 0xfff) as usize] = byte;
        }
    }

    /// Call `f` with the bytes of `[pa, pa + len)`, a page piece at a time.
    pub fn read(&self, pa: u64, len: u64, mut f: impl FnMut(&[u8])) {
        const ZERO: [u8; 4096] = [0; 4096];
        let (mut at, end) = (pa, pa + len);
        while at < end {
            let offset = (at & 0xfff) as usize;
            let piece = (end - at).min(4096 - offset as u64) as usize;
            let page = self.pages.get(&(at >> 12)).map_or(&ZERO, |p| p);
            f(&page[offset..offset + piece]);
            at += piece as u64;
        }
    }
}
