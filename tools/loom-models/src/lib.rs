//! loom models of the FROZEN-entry protocol (`cloister_core::mmu::frozen`): vCPU faults
//! and zaps racing for one mirror entry while the vendor's external table (a model of the
//! TDX S-EPT entry behind it) changes, explored in every interleaving up to
//! [`PREEMPTION_BOUND`] preemptions.
//!
//! The thread bodies ([`fault`], [`zap`], [`link::fault_in_unlinked_region`]) call core's
//! protocol functions, the same ones the table engine calls; only the entry cell differs: loom's atomic, under the
//! orderings core's `AtomicU64` cell uses. The seeded bugs ([`Flaw`]) break that cell,
//! or pass the protocol the flag a table without an external copy uses, and the tests
//! in `tests/seeded_bugs.rs` assert that loom finds the violation.

mod entry;
mod external;
mod frames;
pub mod link;
pub mod models;
mod run;
mod threads;

pub use entry::{Flaw, MirrorEntry};
pub use external::SeptEntry;
pub use frames::{FrameState, Frames};
pub use run::{PREEMPTION_BOUND, check, violation};
pub use threads::{Faulted, Gpa, fault, leaf, zap};

/// The mirror's entry format: Intel EPT with KVM's FROZEN value.
pub type Format = cloister_tdx::EptFormat;
