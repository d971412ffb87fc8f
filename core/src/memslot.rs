//! Guest-physical memory: which GPA ranges exist and what backs them.

use cloister_abi::MemoryKind;
use cloister_privmem::PrivateMemory;

/// Most memslots a VM can have (the boot info's region table holds as many).
pub const MAX_SLOTS: usize = cloister_abi::boot::MAX_REGIONS;

/// A memslot as the board describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotSpec {
    pub gpa: u64,
    pub size: u64,
    pub kind: MemoryKind,
    /// Host-physical base of the pool backing the slot.
    pub host_base: u64,
    /// The pool prefers 2 MiB mappings.
    pub huge: bool,
}

pub enum Backing {
    /// A private memory object: frames prepared on first touch, state kept by the object.
    Private(PrivateMemory),
    /// A host range mapped one-to-one; the hypervisor may read it.
    Shared { host_base: u64 },
}

pub struct Memslot {
    pub gpa: u64,
    pub size: u64,
    pub huge: bool,
    pub backing: Backing,
}

impl Memslot {
    /// The slot for `spec`; a private slot takes `memory` if given (a restarted VM
    /// instance keeps its objects), else a fresh object over the pool.
    pub fn new(spec: &SlotSpec, memory: Option<PrivateMemory>) -> Self {
        let backing = match spec.kind {
            MemoryKind::Private => Backing::Private(
                memory.unwrap_or_else(|| PrivateMemory::new(spec.host_base, spec.size)),
            ),
            MemoryKind::Shared => Backing::Shared {
                host_base: spec.host_base,
            },
        };
        Self {
            gpa: spec.gpa,
            size: spec.size,
            huge: spec.huge,
            backing,
        }
    }

    pub fn kind(&self) -> MemoryKind {
        match self.backing {
            Backing::Private(_) => MemoryKind::Private,
            Backing::Shared { .. } => MemoryKind::Shared,
        }
    }

    /// Whether `[gpa, gpa + len)` lies entirely inside the slot. An empty range belongs
    /// to the slot its GPA falls in: not to the one that ends there.
    pub fn contains(&self, gpa: u64, len: u64) -> bool {
        let last = len.max(1);
        gpa >= self.gpa && last <= self.size && gpa - self.gpa <= self.size - last
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
