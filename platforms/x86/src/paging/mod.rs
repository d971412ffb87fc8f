//! The hypervisor's own page tables, which replace the boot code's map of everything
//! below 4 GiB: the low 4 GiB identity mapped except the ranges the board excludes (its
//! private pools), so a stray read of a private frame faults instead of reading it, and
//! a one-frame window above the identity map through which the hypervisor reaches an
//! excluded frame only for the duration of one call.
//!
//! Virtual layout (PML4[0] -> one PDPT):
//!
//! | range | PDPT entries | what |
//! | --- | --- | --- |
//! | [0, 4 GiB) | 0..4 | identity: 2 MiB pages, 4 KiB pages where a 2 MiB region is partly excluded, nothing for excluded pages |
//! | [4 GiB, 4 GiB + 4 KiB) | 4 | the window ([`with_window`]) |
//!
//! Everything is write-back (the only device registers the hypervisor touches are I/O
//! ports) and executable (NX stays off: the identity map holds the code), except the
//! window, which only ever holds data.

mod arena;
mod entries;
mod identity;
mod window;

pub use arena::MAX_SPLIT_REGIONS;
pub use identity::{HostTableStats, init};
pub use window::{WINDOW_BASE, with_window};
