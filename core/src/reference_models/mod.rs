//! Reference models of core's memory machinery, and interpreters that run one operation
//! on the real code and on its model side by side, then check that they agree and that
//! the invariants of ../shared/design/ARCHITECTURE.md ("Invariants worth a test each")
//! and the PIN-/POOL- items of ../shared/specs/confidential-memory.md §H hold.
//!
//! - [`second_level_table`]: [`crate::mmu::SecondLevelTable`] alone (map, lookup, clear,
//!   is_vacant, scoped zap, freeze/unfreeze) against a map of 2 MiB blocks.
//! - [`vm_memory`]: the VM (faults through `prefault` and through a scripted vCPU,
//!   scoped zaps, punch-holes, restarts, refused prepares) against a model of its
//!   private pages, with a vendor that checks at every release that no leaf maps the
//!   frame.
//!
//! Two drivers share them, so both check exactly the same things: the property tests
//! (`proptests.rs`), which generate operations with proptest strategies, and the fuzz
//! targets (`fuzz/fuzz_targets/mmu_ops.rs`, `privmem_ops.rs`), which decode operations
//! from the fuzzer's bytes. The value tables here (`BLOCKS`, `ZAP_LENGTHS`, ...) are
//! what both draw from. A failed check is a [`Mismatch`], not a panic, so proptest can
//! shrink it and a fuzz target can panic with it.
//!
//! Built for core's own tests and with the `testing` feature; never in the image.

/// A check that failed: what was expected and what the real code did.
pub type Mismatch = std::string::String;

/// Fail the step with a formatted [`Mismatch`] unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(std::format!($($message)+));
        }
    };
    ($cond:expr $(,)?) => {
        if !$cond {
            return Err(std::format!("check failed: {}", stringify!($cond)));
        }
    };
}

/// Fail the step with a [`Mismatch`] showing both sides unless they are equal.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(std::format!(
                "{} == {} failed\n  left: {:?}\n right: {:?}",
                stringify!($left),
                stringify!($right),
                left,
                right
            ));
        }
    }};
    ($left:expr, $right:expr, $($message:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(std::format!(
                "{}: {} == {} failed\n  left: {:?}\n right: {:?}",
                std::format_args!($($message)+),
                stringify!($left),
                stringify!($right),
                left,
                right
            ));
        }
    }};
}

pub mod second_level_table;
pub mod vm_memory;

use crate::mmu::{PageSize, Perms, PteFormat};
use crate::testing::TestFormat;

const PAGE: u64 = 0x1000;
const HUGE: u64 = 0x20_0000;

/// A leaf of the test format, with the PINNED bit if `pinned`.
fn leaf(pa: u64, size: PageSize, pinned: bool) -> u64 {
    TestFormat::leaf(pa, size, Perms::ALL) | if pinned { TestFormat::PINNED } else { 0 }
}

fn size_of(huge: bool) -> PageSize {
    if huge {
        PageSize::Size2M
    } else {
        PageSize::Size4K
    }
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (ends saturate).
fn intersects(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a_len > 0 && b_len > 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}
