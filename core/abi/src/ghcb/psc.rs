//! The Page State Change descriptor: the request of NAE event
//! [`SVM_VMGEXIT_PSC`](super::SVM_VMGEXIT_PSC), in the GHCB shared buffer where
//! `sw_scratch` points.
//!
//! Layout (Linux `arch/x86/include/asm/sev-common.h`, `struct psc_hdr`, `struct
//! psc_entry`), little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | `cur_entry`: first entry not yet done |
//! | 2..4 | `end_entry`: last entry of the request, below [`PSC_MAX_ENTRIES`] |
//! | 4..8 | reserved |
//! | 8 + 8*i | entry *i*: \[11:0\] `cur_page`, \[51:12\] GFN, \[55:52\] operation, \[56\] page size (1 = 2 MiB), \[63:57\] reserved |
//!
//! An entry covers `npages` 4 KiB pages from its GFN: 512 for a 2 MiB entry (GFN 2 MiB
//! aligned), else 1; `cur_page` of them are done. The hypervisor records its progress
//! in the descriptor (each entry's `cur_page`, then `cur_entry`) and may return before
//! the end; the guest repeats the VMGEXIT while `cur_entry <= end_entry`.
//!
//! Hypervisor side: [`PscDescriptor::parse`] validates, [`PscDescriptor::next_range`]
//! gives the next run of work (merged as KVM's `snp_begin_psc` merges), and
//! [`PscDescriptor::complete`] records what was done (as `__snp_complete_one_psc`).
//! Guest side: [`PscBuilder`] fills a descriptor from page ranges.

/// Most entries in one request: `VMGEXIT_PSC_MAX_COUNT`, what fits in the shared buffer
/// after the header ((2032 - 8) / 8). (Linux's guest sends at most 64,
/// `VMGEXIT_PSC_MAX_ENTRY`, for stack reasons.)
pub const PSC_MAX_ENTRIES: usize = 253;
/// Size of the header.
pub const PSC_HEADER_SIZE: usize = 8;
/// Size of one entry.
pub const PSC_ENTRY_SIZE: usize = 8;
/// Bytes of a descriptor with `PSC_MAX_ENTRIES` entries: the whole shared buffer.
pub const PSC_MAX_SIZE: usize = PSC_HEADER_SIZE + PSC_MAX_ENTRIES * PSC_ENTRY_SIZE;

/// `sw_exit_info_2` after a PSC: the header is invalid (`VMGEXIT_PSC_ERROR_INVALID_HDR`).
pub const PSC_ERROR_INVALID_HDR: u64 = 1 << 32 | 1;
/// `sw_exit_info_2` after a PSC: an entry is invalid (`VMGEXIT_PSC_ERROR_INVALID_ENTRY`).
pub const PSC_ERROR_INVALID_ENTRY: u64 = 1 << 32 | 2;
/// `sw_exit_info_2` after a PSC: the hypervisor failed otherwise
/// (`VMGEXIT_PSC_ERROR_GENERIC`).
pub const PSC_ERROR_GENERIC: u64 = 0x100 << 32;

/// 4 KiB pages in a 2 MiB entry.
pub const PAGES_PER_2M: u64 = 512;

const GFN_BITS: u32 = 40;
const GFN_MASK: u64 = (1 << GFN_BITS) - 1;
const CUR_PAGE_MASK: u64 = 0xfff;
const RESERVED_SHIFT: u32 = 57;

/// A page state operation (GHCBData\[55:52\] of the MSR request, bits 55:52 of an
/// entry): a raw 4-bit value, with the defined ones as constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PscOp(pub u8);

impl PscOp {
    /// Make the page private (`SNP_PAGE_STATE_PRIVATE`).
    pub const PRIVATE: Self = Self(1);
    /// Make the page shared (`SNP_PAGE_STATE_SHARED`).
    pub const SHARED: Self = Self(2);
    /// Split a 2 MiB RMP entry (`SNP_PAGE_STATE_PSMASH`): a hint, completed without any
    /// state change (as KVM does).
    pub const PSMASH: Self = Self(3);
    /// Merge 4 KiB RMP entries to 2 MiB (`SNP_PAGE_STATE_UNSMASH`): likewise a hint.
    pub const UNSMASH: Self = Self(4);

