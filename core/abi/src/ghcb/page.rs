//! The GHCB page: 4 KiB of shared memory through which a VMGEXIT's request and answer
//! travel (GHCB specification, protocol version 2, standard usage).
//!
//! Layout (Linux `arch/x86/include/asm/svm.h`, `struct ghcb` and `struct
//! ghcb_save_area`; its `BUILD_BUG_RESERVED_OFFSET` checks pin the reserved gaps, and
//! `EXPECTED_GHCB_SAVE_AREA_SIZE` = 1032):
//!
//! | offset | size | field |
//! |---|---|---|
//! | `0x000` | `0x408` | save area: the registers of [`Field`], then `valid_bitmap` at `0x3f0` (16 bytes) |
//! | `0x800` | `0x7f0` | `shared_buffer` (`GHCB_SHARED_BUF_SIZE` = 2032) |
//! | `0xffa` | 2 | `protocol_version` |
//! | `0xffc` | 4 | `ghcb_usage` |
//!
//! A save-area field is meaningful only while its bit in the valid bitmap is set: bit
//! *n* covers the quadword at offset 8*n* (`GHCB_BITMAP_IDX(field) = offsetof / 8`), so
//! the one-byte `cpl` at `0xcb` is bit 25. [`Ghcb::get`] returns `None` for a field
//! whose bit is clear, [`Ghcb::set`] writes the field and sets its bit.
//!
//! All integers are little-endian. [`Ghcb`] is a view over the page's bytes: the
//! hypervisor uses it on its copy of the guest's page, the guest on the page itself.

use super::{GHCB_SIZE, GHCB_USAGE_STANDARD, PROTOCOL_VERSION_MAX, SVM_EXIT_VMMCALL};
use core::borrow::{Borrow, BorrowMut};

/// Offset of the 16-byte valid bitmap (`ghcb_save_area.valid_bitmap`).
pub const VALID_BITMAP_OFFSET: usize = 0x3f0;
/// Size of the valid bitmap in bytes: one bit per quadword of the first 1 KiB.
pub const VALID_BITMAP_SIZE: usize = 16;
/// Offset of the shared buffer (`ghcb.shared_buffer`: the save area is padded to 2 KiB).
pub const SHARED_BUFFER_OFFSET: usize = 0x800;
/// Size of the shared buffer (`GHCB_SHARED_BUF_SIZE`).
pub const SHARED_BUFFER_SIZE: usize = 0x7f0;
/// Offset of `protocol_version` (u16), after 10 reserved bytes at `0xff0`.
pub const PROTOCOL_VERSION_OFFSET: usize = 0xffa;
/// Offset of `ghcb_usage` (u32).
pub const USAGE_OFFSET: usize = 0xffc;

/// `sw_exit_info_1` bits 31:0 after a VMGEXIT: the request was handled.
pub const EXIT_INFO_1_OK: u32 = 0;
/// `sw_exit_info_1` bits 31:0: `sw_exit_info_2` holds an exception to raise in the guest.
pub const EXIT_INFO_1_EXCEPTION: u32 = 1;
/// `sw_exit_info_1` bits 31:0: the hypervisor refused the GHCB; `sw_exit_info_2` holds
/// one of the `ERR_*` reasons.
pub const EXIT_INFO_1_ERROR: u32 = 2;

/// `sw_exit_info_2` reasons with [`EXIT_INFO_1_ERROR`] (sev-common.h `GHCB_ERR_*`).
/// The GHCB GPA in the MSR is not the registered one.
pub const ERR_NOT_REGISTERED: u64 = 1;
/// `ghcb_usage` is not [`GHCB_USAGE_STANDARD`].
pub const ERR_INVALID_USAGE: u64 = 2;
/// `sw_scratch` does not name a usable area (Cloister: inside the shared buffer).
pub const ERR_INVALID_SCRATCH_AREA: u64 = 3;
/// A field the request needs is not marked valid.
pub const ERR_MISSING_INPUT: u64 = 4;
/// A field holds a value the request cannot take.
pub const ERR_INVALID_INPUT: u64 = 5;
/// `sw_exit_code` names no event the hypervisor serves.
pub const ERR_INVALID_EVENT: u64 = 6;

