//! Guest-physical memory: which GPA ranges exist and what backs them.

use alloc::boxed::Box;
use cloister_abi::MemoryKind;
use cloister_privmem::FramePool;

/// Most memslots a VM can have (the boot info's region table holds as many).
pub const MAX_SLOTS: usize = cloister_abi::boot::MAX_REGIONS;

/// A memslot as the board describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotSpec {
    pub gpa: u64,
    pub size: u64,
    pub kind: MemoryKind,
    /// Host-physical base of the pool range backing the slot.
    pub host_base: u64,
}

pub enum Backing {
    /// Frames allocated from the pool on first touch.
    Private(Box<FramePool>),
    /// A host range mapped one-to-one; the hypervisor may read it.
    Shared { host_base: u64 },
}

pub struct Memslot {
    pub gpa: u64,
    pub size: u64,
    pub backing: Backing,
}

impl Memslot {
    pub fn new(spec: &SlotSpec) -> Self {
        let backing = match spec.kind {
            MemoryKind::Private => {
                Backing::Private(Box::new(FramePool::new(spec.host_base, spec.size)))
            }
            MemoryKind::Shared => Backing::Shared {
                host_base: spec.host_base,
            },
        };
        Self {
            gpa: spec.gpa,
            size: spec.size,
            backing,
        }
    }

    pub fn kind(&self) -> MemoryKind {
        match self.backing {
            Backing::Private(_) => MemoryKind::Private,
            Backing::Shared { .. } => MemoryKind::Shared,
        }
    }

    /// Whether `[gpa, gpa + len)` lies entirely inside the slot.
    pub fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.gpa && len <= self.size && gpa - self.gpa <= self.size - len
    }

    pub fn region(&self) -> cloister_abi::MemoryRegion {
        cloister_abi::MemoryRegion {
            gpa: self.gpa,
            size: self.size,
            kind: self.kind() as u32,
            reserved: 0,
        }
    }
}