    /// One of the four operations an entry may carry.
    pub const fn is_valid(self) -> bool {
        matches!(self.0, 1..=4)
    }

    /// Private or shared: an operation that converts pages.
    pub const fn converts(self) -> bool {
        matches!(self.0, 1 | 2)
    }
}

/// Why a descriptor was refused; [`PscError::code`] is the `sw_exit_info_2` for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscError {
    /// `end_entry` is [`PSC_MAX_ENTRIES`] or more, or the entries up to it do not fit
    /// in the buffer.
    InvalidHeader,
    /// Entry `index` has an undefined operation, reserved bits set, a GFN not aligned
    /// to its page size, or a `cur_page` beyond its pages.
    InvalidEntry { index: u16 },
}

impl PscError {
    pub const fn code(self) -> u64 {
        match self {
            Self::InvalidHeader => PSC_ERROR_INVALID_HDR,
            Self::InvalidEntry { .. } => PSC_ERROR_INVALID_ENTRY,
        }
    }
}

/// The descriptor's header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PscHeader {
    pub cur_entry: u16,
    pub end_entry: u16,
    pub reserved: u32,
}

impl PscHeader {
    /// The header at the start of `bytes`, if there are 8 of them.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let header = bytes.get(..PSC_HEADER_SIZE)?;
        Some(Self {
            cur_entry: u16::from_le_bytes([header[0], header[1]]),
            end_entry: u16::from_le_bytes([header[2], header[3]]),
            reserved: u32::from_le_bytes([header[4], header[5], header[6], header[7]]),
        })
    }

    pub fn to_bytes(self) -> [u8; PSC_HEADER_SIZE] {
        let mut bytes = [0; PSC_HEADER_SIZE];
        bytes[0..2].copy_from_slice(&self.cur_entry.to_le_bytes());
        bytes[2..4].copy_from_slice(&self.end_entry.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.reserved.to_le_bytes());
        bytes
    }

    /// Nothing left to do: `cur_entry > end_entry`.
    pub const fn is_done(self) -> bool {
        self.cur_entry > self.end_entry
    }
}

/// One entry, decoded field by field (any 64-bit value decodes; [`PscEntry::check`]
/// says whether it is valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscEntry {
    /// Pages of this entry already done (12 bits).
    pub cur_page: u16,
    /// First 4 KiB frame (40 bits).
    pub gfn: u64,
    pub op: PscOp,
    /// A 2 MiB entry.
    pub huge: bool,
    /// Bits 63:57, must be zero.
    pub reserved: u8,
}

impl PscEntry {
    /// A fresh entry: nothing done yet.
    pub const fn new(gfn: u64, op: PscOp, huge: bool) -> Self {
        Self {
            cur_page: 0,
            gfn,
            op,
            huge,
            reserved: 0,
        }
    }

    pub const fn decode(raw: u64) -> Self {
        Self {
            cur_page: (raw & CUR_PAGE_MASK) as u16,
            gfn: (raw >> 12) & GFN_MASK,
            op: PscOp(((raw >> 52) & 0xf) as u8),
            huge: (raw >> 56) & 1 != 0,
            reserved: (raw >> RESERVED_SHIFT) as u8,
        }
    }

    /// Entry `index` of the descriptor in `bytes` (which start with the header), if
    /// `bytes` hold it; no other check.
    pub fn read(bytes: &[u8], index: u16) -> Option<Self> {
        let start = PSC_HEADER_SIZE + usize::from(index) * PSC_ENTRY_SIZE;
        let bytes = bytes.get(start..start + PSC_ENTRY_SIZE)?;
        let mut raw = [0; 8];
        raw.copy_from_slice(bytes);
        Some(Self::decode(u64::from_le_bytes(raw)))
    }

