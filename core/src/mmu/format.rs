//! What the engine needs to know about a vendor's page-table entry encoding.

/// Leaf sizes the engine maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PageSize {
    Size4K,
    Size2M,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 1 << 12,
            Self::Size2M => 1 << 21,
        }
    }

    /// The table level holding a leaf of this size (1 = the last level).
    pub const fn level(self) -> usize {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 2,
        }
    }
}

/// Access rights of a leaf; reads are always allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub write: bool,
    pub execute: bool,
}

impl Perms {
    pub const ALL: Self = Self {
        write: true,
        execute: true,
    };
}

/// A vendor's entry format (NPT, EPT, the TDX mirror). Entries are plain `u64`s.
pub trait PteFormat {
    /// A software-available bit set on leaves that map a prepared (pinned) private
    /// frame: a fast-path mirror of the private memory object's state, which stays
    /// authoritative (entries are caches that may be zapped at any time).
    const PINNED: u64;
    /// A non-present value no real entry ever holds. An entry holding it is locked: its
    /// external counterpart (the TDX S-EPT) is being changed, and other walkers retry.
    const FROZEN: u64;

    /// An entry linking to the next-level table at `pa`.
    fn table(pa: u64) -> u64;
    /// A leaf mapping `pa` with `size` and `perms`.
    fn leaf(pa: u64, size: PageSize, perms: Perms) -> u64;
    fn is_present(pte: u64) -> bool;
    /// A present entry above level 1 that maps memory instead of linking a table.
    fn is_huge(pte: u64) -> bool;
    /// The physical address an entry points at.
    fn address(pte: u64) -> u64;

    fn is_pinned(pte: u64) -> bool {
        pte & Self::PINNED != 0
    }
}

/// Which leaves a zap removes. Private and shared mappings are separate aliases of a
/// GPA; each operation names the one it invalidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Leaves of prepared private frames (conversion to shared, punch-hole).
    Private,
    /// Leaves of shared frames (conversion to private, host-side invalidation).
    Shared,
    /// Everything (memslot deletion, teardown).
    Both,
}

impl Scope {
    pub fn covers<F: PteFormat>(self, pte: u64) -> bool {
        match self {
            Self::Private => F::is_pinned(pte),
            Self::Shared => !F::is_pinned(pte),
            Self::Both => true,
        }
    }
}
