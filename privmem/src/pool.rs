//! A pool of host frames with exact accounting.

use crate::FRAME_SIZE;
use buddy_system_allocator::FrameAllocator;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The pool has no free block of the requested size.
    Exhausted {
        requested_frames: usize,
        free_frames: usize,
    },
    /// A freed range is not inside the pool or not aligned to a frame.
    ForeignFrame { pa: u64 },
}

/// Frames of one contiguous host-physical range, handed out in power-of-two blocks that
/// are aligned to their size (so a 512-frame block is a 2 MiB-aligned page).
pub struct FramePool {
    base: u64,
    frames: usize,
    free: usize,
    allocator: FrameAllocator,
}

impl FramePool {
    /// A pool owning `[base, base + size)`; both must be frame aligned.
    pub fn new(base: u64, size: u64) -> Self {
        assert!(
            base.is_multiple_of(FRAME_SIZE) && size.is_multiple_of(FRAME_SIZE),
            "pool not frame aligned"
        );
        let frames = (size / FRAME_SIZE) as usize;
        let first = (base / FRAME_SIZE) as usize;
        let mut allocator = FrameAllocator::new();
        allocator.add_frame(first, first + frames);
        Self {
            base,
            frames,
            free: frames,
            allocator,
        }
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn size(&self) -> u64 {
        self.frames as u64 * FRAME_SIZE
    }

    pub fn free_frames(&self) -> usize {
        self.free
    }

    pub fn contains(&self, pa: u64) -> bool {
        pa >= self.base && pa - self.base < self.size()
    }

    /// A block of `count` frames (a power of two), aligned to its size.
    pub fn alloc(&mut self, count: usize) -> Result<u64, PoolError> {
        debug_assert!(count.is_power_of_two());
        let exhausted = PoolError::Exhausted {
            requested_frames: count,
            free_frames: self.free,
        };
        let first = self.allocator.alloc(count).ok_or(exhausted)?;
        self.free -= count;
        Ok(first as u64 * FRAME_SIZE)
    }

    /// Return a block obtained from [`FramePool::alloc`] with the same `count`.
    pub fn free(&mut self, pa: u64, count: usize) -> Result<(), PoolError> {
        let end = pa + count as u64 * FRAME_SIZE;
        if !pa.is_multiple_of(FRAME_SIZE) || !self.contains(pa) || end > self.base + self.size() {
            return Err(PoolError::ForeignFrame { pa });
        }
        self.allocator.dealloc((pa / FRAME_SIZE) as usize, count);
        self.free += count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_stay_inside_the_pool_and_balance() {
        let mut pool = FramePool::new(0x100_0000, 0x40_0000);
        let a = pool.alloc(1).unwrap();
        let b = pool.alloc(512).unwrap();
        assert!(pool.contains(a) && pool.contains(b));
        assert_eq!(b % 0x20_0000, 0, "a 512-frame block is 2 MiB aligned");
        assert_eq!(pool.free_frames(), 1024 - 513);
        pool.free(a, 1).unwrap();
        pool.free(b, 512).unwrap();
        assert_eq!(pool.free_frames(), 1024);
    }

    #[test]
    fn exhaustion_and_foreign_frees_are_errors() {
        let mut pool = FramePool::new(0x10_0000, 0x2000);
        pool.alloc(1).unwrap();
        pool.alloc(1).unwrap();
        assert_eq!(
            pool.alloc(1),
            Err(PoolError::Exhausted {
                requested_frames: 1,
                free_frames: 0
            })
        );
        assert_eq!(
            pool.free(0x20_0000, 1),
            Err(PoolError::ForeignFrame { pa: 0x20_0000 })
        );
        assert_eq!(
            pool.free(0x10_0800, 1),
            Err(PoolError::ForeignFrame { pa: 0x10_0800 })
        );
    }
}