    /// The entry as 64 bits; each field truncated to its width.
    pub const fn encode(self) -> u64 {
        (self.reserved as u64) << RESERVED_SHIFT
            | (self.huge as u64) << 56
            | ((self.op.0 as u64) & 0xf) << 52
            | (self.gfn & GFN_MASK) << 12
            | (self.cur_page as u64 & CUR_PAGE_MASK)
    }

    /// 4 KiB pages the entry covers: 512 or 1.
    pub const fn pages(self) -> u64 {
        if self.huge { PAGES_PER_2M } else { 1 }
    }

    /// Guest-physical address of its first page.
    pub const fn gpa(self) -> u64 {
        self.gfn << 12
    }

    /// Pages not yet done (0 for an entry whose `cur_page` is out of range).
    pub const fn remaining(self) -> u64 {
        self.pages().saturating_sub(self.cur_page as u64)
    }

    /// KVM's checks (`snp_begin_psc`: `cur_page <= npages`, GFN aligned to `npages`),
    /// plus a defined operation (KVM refuses the others when it executes them) and
    /// clear reserved bits. `index` goes into the error.
    pub const fn check(self, index: u16) -> Result<(), PscError> {
        let aligned = self.gfn & (self.pages() - 1) == 0;
        let valid = self.op.is_valid()
            && self.reserved == 0
            && self.cur_page as u64 <= self.pages()
            && aligned;
        if valid {
            Ok(())
        } else {
            Err(PscError::InvalidEntry { index })
        }
    }
}

/// A run of pages to convert, from [`PscDescriptor::next_range`]: entries
/// `first_entry..=last_entry`, merged because they have the same operation and page
/// size and are contiguous, starting where the first one was left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscRange {
    pub first_entry: u16,
    pub last_entry: u16,
    /// First page of the run.
    pub gpa: u64,
    /// 4 KiB pages in the run.
    pub pages: u64,
    /// [`PscOp::PRIVATE`] or [`PscOp::SHARED`].
    pub op: PscOp,
    /// 2 MiB entries (false when the run resumes a partly done 2 MiB entry, whose rest
    /// is handled as 4 KiB pages, as KVM does).
    pub huge: bool,
    /// `cur_page` of the first entry when the run was taken, and its page count.
    first_done: u16,
    first_pages: u16,
}

impl PscRange {
    /// Whether the run converts to private (else to shared).
    pub const fn to_private(&self) -> bool {
        self.op.0 == PscOp::PRIVATE.0
    }

    /// Length of the run in bytes.
    pub const fn len(&self) -> u64 {
        self.pages << 12
    }

    pub const fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// Pages of the run before `gpa` (clamped to the run): what a conversion that
    /// stopped at `gpa` did.
    pub const fn pages_before(&self, gpa: u64) -> u64 {
        let pages = gpa.saturating_sub(self.gpa) >> 12;
        if pages < self.pages {
            pages
        } else {
            self.pages
        }
    }
}

/// A Page State Change descriptor over a byte buffer: the shared buffer from where
/// `sw_scratch` points to its end ([`super::Ghcb::scratch_buffer_mut`]).
///
/// A descriptor is validated whole before anything happens, so an invalid one converts
/// nothing: the header, and every entry from `cur_entry` to `end_entry`. (KVM checks
/// entries as it reaches them, after converting the ones before.) Afterwards only this
/// type changes the buffer, which it borrows, so what it re-reads is what it checked;
/// it never panics and never reads outside the buffer, whatever the bytes.
#[derive(Debug)]
pub struct PscDescriptor<B> {
    buf: B,
}

impl<B: AsRef<[u8]>> PscDescriptor<B> {
    /// Check the descriptor in `buf`. `cur_entry > end_entry` is valid: there is
    /// nothing to do ([`Self::next_range`] is `None`).
    pub fn parse(buf: B) -> Result<Self, PscError> {
        let header = PscHeader::read(buf.as_ref()).ok_or(PscError::InvalidHeader)?;
        if usize::from(header.end_entry) >= PSC_MAX_ENTRIES {
            return Err(PscError::InvalidHeader);
        }
        let size = PSC_HEADER_SIZE + (usize::from(header.end_entry) + 1) * PSC_ENTRY_SIZE;
        if buf.as_ref().len() < size {
            return Err(PscError::InvalidHeader);
        }
        let descriptor = Self { buf };
        for index in header.cur_entry..=header.end_entry {
            // In the buffer: index <= end_entry, checked above.
            let entry = descriptor.entry(index).ok_or(PscError::InvalidHeader)?;
            entry.check(index)?;
        }
        Ok(descriptor)
    }

