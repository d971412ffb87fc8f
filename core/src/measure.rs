//! The launch measurement: SHA-384 over the configuration the VM was created from and
//! every byte the hypervisor writes into private memory before the first instruction,
//! in the order it writes them. Everything else in private memory is zero at launch,
//! so the digest determines the workload's initial private memory.

use crate::memslot::SlotSpec;
use crate::vm::{Pinning, VmSpec};
use sha2::{Digest, Sha384};

/// Domain separation: a digest of this format is never mistaken for another.
const DOMAIN: &[u8] = b"cloister launch measurement v1\0";
pub const DIGEST_SIZE: usize = 48;

pub(crate) struct LaunchMeasurement {
    hasher: Option<Sha384>,
    digest: [u8; DIGEST_SIZE],
}

impl LaunchMeasurement {
    /// Start a measurement of a VM created from `spec`. The instance number is left out:
    /// a restarted workload measures the same.
    pub fn new(spec: &VmSpec<'_>) -> Self {
        let mut hasher = Sha384::new();
        hasher.update(DOMAIN);
        hasher.update((spec.name.len() as u64).to_le_bytes());
        hasher.update(spec.name.as_bytes());
        hasher.update(spec.allowed_calls.to_le_bytes());
        hasher.update([matches!(spec.pinning, Pinning::Upfront) as u8]);
        hasher.update((spec.slots.len() as u64).to_le_bytes());
        for SlotSpec {
            gpa,
            size,
            kind,
            huge,
            host_base: _,
        } in spec.slots
        {
            // Where the host placed the pool is not the workload's business.
            hasher.update(gpa.to_le_bytes());
            hasher.update(size.to_le_bytes());
            hasher.update((*kind as u32).to_le_bytes());
            hasher.update([*huge as u8]);
        }
        Self {
            hasher: Some(hasher),
            digest: [0; DIGEST_SIZE],
        }
    }

    /// Record that `data` was written at `gpa`.
    pub fn write(&mut self, gpa: u64, data: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(gpa.to_le_bytes());
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(data);
        }
    }

    /// Seal the digest; later writes are not part of the launch.
    pub fn finish(&mut self) {
        if let Some(hasher) = self.hasher.take() {
            self.digest.copy_from_slice(&hasher.finalize());
        }
    }

    /// The sealed digest (all zero before launch finished).
    pub fn digest(&self) -> &[u8; DIGEST_SIZE] {
        &self.digest
    }
}
