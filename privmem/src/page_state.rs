//! Two bits of state per 4 KiB page, packed: 64 KiB per GiB of private memory.

use alloc::vec;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageState {
    /// Not handed out: the frame holds stale data and must be scrubbed before use.
    Free = 0,
    /// Scrubbed, prepared and pinned: the workload's, until punched out.
    Prepared = 1,
    /// Converted to shared: the private frame was released; private access faults.
    Shared = 2,
    /// Never to be handed out again.
    Poisoned = 3,
}

impl PageState {
    const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Self::Free,
            1 => Self::Prepared,
            2 => Self::Shared,
            _ => Self::Poisoned,
        }
    }
}

const PER_BYTE: usize = 4;

pub struct PageStates {
    bits: Vec<u8>,
    pages: usize,
}

impl PageStates {
    /// `pages` pages, all [`PageState::Free`]. The only allocation: faults never allocate.
    pub fn new(pages: usize) -> Self {
        Self {
            bits: vec![0; pages.div_ceil(PER_BYTE)],
            pages,
        }
    }

    pub fn len(&self) -> usize {
        self.pages
    }

    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// Bytes of metadata held.
    pub fn metadata_bytes(&self) -> usize {
        self.bits.len()
    }

    pub fn get(&self, page: usize) -> PageState {
        let shift = (page % PER_BYTE) * 2;
        PageState::from_bits(self.bits[page / PER_BYTE] >> shift)
    }

    pub fn set(&mut self, page: usize, state: PageState) {
        let shift = (page % PER_BYTE) * 2;
        let byte = &mut self.bits[page / PER_BYTE];
        *byte = (*byte & !(3 << shift)) | ((state as u8) << shift);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_pack_two_bits_per_page_without_disturbing_neighbours() {
        let mut states = PageStates::new(9);
        assert_eq!(states.metadata_bytes(), 3);
        states.set(5, PageState::Poisoned);
        states.set(4, PageState::Prepared);
        states.set(6, PageState::Shared);
        assert_eq!(
            (0..9).map(|i| states.get(i)).collect::<Vec<_>>(),
            [
                PageState::Free,
                PageState::Free,
                PageState::Free,
                PageState::Free,
                PageState::Prepared,
                PageState::Poisoned,
                PageState::Shared,
                PageState::Free,
                PageState::Free
            ]
        );
        states.set(5, PageState::Free);
        assert_eq!(states.get(5), PageState::Free);
        assert_eq!(states.get(4), PageState::Prepared);
    }
}
