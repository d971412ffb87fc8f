//! Which RMP entries the hypervisor made for a guest, by size: its own record, so its
//! decisions never depend on reading the RMP back (the real table must be mapped to be
//! read, and the hypervisor made every entry it relies on).

use alloc::collections::{BTreeMap, BTreeSet};

const FRAME: u64 = 4096;
const HUGE: u64 = 2 << 20;

/// 2 MiB entries by their first frame; 4 KiB entries as one bit per frame of their
/// 2 MiB block (64 bytes per block that has any).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RmpRecord {
    huge: BTreeSet<u64>,
    small: BTreeMap<u64, [u64; 8]>,
}

pub fn block_of(pa: u64) -> u64 {
    pa & !(HUGE - 1)
}

fn bit(pa: u64) -> (usize, u64) {
    let index = (pa % HUGE) / FRAME;
    ((index / 64) as usize, 1 << (index % 64))
}

impl RmpRecord {
    pub fn is_huge(&self, block: u64) -> bool {
        self.huge.contains(&block)
    }

    pub fn huge_blocks(&self) -> impl Iterator<Item = u64> + '_ {
        self.huge.iter().copied()
    }

    pub fn set_huge(&mut self, block: u64) {
        self.huge.insert(block);
    }

    pub fn clear_huge(&mut self, block: u64) {
        self.huge.remove(&block);
    }

    /// PSMASH: the 2 MiB entry became 512 4 KiB entries.
    pub fn split(&mut self, block: u64) {
        self.huge.remove(&block);
        self.small.insert(block, [u64::MAX; 8]);
    }

    /// Whether any frame of the block has a 4 KiB entry.
    pub fn has_small(&self, block: u64) -> bool {
        self.small.contains_key(&block)
    }

    pub fn is_small(&self, pa: u64) -> bool {
        let (word, mask) = bit(pa);
        self.small
            .get(&block_of(pa))
            .is_some_and(|bits| bits[word] & mask != 0)
    }

    /// Whether the frame is the guest's under either size.
    pub fn is_assigned(&self, pa: u64) -> bool {
        self.is_huge(block_of(pa)) || self.is_small(pa)
    }

    pub fn set_small(&mut self, pa: u64) {
        let (word, mask) = bit(pa);
        self.small.entry(block_of(pa)).or_insert([0; 8])[word] |= mask;
    }

    pub fn clear_small(&mut self, pa: u64) {
        let (word, mask) = bit(pa);
        if let Some(bits) = self.small.get_mut(&block_of(pa)) {
            bits[word] &= !mask;
            if bits.iter().all(|&w| w == 0) {
                self.small.remove(&block_of(pa));
            }
        }
    }

    /// Frames with an entry of either size.
    pub fn assigned_frames(&self) -> u64 {
        let small: u64 = self
            .small
            .values()
            .map(|bits| bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>())
            .sum();
        self.huge.len() as u64 * (HUGE / FRAME) + small
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_entries_are_tracked_per_frame_and_a_split_sets_the_whole_block() {
        let mut record = RmpRecord::default();
        record.set_small(0x20_3000);
        assert!(record.is_small(0x20_3000) && !record.is_small(0x20_4000));
        assert!(record.has_small(0x20_0000));
        record.clear_small(0x20_3000);
        assert!(!record.has_small(0x20_0000), "an empty block is forgotten");
        record.set_huge(0x40_0000);
        assert_eq!(record.assigned_frames(), 512);
        record.split(0x40_0000);
        assert!(!record.is_huge(0x40_0000) && record.is_small(0x5f_f000));
        assert_eq!(record.assigned_frames(), 512);
        record.clear_small(0x40_0000);
        assert!(record.is_assigned(0x40_1000) && !record.is_assigned(0x40_0000));
    }
}
