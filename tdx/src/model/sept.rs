//! The S-EPT as the module sees it: one entry per (level, GPA) that is not FREE, and the
//! walk from the root (spec digest C.4.3).

use alloc::collections::BTreeMap;

use super::SeptEntry;
use crate::abi::Level;
use crate::status::Status;

/// An S-EPT entry state. The module has 16; REMOVED, the *W and EXPORTED_* states
/// belong to TD migration, which the model leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryState {
    Free,
    /// Links a child S-EPT page.
    NlMapped,
    NlBlocked,
    Mapped,
    Blocked,
    /// Augmented, not yet accepted by the guest.
    Pending,
    PendingBlocked,
}

impl EntryState {
    pub const ALL: [Self; 7] = [
        Self::Free,
        Self::NlMapped,
        Self::NlBlocked,
        Self::Mapped,
        Self::Blocked,
        Self::Pending,
        Self::PendingBlocked,
    ];

    /// Maps a page (FREE is neither a leaf nor a table link).
    pub const fn is_leaf(self) -> bool {
        matches!(
            self,
            Self::Mapped | Self::Blocked | Self::Pending | Self::PendingBlocked
        )
    }

    pub const fn is_blocked(self) -> bool {
        matches!(self, Self::NlBlocked | Self::Blocked | Self::PendingBlocked)
    }

    /// What RANGE.BLOCK makes of the states it accepts.
    pub(super) const fn blocked(self) -> Option<Self> {
        match self {
            Self::NlMapped => Some(Self::NlBlocked),
            Self::Mapped => Some(Self::Blocked),
            Self::Pending => Some(Self::PendingBlocked),
            _ => None,
        }
    }

    /// What RANGE.UNBLOCK makes of the states it accepts.
    pub(super) const fn unblocked(self) -> Option<Self> {
        match self {
            Self::NlBlocked => Some(Self::NlMapped),
            Self::Blocked => Some(Self::Mapped),
            Self::PendingBlocked => Some(Self::Pending),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub state: EntryState,
    pub hpa: u64,
    /// TD epoch when the entry was blocked (kept in the page's PAMT entry by the module).
    pub bepoch: u64,
}

impl Entry {
    const FREE: Self = Self {
        state: EntryState::Free,
        hpa: 0,
        bepoch: 0,
    };
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Sept {
    /// Keyed by level, then the GPA aligned to it; FREE entries are absent.
    entries: BTreeMap<(Level, u64), Entry>,
}

impl Sept {
    pub fn get(&self, gpa: u64, level: Level) -> Option<Entry> {
        self.entries.get(&(level, level.align(gpa))).copied()
    }

    pub fn set(&mut self, gpa: u64, level: Level, entry: Entry) {
        debug_assert!(entry.state != EntryState::Free);
        self.entries.insert((level, level.align(gpa)), entry);
    }

    pub fn remove(&mut self, gpa: u64, level: Level) {
        self.entries.remove(&(level, level.align(gpa)));
    }

    /// The walk from the root towards `target` (`secure_ept_walk`): it passes only
    /// NL_MAPPED entries and stops at `target` or at the first entry above it that is not
    /// present or is a leaf. Returns the level reached and the entry there.
    pub fn walk(&self, gpa: u64, target: Level) -> (Level, Entry) {
        let mut level = Level::TOP;
        loop {
            let entry = self.get(gpa, level).unwrap_or(Entry::FREE);
            if level == target || entry.state != EntryState::NlMapped {
                return (level, entry);
            }
            level = Level::new(level.get() - 1).expect("NL entries exist only above 4K");
        }
    }

    /// The entry at `level` covering `gpa` if the walk reaches it (FREE included), else
    /// `TDX_EPT_WALK_FAILED` (a missing or blocked table above, or a leaf above).
    pub fn reach(&self, gpa: u64, level: Level) -> Result<Entry, Status> {
        match self.walk(gpa, level) {
            (reached, entry) if reached == level => Ok(entry),
            _ => Err(Status::EPT_WALK_FAILED),
        }
    }

    /// Whether all 512 entries of the table linked at (`gpa`, `level`) are FREE.
    pub fn table_is_empty(&self, gpa: u64, level: Level) -> bool {
        let Some(child) = Level::new(level.get().wrapping_sub(1)) else {
            return true;
        };
        let base = level.align(gpa);
        self.entries
            .range((child, base)..(child, base + level.span()))
            .next()
            .is_none()
    }

    /// Forgets every entry: after KEY.FREEID the tree can no longer be walked.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = SeptEntry> + '_ {
        self.entries.iter().map(|(&(level, gpa), entry)| SeptEntry {
            gpa,
            level,
            state: entry.state,
            hpa: entry.hpa,
        })
    }
}