/// A save-area field of the GHCB (the ones Linux defines accessors for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Cpl,
    Rip,
    Rsp,
    Rax,
    Rcx,
    Rdx,
    Rbx,
    Rbp,
    Rsi,
    Rdi,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    SwExitCode,
    SwExitInfo1,
    SwExitInfo2,
    SwScratch,
    Xcr0,
}

impl Field {
    pub const ALL: [Field; 23] = [
        Self::Cpl,
        Self::Rip,
        Self::Rsp,
        Self::Rax,
        Self::Rcx,
        Self::Rdx,
        Self::Rbx,
        Self::Rbp,
        Self::Rsi,
        Self::Rdi,
        Self::R8,
        Self::R9,
        Self::R10,
        Self::R11,
        Self::R12,
        Self::R13,
        Self::R14,
        Self::R15,
        Self::SwExitCode,
        Self::SwExitInfo1,
        Self::SwExitInfo2,
        Self::SwScratch,
        Self::Xcr0,
    ];

    /// Byte offset in the page. From `struct ghcb_save_area` (svm.h): `cpl` follows
    /// `reserved_0x0[203]`; `rip` follows `reserved_0x168[16]` (0x178); `rsp` follows
    /// `reserved_0x180[88]` (0x1d8); `rax` follows `reserved_0x1e0[24]` (0x1f8);
    /// `rcx`, `rdx`, `rbx` follow `reserved_0x200[264]` (0x308..0x320); `rbp` through
    /// `r15` follow `reserved_0x320[8]` (0x328..0x380); the four `sw_*` follow
    /// `reserved_0x380[16]` (0x390..0x3b0); `xcr0` follows `reserved_0x3b0[56]` (0x3e8),
    /// just before `valid_bitmap` at 0x3f0. OVMF's `GHCB_REGISTER` bitmap indices
    /// (Cpl 25, Rax 63, Rcx 97, Rdx 98, Rbx 99, Rsi 102) agree.
    pub const fn offset(self) -> usize {
        match self {
            Self::Cpl => 0x0cb,
            Self::Rip => 0x178,
            Self::Rsp => 0x1d8,
            Self::Rax => 0x1f8,
            Self::Rcx => 0x308,
            Self::Rdx => 0x310,
            Self::Rbx => 0x318,
            Self::Rbp => 0x328,
            Self::Rsi => 0x330,
            Self::Rdi => 0x338,
            Self::R8 => 0x340,
            Self::R9 => 0x348,
            Self::R10 => 0x350,
            Self::R11 => 0x358,
            Self::R12 => 0x360,
            Self::R13 => 0x368,
            Self::R14 => 0x370,
            Self::R15 => 0x378,
            Self::SwExitCode => 0x390,
            Self::SwExitInfo1 => 0x398,
            Self::SwExitInfo2 => 0x3a0,
            Self::SwScratch => 0x3a8,
            Self::Xcr0 => 0x3e8,
        }
    }

    /// Width in bytes: 1 for `cpl`, 8 for every other field.
    pub const fn width(self) -> usize {
        match self {
            Self::Cpl => 1,
            _ => 8,
        }
    }

    /// Bit of the valid bitmap that covers this field (`GHCB_BITMAP_IDX`).
    pub const fn bitmap_index(self) -> usize {
        self.offset() / 8
    }
}

/// A hypercall as the guest put it in the GHCB ([`Ghcb::hypercall_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallRequest {
    /// RAX: the call number.
    pub number: u64,
    /// RBX, RCX, RDX, RSI; 0 for a register not marked valid (as KVM reads them).
    pub args: [u64; 4],
    /// CPL the guest reported (Cloister workloads run at 0).
    pub cpl: u8,
}

