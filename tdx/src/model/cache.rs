//! Cache lines written with a private key: which host pages may hold them, and the
//! progress of TDH.PHYMEM.CACHE.WB, which writes them all back.

use alloc::collections::BTreeSet;

use crate::abi::Level;

/// 4 KiB pages that may hold dirty lines under a private key. Handing such a page back
/// to the host's pool without a write-back lets the old lines overwrite its new data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct DirtyLines {
    pages: BTreeSet<u64>,
}

impl DirtyLines {
    /// The module or the guest wrote the page of `size` at `hpa` with a private key.
    pub fn touch(&mut self, hpa: u64, size: Level) {
        let base = Level::L4K.align(hpa);
        let span = Level::L4K.span();
        self.pages
            .extend((0..size.span() / span).map(|page| base + page * span));
    }

    /// TDH.PHYMEM.PAGE.WBINVD of one 4 KiB page.
    pub fn clean(&mut self, hpa: u64) {
        self.pages.remove(&Level::L4K.align(hpa));
    }

    /// A completed CACHE.WB.
    pub fn clean_all(&mut self) {
        self.pages.clear();
    }

    pub fn is_dirty(&self, hpa: u64) -> bool {
        self.pages.contains(&Level::L4K.align(hpa))
    }
}

/// The package's CACHE.WB state (one package) and whether the TD's key was written
/// back since VPFLUSHDONE (the KOT entry's WBINVD bitmap, cleared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CacheWb {
    /// Interruptions before a write-back completes (the harness's setting).
    pub interruptions: u32,
    /// An interrupted write-back: how often it was interrupted so far.
    pub interrupted: Option<u32>,
    /// The TD's key was written back after VPFLUSHDONE: KEY.FREEID may proceed.
    pub done: bool,
}

impl CacheWb {
    pub fn new() -> Self {
        Self {
            interruptions: 1,
            interrupted: None,
            done: false,
        }
    }
}
