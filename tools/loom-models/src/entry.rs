//! The mirror entry the model threads share, and the seeded bugs that break it.

use cloister_core::mmu::frozen::{EXCHANGE_FAILURE_ORDER, EXCHANGE_ORDER, EntryCell, LOAD_ORDER};
use loom::sync::atomic::{AtomicU64, Ordering};

/// How the entry cell departs from core's `AtomicU64` cell. Every flaw but `None` is a
/// seeded bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    None,
    /// Compare-exchange as a load, a compare and a separate store: two walkers can both
    /// read the entry vacant and both "freeze" it.
    SplitCompareExchange,
    /// Every access `Relaxed`: a walker that sees a published entry need not see the
    /// external change its publisher made before publishing.
    Relaxed,
}

/// A mirror entry: loom's atomic, reached through core's [`EntryCell`].
pub struct MirrorEntry {
    value: AtomicU64,
    flaw: Flaw,
}

impl MirrorEntry {
    pub fn new(value: u64, flaw: Flaw) -> Self {
        Self {
            value: AtomicU64::new(value),
            flaw,
        }
    }

    fn order(&self, correct: Ordering) -> Ordering {
        match self.flaw {
            Flaw::Relaxed => Ordering::Relaxed,
            Flaw::None | Flaw::SplitCompareExchange => correct,
        }
    }
}

impl EntryCell for MirrorEntry {
    fn load(&self) -> u64 {
        self.value.load(self.order(LOAD_ORDER))
    }

    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        if self.flaw == Flaw::SplitCompareExchange {
            let found = self.value.load(LOAD_ORDER);
            if found != current {
                return Err(found);
            }
            self.value.store(new, Ordering::Release);
            return Ok(found);
        }
        self.value.compare_exchange(
            current,
            new,
            self.order(EXCHANGE_ORDER),
            self.order(EXCHANGE_FAILURE_ORDER),
        )
    }
}
