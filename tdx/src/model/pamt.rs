//! The PAMT: what each host page is to the module. Pages not listed are NDA (free for
//! the host).

use alloc::collections::BTreeMap;

use crate::abi::Level;
use crate::status::Status;

/// PAMT page type. The module also has TDVPR and TDCX types; the model types every
/// control page but the TDR as TDCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageType {
    /// Not assigned to the module.
    Nda,
    Tdr,
    Tdcs,
    Sept,
    /// A TD private page.
    Reg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PamtEntry {
    pub ty: PageType,
    /// 4 KiB, or 2 MiB for a large private page.
    pub size: Level,
    /// The owning TD's TDR.
    pub owner: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Pamt {
    /// Keyed by the page's base address.
    pages: BTreeMap<u64, PamtEntry>,
}

/// Physical addresses stop below bit 52; the HKID bits above must be clear.
const MAX_PA: u64 = 1 << 52;

impl Pamt {
    /// The owned page holding `hpa`, with its base.
    pub fn find(&self, hpa: u64) -> Option<(u64, PamtEntry)> {
        let (&base, &entry) = self.pages.range(..=hpa).next_back()?;
        (hpa < base + entry.size.span()).then_some((base, entry))
    }

    pub fn page_type(&self, hpa: u64) -> PageType {
        self.find(hpa).map_or(PageType::Nda, |(_, entry)| entry.ty)
    }

    /// Checks a page the caller gives to the module (`check_and_lock_free_range_hpa`):
    /// aligned to its size, else `TDX_OPERAND_INVALID`; every 4 KiB of it NDA, else
    /// `TDX_PAGE_METADATA_INCORRECT` (the module answers this, not PAGE_NOT_FREE, for a
    /// page already owned).
    pub fn check_free(&self, hpa: u64, size: Level) -> Result<(), Status> {
        if !hpa.is_multiple_of(size.span()) || hpa >= MAX_PA {
            return Err(Status::OPERAND_INVALID);
        }
        let overlaps_later = self.pages.range(hpa..hpa + size.span()).next().is_some();
        if overlaps_later || self.find(hpa).is_some() {
            return Err(Status::PAGE_METADATA_INCORRECT);
        }
        Ok(())
    }

    pub fn assign(&mut self, hpa: u64, size: Level, ty: PageType, owner: u64) {
        self.pages.insert(hpa, PamtEntry { ty, size, owner });
    }

    /// The page at `base` goes back to NDA.
    pub fn release(&mut self, base: u64) {
        self.pages.remove(&base);
    }

    /// Every owned page, by base address.
    pub fn iter(&self) -> impl Iterator<Item = (u64, PamtEntry)> + '_ {
        self.pages.iter().map(|(&base, &entry)| (base, entry))
    }
}

/// 4 KiB pages in a page of `size` (the unit of TDR.CHLDCNT).
pub(super) const fn pages_in(size: Level) -> u64 {
    1 << (9 * size.get() as u32)
}
