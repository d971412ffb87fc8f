//! The model's measurement digest: deterministic and sensitive to every byte and its
//! order, but NOT the firmware's SHA-256 (legacy) or SHA-384 (SNP), and not
//! cryptographic. Tests compare measurements of the same model for equality only.

/// Six FNV-1a lanes, each mixed differently, giving 48 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    lanes: [u64; 6],
}

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Fold {
    fn default() -> Self {
        let mut lanes = [OFFSET; 6];
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane ^= (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        Self { lanes }
    }
}

impl Fold {
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        for &byte in bytes {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                *lane = (*lane ^ u64::from(byte))
                    .wrapping_mul(PRIME)
                    .rotate_left(i as u32 * 7 + 1);
            }
        }
        self
    }

    pub fn finish48(&self) -> [u8; 48] {
        let mut out = [0; 48];
        for (chunk, lane) in out.chunks_exact_mut(8).zip(self.lanes) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    pub fn finish32(&self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(&self.finish48()[..32]);
        out
    }

    pub fn of(bytes: &[u8]) -> Self {
        let mut fold = Self::default();
        fold.update(bytes);
        fold
    }
}
