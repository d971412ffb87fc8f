//! SEV and SEV-SNP: the RMP and the PSP firmware behind traits, each with the real
//! instruction or mailbox and a software model; the vendor hooks over them; the GHCB
//! transport (issue 8).

pub mod cache;
pub mod firmware;
pub mod ghcb_transport;
pub mod ghcb_vcpu;
pub mod platform_model;
pub mod rmp;
pub mod rmp_record;
pub mod sev_mmu;
pub mod snp_mmu;

pub use cache::SevCache;
pub use sev_mmu::{SevMmu, SevPlatform};
pub use snp_mmu::{SnpMmu, SnpPlatform, SnpStats};