/// A view of a GHCB page. `P` is anything that borrows the 4 KiB: `[u8; 4096]` (the
/// hypervisor's copy), `&[u8; 4096]` to read, `&mut [u8; 4096]` to read and write.
#[derive(Clone, Debug)]
pub struct Ghcb<P> {
    page: P,
}

impl<P: Borrow<[u8; GHCB_SIZE]>> Ghcb<P> {
    pub const fn new(page: P) -> Self {
        Self { page }
    }

    pub fn into_inner(self) -> P {
        self.page
    }

    /// The whole page.
    pub fn bytes(&self) -> &[u8; GHCB_SIZE] {
        self.page.borrow()
    }

    /// Whether `field`'s bit is set in the valid bitmap.
    pub fn is_valid(&self, field: Field) -> bool {
        let index = field.bitmap_index();
        self.bytes()[VALID_BITMAP_OFFSET + index / 8] & (1 << (index % 8)) != 0
    }

    /// `field`, zero-extended, if it is marked valid.
    pub fn get(&self, field: Field) -> Option<u64> {
        self.is_valid(field).then(|| self.get_raw(field))
    }

    /// `field`, zero-extended, whatever its valid bit says.
    pub fn get_raw(&self, field: Field) -> u64 {
        let offset = field.offset();
        match field.width() {
            1 => u64::from(self.bytes()[offset]),
            _ => read_u64(self.bytes(), offset),
        }
    }

    /// The negotiated protocol version the guest wrote.
    pub fn protocol_version(&self) -> u16 {
        let [a, b] = [PROTOCOL_VERSION_OFFSET, PROTOCOL_VERSION_OFFSET + 1];
        u16::from_le_bytes([self.bytes()[a], self.bytes()[b]])
    }

    /// `ghcb_usage`: [`GHCB_USAGE_STANDARD`] for the layout described here.
    pub fn usage(&self) -> u32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.bytes()[USAGE_OFFSET..USAGE_OFFSET + 4]);
        u32::from_le_bytes(bytes)
    }

    /// The shared buffer ([`SHARED_BUFFER_SIZE`] bytes).
    pub fn shared_buffer(&self) -> &[u8] {
        &self.bytes()[SHARED_BUFFER_OFFSET..SHARED_BUFFER_OFFSET + SHARED_BUFFER_SIZE]
    }

    /// Where `sw_scratch` points inside the shared buffer, as an offset from the
    /// buffer's start, for a GHCB page at `ghcb_gpa`: `Err(ERR_MISSING_INPUT)` if
    /// `sw_scratch` is not marked valid, `Err(ERR_INVALID_SCRATCH_AREA)` if it is not
    /// inside this page's shared buffer (Cloister takes scratch areas there only).
    pub fn scratch_offset(&self, ghcb_gpa: u64) -> Result<usize, u64> {
        let scratch = self.get(Field::SwScratch).ok_or(ERR_MISSING_INPUT)?;
        let start = ghcb_gpa
            .checked_add(SHARED_BUFFER_OFFSET as u64)
            .ok_or(ERR_INVALID_SCRATCH_AREA)?;
        match scratch.checked_sub(start) {
            Some(offset) if offset < SHARED_BUFFER_SIZE as u64 => Ok(offset as usize),
            _ => Err(ERR_INVALID_SCRATCH_AREA),
        }
    }

    /// The shared buffer from where `sw_scratch` points to its end (see
    /// [`Self::scratch_offset`] for the errors).
    pub fn scratch_buffer(&self, ghcb_gpa: u64) -> Result<&[u8], u64> {
        let offset = self.scratch_offset(ghcb_gpa)?;
        Ok(&self.shared_buffer()[offset..])
    }

    /// For the hypervisor, at any VMGEXIT with this page: the event's `sw_exit_code`,
    /// once the page passes KVM's common checks (`sev_es_validate_vmgexit`): standard
    /// usage (else `Err(ERR_INVALID_USAGE)`), and `sw_exit_code`, `sw_exit_info_1` and
    /// `sw_exit_info_2` marked valid (else `Err(ERR_MISSING_INPUT)`). The error goes back
    /// with [`Ghcb::set_error`].
    pub fn exit_code(&self) -> Result<u64, u64> {
        if self.usage() != GHCB_USAGE_STANDARD {
            return Err(ERR_INVALID_USAGE);
        }
        let inputs = [Field::SwExitInfo1, Field::SwExitInfo2];
        if !inputs.iter().all(|&field| self.is_valid(field)) {
            return Err(ERR_MISSING_INPUT);
        }
        self.get(Field::SwExitCode).ok_or(ERR_MISSING_INPUT)
    }

    /// For the hypervisor, when [`Self::exit_code`] is [`SVM_EXIT_VMMCALL`]: the call.
    /// RAX and CPL must be marked valid (else `Err(ERR_MISSING_INPUT)`, as KVM requires
    /// for VMMCALL); an argument register that is not reads as 0.
    pub fn hypercall_request(&self) -> Result<HypercallRequest, u64> {
        let number = self.get(Field::Rax).ok_or(ERR_MISSING_INPUT)?;
        let cpl = self.get(Field::Cpl).ok_or(ERR_MISSING_INPUT)? as u8;
        let arg = |field| self.get(field).unwrap_or(0);
        let args = [
            arg(Field::Rbx),
            arg(Field::Rcx),
            arg(Field::Rdx),
            arg(Field::Rsi),
        ];
        Ok(HypercallRequest { number, args, cpl })
    }

    /// For the guest, after a hypercall VMGEXIT: RAX, if the hypervisor marked it
    /// valid and `sw_exit_info_1` bits 31:0 say the request was handled; `None` means
    /// the call has no result (the hypervisor refused the GHCB or broke the protocol).
    pub fn hypercall_result(&self) -> Option<u64> {
        if self.get_raw(Field::SwExitInfo1) as u32 != EXIT_INFO_1_OK {
            return None;
        }
        self.get(Field::Rax)
    }
}