    pub fn header(&self) -> PscHeader {
        PscHeader::read(self.buf.as_ref()).unwrap_or_default()
    }

    /// Entry `index`, if the buffer holds it (whether or not it is below `end_entry`).
    pub fn entry(&self, index: u16) -> Option<PscEntry> {
        PscEntry::read(self.buf.as_ref(), index)
    }

    /// Nothing left to do.
    pub fn is_done(&self) -> bool {
        self.header().is_done()
    }

    pub fn bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn into_inner(self) -> B {
        self.buf
    }

    /// Entry `index` if it is part of the request and valid.
    fn live_entry(&self, index: u16, header: PscHeader) -> Option<PscEntry> {
        if index > header.end_entry || usize::from(index) >= PSC_MAX_ENTRIES {
            return None;
        }
        let entry = self.entry(index)?;
        entry.check(index).ok().map(|()| entry)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PscDescriptor<B> {
    /// The next run of pages to convert, from `cur_entry` on, or `None` once
    /// `cur_entry > end_entry`.
    ///
    /// As KVM's `snp_begin_psc`: entries already done are stepped over (`cur_entry`
    /// advances past them); a 2 MiB entry partly done continues at its `cur_page` as
    /// 4 KiB pages; the entries that follow are merged into the run while they have
    /// the same operation and page size, start where the run ends and have nothing done.
    /// (KVM compares a following entry's GFN with the unadjusted GFN of a partly done
    /// first entry; this compares with where the run really ends.) Runs of PSMASH or
    /// UNSMASH are completed on the spot, without being returned.
    ///
    /// Changes the buffer only by completing entries that need no work. (`None` also
    /// if the entry at `cur_entry` were invalid, which [`Self::parse`] rules out and
    /// only this type's own writes follow.)
    pub fn next_range(&mut self) -> Option<PscRange> {
        loop {
            let header = self.header();
            if header.is_done() {
                return None;
            }
            let index = header.cur_entry;
            let first = self.live_entry(index, header)?;
            let remaining = first.remaining();
            if remaining == 0 {
                self.set_cur_entry(index + 1);
                continue;
            }
            let partial = first.cur_page != 0;
            let gpa = (first.gfn + u64::from(first.cur_page)) << 12;
            let huge = first.huge && !partial;
            let mut pages = remaining;
            let mut last = index;
            while let Some(next) = self.live_entry(last + 1, header) {
                let joins = next.op == first.op
                    && next.huge == huge
                    && next.cur_page == 0
                    && next.gpa() == gpa + (pages << 12);
                if !joins {
                    break;
                }
                pages += next.pages();
                last += 1;
            }
            let range = PscRange {
                first_entry: index,
                last_entry: last,
                gpa,
                pages,
                op: first.op,
                huge,
                first_done: first.cur_page,
                first_pages: first.pages() as u16,
            };
            if first.op.converts() {
                return Some(range);
            }
            self.complete(&range, range.pages);
        }
    }

    /// Record that the first `pages` pages of `range` (from [`Self::next_range`], on
    /// this descriptor) are done: each entry fully done gets `cur_page` = its page
    /// count, the entry where the work stopped its partial count, and `cur_entry`
    /// moves to the first entry not fully done (past `range.last_entry` when all are).
    /// `pages` beyond the range count as the whole range; 0 records nothing.
    pub fn complete(&mut self, range: &PscRange, pages: u64) {
        let mut left = pages.min(range.pages);
        let mut index = range.first_entry;
        loop {
            let (done_before, total) = if index == range.first_entry {
                (range.first_done, range.first_pages)
            } else if range.huge {
                (0, PAGES_PER_2M as u16)
            } else {
                (0, 1)
            };
            let take = left.min(u64::from(total.saturating_sub(done_before))) as u16;
            left -= u64::from(take);
            self.set_cur_page(index, done_before + take);
            if done_before + take < total {
                self.set_cur_entry(index);
                return;
            }
            if index >= range.last_entry {
                self.set_cur_entry(index.saturating_add(1));
                return;
            }
            index += 1;
        }
    }

    fn set_cur_entry(&mut self, cur_entry: u16) {
        if let Some(bytes) = self.buf.as_mut().get_mut(0..2) {
            bytes.copy_from_slice(&cur_entry.to_le_bytes());
        }
    }

    fn set_cur_page(&mut self, index: u16, cur_page: u16) {
        let start = PSC_HEADER_SIZE + usize::from(index) * PSC_ENTRY_SIZE;
        if let Some(bytes) = self.buf.as_mut().get_mut(start..start + PSC_ENTRY_SIZE) {
            let mut raw = [0; 8];
            raw.copy_from_slice(bytes);
            let raw =
                u64::from_le_bytes(raw) & !CUR_PAGE_MASK | u64::from(cur_page) & CUR_PAGE_MASK;
            bytes.copy_from_slice(&raw.to_le_bytes());
        }
    }
}

/// Guest side: fills a descriptor into a buffer (the GHCB shared buffer) from page
/// ranges, with 2 MiB entries wherever a range is 2 MiB aligned and long enough, 4 KiB
/// entries elsewhere, up to [`PSC_MAX_ENTRIES`] (or what the buffer holds).
#[derive(Debug)]
pub struct PscBuilder<'a> {
    buf: &'a mut [u8],
    entries: u16,
    capacity: u16,
}

impl<'a> PscBuilder<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        let fits = buf.len().saturating_sub(PSC_HEADER_SIZE) / PSC_ENTRY_SIZE;
        Self {
            buf,
            entries: 0,
            capacity: fits.min(PSC_MAX_ENTRIES) as u16,
        }
    }

    /// Entries written so far.
    pub fn len(&self) -> usize {
        usize::from(self.entries)
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Add `pages` 4 KiB pages from `gpa` with `op`; returns how many were added: all
    /// of them, or fewer once the descriptor is full (add the rest to the next one).
    /// Refused, with nothing added, when `gpa` is not 4 KiB aligned, the range wraps or
    /// goes beyond the 52-bit GPAs an entry can name, or `op` is not defined
    /// (`InvalidEntry` with the index the entry would have had).
    pub fn push(&mut self, gpa: u64, pages: u64, op: PscOp) -> Result<u64, PscError> {
        let invalid = PscError::InvalidEntry {
            index: self.entries,
        };
        let end = pages
            .checked_mul(4096)
            .and_then(|len| gpa.checked_add(len))
            .ok_or(invalid)?;
        if !gpa.is_multiple_of(4096) || end > 1 << 52 || !op.is_valid() {
            return Err(invalid);
        }
        let mut at = gpa;
        while at < end && !self.is_full() {
            let huge = at.is_multiple_of(PAGES_PER_2M << 12) && end - at >= PAGES_PER_2M << 12;
            let entry = PscEntry::new(at >> 12, op, huge);
            let start = PSC_HEADER_SIZE + self.len() * PSC_ENTRY_SIZE;
            if let Some(bytes) = self.buf.get_mut(start..start + PSC_ENTRY_SIZE) {
                bytes.copy_from_slice(&entry.encode().to_le_bytes());
            }
            self.entries += 1;
            at += entry.pages() << 12;
        }
        Ok((at - gpa) >> 12)
    }

    /// Write the header (`cur_entry` 0, `end_entry` the last entry); `None`, with
    /// nothing written, when no entry was added.
    pub fn finish(self) -> Option<PscHeader> {
        let header = PscHeader {
            cur_entry: 0,
            end_entry: self.entries.checked_sub(1)?,
            reserved: 0,
        };
        self.buf
            .get_mut(..PSC_HEADER_SIZE)?
            .copy_from_slice(&header.to_bytes());
        Some(header)
    }
}

#[cfg(test)]
mod tests;