impl<P: BorrowMut<[u8; GHCB_SIZE]>> Ghcb<P> {
    /// The whole page, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8; GHCB_SIZE] {
        self.page.borrow_mut()
    }

    /// Write `field` (its low byte for `cpl`) and mark it valid.
    pub fn set(&mut self, field: Field, value: u64) {
        let offset = field.offset();
        let page = self.bytes_mut();
        match field.width() {
            1 => page[offset] = value as u8,
            _ => page[offset..offset + 8].copy_from_slice(&value.to_le_bytes()),
        }
        let index = field.bitmap_index();
        page[VALID_BITMAP_OFFSET + index / 8] |= 1 << (index % 8);
    }

    /// Clear `field`'s valid bit (its bytes stay).
    pub fn invalidate(&mut self, field: Field) {
        let index = field.bitmap_index();
        self.bytes_mut()[VALID_BITMAP_OFFSET + index / 8] &= !(1 << (index % 8));
    }

    /// Mark every field invalid: the guest does this before filling in a request, the
    /// hypervisor after reading one and before writing its outputs.
    pub fn clear_valid_bitmap(&mut self) {
        self.bytes_mut()[VALID_BITMAP_OFFSET..VALID_BITMAP_OFFSET + VALID_BITMAP_SIZE].fill(0);
    }

    pub fn set_protocol_version(&mut self, version: u16) {
        self.bytes_mut()[PROTOCOL_VERSION_OFFSET..PROTOCOL_VERSION_OFFSET + 2]
            .copy_from_slice(&version.to_le_bytes());
    }

    pub fn set_usage(&mut self, usage: u32) {
        self.bytes_mut()[USAGE_OFFSET..USAGE_OFFSET + 4].copy_from_slice(&usage.to_le_bytes());
    }

    /// The shared buffer, writable.
    pub fn shared_buffer_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[SHARED_BUFFER_OFFSET..SHARED_BUFFER_OFFSET + SHARED_BUFFER_SIZE]
    }

    /// [`Self::scratch_buffer`], writable (a Page State Change descriptor is updated in
    /// place).
    pub fn scratch_buffer_mut(&mut self, ghcb_gpa: u64) -> Result<&mut [u8], u64> {
        let offset = self.scratch_offset(ghcb_gpa)?;
        Ok(&mut self.shared_buffer_mut()[offset..])
    }

    /// For the guest: start a request for NAE event `exit_code`: clear the valid bitmap,
    /// write the protocol version and standard usage, and `sw_exit_code`,
    /// `sw_exit_info_1`, `sw_exit_info_2`. The request's own fields follow with
    /// [`Self::set`].
    pub fn start_request(&mut self, exit_code: u64, exit_info_1: u64, exit_info_2: u64) {
        self.clear_valid_bitmap();
        self.set_protocol_version(PROTOCOL_VERSION_MAX);
        self.set_usage(GHCB_USAGE_STANDARD);
        self.set(Field::SwExitCode, exit_code);
        self.set(Field::SwExitInfo1, exit_info_1);
        self.set(Field::SwExitInfo2, exit_info_2);
    }

    /// For the guest: a Cloister hypercall (docs/abi.md, Transports, GHCB):
    /// `sw_exit_code` = VMMCALL, RAX = `number`, RBX, RCX, RDX, RSI = `args`, CPL = 0,
    /// `sw_exit_info_1` = `sw_exit_info_2` = 0.
    pub fn write_hypercall(&mut self, number: u64, args: [u64; 4]) {
        self.start_request(SVM_EXIT_VMMCALL, 0, 0);
        self.set(Field::Rax, number);
        self.set(Field::Rbx, args[0]);
        self.set(Field::Rcx, args[1]);
        self.set(Field::Rdx, args[2]);
        self.set(Field::Rsi, args[3]);
        self.set(Field::Cpl, 0);
    }

    /// For the hypervisor, once it has read a request: clear the valid bitmap, then
    /// `sw_exit_info_1` = 0 (handled) and `sw_exit_info_2` = `exit_info_2`, both marked
    /// valid. A Page State Change answers 0 or its error (`psc::PSC_ERROR_*`) this way.
    pub fn write_exit_result(&mut self, exit_info_2: u64) {
        self.clear_valid_bitmap();
        self.set(Field::SwExitInfo1, 0);
        self.set(Field::SwExitInfo2, exit_info_2);
    }

    /// For the hypervisor: answer a hypercall with `rax`: [`Self::write_exit_result`]
    /// with 0, and RAX = `rax` marked valid.
    pub fn write_hypercall_result(&mut self, rax: u64) {
        self.write_exit_result(0);
        self.set(Field::Rax, rax);
    }

    /// For the hypervisor: refuse the request with `reason` (one of the `ERR_*`):
    /// `sw_exit_info_1` = [`EXIT_INFO_1_ERROR`], `sw_exit_info_2` = `reason`.
    pub fn set_error(&mut self, reason: u64) {
        self.set(Field::SwExitInfo1, u64::from(EXIT_INFO_1_ERROR));
        self.set(Field::SwExitInfo2, reason);
    }
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::super::{SVM_VMGEXIT_PSC, gfn};
    use super::*;

    #[test]
    fn offsets_match_linux_struct_ghcb() {
        let expected = [
            (Field::Cpl, 0x0cb, 25),
            (Field::Rax, 0x1f8, 63),
            (Field::Rcx, 0x308, 97),
            (Field::Rdx, 0x310, 98),
            (Field::Rbx, 0x318, 99),
            (Field::Rsi, 0x330, 102),
            (Field::SwExitCode, 0x390, 114),
            (Field::SwExitInfo1, 0x398, 115),
            (Field::SwExitInfo2, 0x3a0, 116),
            (Field::SwScratch, 0x3a8, 117),
            (Field::Xcr0, 0x3e8, 125),
        ];
        for (field, offset, bit) in expected {
            assert_eq!(field.offset(), offset, "{field:?}");
            assert_eq!(field.bitmap_index(), bit, "{field:?}");
        }
        // EXPECTED_GHCB_SAVE_AREA_SIZE: valid_bitmap then x87_state_gpa end the area.
        assert_eq!(VALID_BITMAP_OFFSET + VALID_BITMAP_SIZE + 8, 1032);
        // shared_buffer ends where reserved_0xff0 starts.
        assert_eq!(SHARED_BUFFER_OFFSET + SHARED_BUFFER_SIZE, 0xff0);
        assert_eq!(USAGE_OFFSET + 4, GHCB_SIZE);
    }

    #[test]
    fn fields_do_not_overlap_each_other_or_the_bitmap() {
        for (i, a) in Field::ALL.iter().enumerate() {
            assert!(a.offset() + a.width() <= VALID_BITMAP_OFFSET);
            assert!(a.bitmap_index() < VALID_BITMAP_SIZE * 8);
            for b in &Field::ALL[i + 1..] {
                let disjoint =
                    a.offset() + a.width() <= b.offset() || b.offset() + b.width() <= a.offset();
                assert!(disjoint, "{a:?} {b:?}");
                assert_ne!(a.bitmap_index(), b.bitmap_index(), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn get_honours_the_valid_bitmap_and_set_marks_valid() {
        let mut ghcb = Ghcb::new([0u8; GHCB_SIZE]);
        for (i, &field) in Field::ALL.iter().enumerate() {
            assert_eq!(ghcb.get(field), None);
            let value = 0x0102_0304_0506_0700 | i as u64;
            ghcb.set(field, value);
            let stored = if field.width() == 1 {
                value & 0xff
            } else {
                value
            };
            assert_eq!(ghcb.get(field), Some(stored), "{field:?}");
        }
        // Bits land where Linux's test_bit on the bitmap looks: rax is bit 63.
        assert_eq!(ghcb.bytes()[VALID_BITMAP_OFFSET + 7] & 0x80, 0x80);
        assert_eq!(ghcb.bytes()[0x1f8], 0x03);
        ghcb.invalidate(Field::Rax);
        assert_eq!(ghcb.get(Field::Rax), None);
        assert_eq!(ghcb.get_raw(Field::Rax), 0x0102_0304_0506_0703);
        ghcb.clear_valid_bitmap();
        assert!(Field::ALL.iter().all(|&field| ghcb.get(field).is_none()));
    }

    #[test]
    fn version_usage_and_shared_buffer() {
        let mut page = [0u8; GHCB_SIZE];
        let mut ghcb = Ghcb::new(&mut page);
        ghcb.set_protocol_version(2);
        ghcb.set_usage(0xdead_beef);
        ghcb.shared_buffer_mut()[0] = 0xaa;
        let last = SHARED_BUFFER_SIZE - 1;
        ghcb.shared_buffer_mut()[last] = 0xbb;
        assert_eq!(ghcb.shared_buffer().len(), SHARED_BUFFER_SIZE);
        assert_eq!(page[0xffa..0xffc], [2, 0]);
        assert_eq!(page[0xffc..], [0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(page[0x800], 0xaa);
        assert_eq!(page[0xfef], 0xbb);
        let read = Ghcb::new(&page);
        assert_eq!((read.protocol_version(), read.usage()), (2, 0xdead_beef));
    }

    #[test]
    fn a_hypercall_round_trips_between_guest_and_hypervisor() {
        let mut page = [0xffu8; GHCB_SIZE];
        let mut guest = Ghcb::new(&mut page);
        guest.write_hypercall(5, [1, 2, 3, 4]);
        // The hypervisor reads its copy.
        let mut host = Ghcb::new(page);
        assert_eq!(host.exit_code(), Ok(SVM_EXIT_VMMCALL));
        assert_eq!(host.protocol_version(), 2);
        assert_eq!(
            host.hypercall_request(),
            Ok(HypercallRequest {
                number: 5,
                args: [1, 2, 3, 4],
                cpl: 0
            })
        );
        // Only the fields the guest set are valid (the 0xff fill was cleared).
        assert_eq!(host.get(Field::Rdi), None);
        host.write_hypercall_result(42);
        assert_eq!(host.hypercall_result(), Some(42));
        assert_eq!(host.get(Field::Rbx), None);
        // An answer without RAX marked valid, or with an error, has no result.
        host.invalidate(Field::Rax);
        assert_eq!(host.hypercall_result(), None);
        host.write_hypercall_result(42);
        host.set_error(ERR_INVALID_INPUT);
        assert_eq!(host.hypercall_result(), None);
    }

    #[test]
    fn the_hypervisor_rejects_incomplete_requests() {
        let mut ghcb = Ghcb::new([0u8; GHCB_SIZE]);
        assert_eq!(ghcb.exit_code(), Err(ERR_MISSING_INPUT));
        ghcb.start_request(SVM_EXIT_VMMCALL, 0, 0);
        assert_eq!(ghcb.exit_code(), Ok(SVM_EXIT_VMMCALL));
        assert_eq!(ghcb.hypercall_request(), Err(ERR_MISSING_INPUT));
        ghcb.set(Field::Rax, 3);
        assert_eq!(ghcb.hypercall_request(), Err(ERR_MISSING_INPUT));
        ghcb.set(Field::Cpl, 0);
        assert_eq!(
            ghcb.hypercall_request(),
            Ok(HypercallRequest {
                number: 3,
                args: [0; 4],
                cpl: 0
            })
        );
        ghcb.invalidate(Field::SwExitInfo2);
        assert_eq!(ghcb.exit_code(), Err(ERR_MISSING_INPUT));
        ghcb.set(Field::SwExitInfo2, 0);
        ghcb.set_usage(1);
        assert_eq!(ghcb.exit_code(), Err(ERR_INVALID_USAGE));
    }

    #[test]
    fn scratch_must_lie_in_the_shared_buffer() {
        let gpa = 0x20_5000;
        let mut ghcb = Ghcb::new([0u8; GHCB_SIZE]);
        ghcb.start_request(SVM_VMGEXIT_PSC, 0, 0);
        assert_eq!(ghcb.scratch_offset(gpa), Err(ERR_MISSING_INPUT));
        let cases = [
            (gpa + 0x800, Ok(0)),
            (gpa + 0x808, Ok(8)),
            (gpa + 0xfef, Ok(0x7ef)),
            (gpa + 0xff0, Err(ERR_INVALID_SCRATCH_AREA)),
            (gpa + 0x7ff, Err(ERR_INVALID_SCRATCH_AREA)),
            (gpa, Err(ERR_INVALID_SCRATCH_AREA)),
            (0, Err(ERR_INVALID_SCRATCH_AREA)),
            (u64::MAX, Err(ERR_INVALID_SCRATCH_AREA)),
        ];
        for (scratch, offset) in cases {
            ghcb.set(Field::SwScratch, scratch);
            assert_eq!(ghcb.scratch_offset(gpa), offset, "{scratch:#x}");
            let len = ghcb.scratch_buffer_mut(gpa).map(|b| b.len());
            assert_eq!(len, offset.map(|o| SHARED_BUFFER_SIZE - o));
        }
        // A GHCB address at the top of the address space: no wrap-around match.
        ghcb.set(Field::SwScratch, 0x7ff);
        for top in [!0xfff_u64, u64::MAX] {
            assert_eq!(ghcb.scratch_offset(top), Err(ERR_INVALID_SCRATCH_AREA));
        }
        assert_eq!(gfn(gpa), 0x205);
    }
}
