//! The SEV-SNP side of the transport: the GHCB (docs/abi.md, Transports, GHCB; wire
//! format in [`cloister_abi::ghcb`]). Used only when the boot info names the GHCB
//! transport.
//!
//! At start (`init`, from `hypercall::init`), through the GHCB MSR protocol: ask for
//! the hypervisor's protocol versions (2 must be among them), make the SDK's GHCB page
//! shared with a one-page Page State Change (after rescinding its validation on
//! hardware), register its GPA, and leave that GPA in the GHCB MSR. From then on every
//! call fills the GHCB page and executes VMGEXIT; conversions are Page State Change
//! requests whose descriptor travels in the page's shared buffer.
//!
//! Model mode (`FEATURE_SNP_MODEL`, QEMU): the CPU has no SEV-SNP, the hypervisor
//! models it, and the SDK executes no PVALIDATE. On hardware it validates private
//! memory itself ([`crate::pvalidate`]). Not run on hardware yet.

use crate::memory::{ConvertError, ConvertStats};
use crate::pvalidate;
use cloister_abi::ghcb::msr::{
    TERM_GHCB_CALL, TERM_PROTOCOL_UNSUPPORTED, TERM_PSC, TERM_PVALIDATE, TERM_REGISTER,
    TERM_SET_CLOISTER, TERM_SET_GENERAL,
};
use cloister_abi::ghcb::page::SHARED_BUFFER_OFFSET;
use cloister_abi::ghcb::psc::PSC_ERROR_INVALID_ENTRY;
use cloister_abi::ghcb::{
    Field, GHCB_MSR, GHCB_SIZE, Ghcb, MsrRequest, MsrResponse, PROTOCOL_VERSION_MAX, PscBuilder,
    PscEntry, PscHeader, PscOp, SVM_VMGEXIT_PSC,
};
use cloister_abi::hypercall::ConvertRange;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

const PAGE: u64 = 4096;

/// Set at start when the boot info has `FEATURE_SNP_MODEL`.
static SNP_MODEL: AtomicBool = AtomicBool::new(false);

/// The GHCB page: one page of its own (aligned and sized so), in the image's .bss.
#[repr(C, align(4096))]
struct GhcbPage(UnsafeCell<[u8; GHCB_SIZE]>);

// SAFETY: workloads are single-threaded (one vCPU, no interrupts), and the page is only
// reached through `with_page`, which never runs two closures at once.
unsafe impl Sync for GhcbPage {}

static GHCB_PAGE: GhcbPage = GhcbPage(UnsafeCell::new([0; GHCB_SIZE]));

/// Guest-physical address of the GHCB page (workloads are identity mapped).
pub fn ghcb_gpa() -> u64 {
    GHCB_PAGE.0.get() as u64
}

/// Whether the SEV-SNP hardware is the hypervisor's model (no PVALIDATE).
pub fn snp_model() -> bool {
    SNP_MODEL.load(Ordering::Relaxed)
}

/// Run `f` on the GHCB page. Never around a VMGEXIT: the hypervisor writes the page
/// then, so no reference to it may live across one.
fn with_page<R>(f: impl FnOnce(&mut Ghcb<&mut [u8; GHCB_SIZE]>) -> R) -> R {
    // SAFETY: the static is identity mapped; workloads are single-threaded and no
    // closure given here calls back into this function, so this is the only reference.
    let page = unsafe { &mut *GHCB_PAGE.0.get() };
    f(&mut Ghcb::new(page))
}

/// VMGEXIT (`rep vmmcall`, F3 0F 01 D9): exit to the hypervisor with the request the
/// GHCB MSR names (an MSR-protocol request, or the GHCB page's GPA).
fn vmgexit() {
    // SAFETY: VMGEXIT exits to the hypervisor, which answers in the GHCB MSR or the
    // GHCB page and changes no register (it cannot see them under SEV-SNP; Cloister's
    // model leaves them too). It reads and writes the GHCB page and the memory the
    // request names (no `nomem`) and does not use our stack.
    unsafe { asm!(".byte 0xf3, 0x0f, 0x01, 0xd9", options(nostack)) };
}

fn write_msr(value: u64) {
    // SAFETY: WRMSR of the GHCB MSR, which an SEV-SNP guest owns (in model mode the
    // hypervisor keeps it for the workload); it changes nothing but the MSR.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") GHCB_MSR,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags),
        );
    }
}

fn read_msr() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: RDMSR of the GHCB MSR only reads it into EDX:EAX.
    unsafe {
        asm!(
            "rdmsr",
            in("ecx") GHCB_MSR,
            out("eax") low,
            out("edx") high,
            options(nomem, nostack, preserves_flags),
        );
    }
    u64::from(high) << 32 | u64::from(low)
}

/// One GHCB MSR protocol exchange.
fn msr_protocol(request: MsrRequest) -> MsrResponse {
    write_msr(request.encode());
    vmgexit();
    MsrResponse::decode(read_msr())
}

/// Ask the hypervisor to stop the workload for `reason` of reason `set` (MSR protocol
/// termination request; `cloister_abi::ghcb::msr::TERM_*`). If it ever returns, the
/// workload stops itself with UD2.
pub fn terminate(set: u8, reason: u8) -> ! {
    write_msr(MsrRequest::Terminate { set, reason }.encode());
    vmgexit();
    loop {
        // SAFETY: UD2 only raises #UD; with no IDT the workload stops (triple fault).
        unsafe { asm!("ud2", options(nomem, nostack)) };
    }
}

/// Set up the GHCB transport (called by `hypercall::init` before the first call); stops
/// the workload with a termination request if the hypervisor does not play along.
pub(crate) fn init(model: bool) {
    SNP_MODEL.store(model, Ordering::Relaxed);
    if !msr_protocol(MsrRequest::SevInfo).supports_version(PROTOCOL_VERSION_MAX) {
        terminate(TERM_SET_GENERAL, TERM_PROTOCOL_UNSUPPORTED);
    }
    let gpa = ghcb_gpa();
    let gfn = cloister_abi::ghcb::gfn(gpa);
    // The page becomes shared, which loses its contents: it holds nothing yet.
    if !model && pvalidate::range(gpa, 1, false).is_err() {
        terminate(TERM_SET_CLOISTER, TERM_PVALIDATE);
    }
    let op = PscOp::SHARED;
    if msr_protocol(MsrRequest::PageStateChange { gfn, op })
        != (MsrResponse::PageStateChange { error: 0 })
    {
        terminate(TERM_SET_CLOISTER, TERM_PSC);
    }
    if msr_protocol(MsrRequest::RegisterGhcb { gfn }) != (MsrResponse::RegisterGhcb { gfn }) {
        terminate(TERM_SET_CLOISTER, TERM_REGISTER);
    }
    // Every VMGEXIT from now on names the page; nothing else writes the MSR.
    write_msr(gpa);
}

/// A Cloister call through the GHCB page: `sw_exit_code` VMMCALL, RAX = number, RBX,
/// RCX, RDX, RSI = arguments, CPL 0; the result is RAX as the hypervisor marked it
/// valid. An answer without one stops the workload (the hypervisor broke the
/// protocol). Kept out of line, as the TDVMCALL path is.
#[cold]
#[inline(never)]
pub(crate) fn hypercall(number: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    with_page(|ghcb| ghcb.write_hypercall(number, [a0, a1, a2, a3]));
    vmgexit();
    with_page(|ghcb| ghcb.hypercall_result())
        .unwrap_or_else(|| terminate(TERM_SET_CLOISTER, TERM_GHCB_CALL))
}

/// Convert `ranges` with Page State Change requests (`op` private or shared), up to 253
/// entries per request: on hardware, rescinding validation before a conversion to
/// shared and validating after one to private.
pub(crate) fn convert(ranges: &[ConvertRange], op: PscOp) -> Result<ConvertStats, ConvertError> {
    // The whole list is checked first, so one the SDK cannot describe converts nothing.
    for range in ranges {
        let end = range
            .pages
            .checked_mul(PAGE)
            .and_then(|len| range.gpa.checked_add(len));
        let fits = end.is_some_and(|end| end <= 1 << 52);
        if range.pages == 0 || !range.gpa.is_multiple_of(PAGE) || !fits {
            return Err(ConvertError::Psc(PSC_ERROR_INVALID_ENTRY));
        }
    }
    let model = snp_model();
    let mut stats = ConvertStats::default();
    let mut next = Cursor::default();
    while next.range < ranges.len() {
        let start = next;
        next = with_page(|ghcb| fill(ghcb.shared_buffer_mut(), ranges, start, op))?;
        if !model && op == PscOp::SHARED {
            validate(ranges, start, next, false)?;
        }
        page_state_change(&mut stats)?;
        if !model && op == PscOp::PRIVATE {
            validate(ranges, start, next, true)?;
        }
    }
    Ok(stats)
}

/// Make private memory `[gpa, gpa + len)` (checked by the caller) usable: PVALIDATE on
/// hardware; nothing in model mode, where the hypervisor's model validates.
pub(crate) fn accept(gpa: u64, len: u64) -> Result<(), (u64, u32)> {
    if snp_model() {
        return Ok(());
    }
    pvalidate::range(gpa, len / PAGE, true)
}

/// A position in a list of ranges: page `page` of range `range`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    range: usize,
    page: u64,
}

/// Fill a descriptor into `buffer` with the ranges from `start` on, as far as it holds;
/// returns where the next one starts.
fn fill(
    buffer: &mut [u8],
    ranges: &[ConvertRange],
    start: Cursor,
    op: PscOp,
) -> Result<Cursor, ConvertError> {
    let mut builder = PscBuilder::new(buffer);
    let mut at = start;
    while let Some(range) = ranges.get(at.range) {
        let added = builder
            .push(range.gpa + at.page * PAGE, range.pages - at.page, op)
            .map_err(|error| ConvertError::Psc(error.code()))?;
        at.page += added;
        if at.page == range.pages {
            at = Cursor {
                range: at.range + 1,
                page: 0,
            };
        } else if builder.is_full() || added == 0 {
            break;
        }
    }
    builder
        .finish()
        .ok_or(ConvertError::Psc(PSC_ERROR_INVALID_ENTRY))?;
    Ok(at)
}

/// PVALIDATE (or rescind) the pages from `start` to `end` of `ranges`: from the SDK's
/// own list, not from the descriptor the hypervisor could have changed.
fn validate(
    ranges: &[ConvertRange],
    start: Cursor,
    end: Cursor,
    valid: bool,
) -> Result<(), ConvertError> {
    let mut at = start;
    while at.range <= end.range {
        let Some(range) = ranges.get(at.range) else {
            break;
        };
        let stop = if at.range == end.range {
            end.page
        } else {
            range.pages
        };
        if stop > at.page {
            pvalidate::range(range.gpa + at.page * PAGE, stop - at.page, valid)
                .map_err(|(gpa, code)| ConvertError::Pvalidate { gpa, code })?;
        }
        at = Cursor {
            range: at.range + 1,
            page: 0,
        };
    }
    Ok(())
}

/// Issue the Page State Change in the shared buffer until the hypervisor has done all
/// of it (`cur_entry > end_entry`), as Linux's `vmgexit_psc`: it may stop after any
/// part, even none (counted as busy), but must not move backwards or change the
/// request.
fn page_state_change(stats: &mut ConvertStats) -> Result<(), ConvertError> {
    let scratch = ghcb_gpa() + SHARED_BUFFER_OFFSET as u64;
    let request = with_page(|ghcb| progress(ghcb));
    let mut before = request;
    while !before.header.is_done() {
        with_page(|ghcb| {
            ghcb.start_request(SVM_VMGEXIT_PSC, 0, 0);
            ghcb.set(Field::SwScratch, scratch);
        });
        vmgexit();
        stats.calls += 1;
        let (info_1, info_2, after) = with_page(|ghcb| {
            let info_1 = ghcb.get_raw(Field::SwExitInfo1) as u32;
            (info_1, ghcb.get_raw(Field::SwExitInfo2), progress(ghcb))
        });
        if info_2 != 0 {
            return Err(ConvertError::Psc(info_2));
        }
        let changed =
            after.header.reserved != 0 || after.header.end_entry != request.header.end_entry;
        if info_1 != 0 || changed || after.key() < before.key() {
            return Err(ConvertError::PscProtocol);
        }
        if after.key() == before.key() {
            stats.busy += 1;
        }
        before = after;
    }
    Ok(())
}

/// How far the hypervisor got with the descriptor in the shared buffer.
#[derive(Clone, Copy)]
struct Progress {
    header: PscHeader,
    /// `cur_page` of the entry at `cur_entry` (0 past the end).
    cur_page: u16,
}

impl Progress {
    /// Progress is ordered by `cur_entry`, then by the current entry's `cur_page`.
    fn key(self) -> (u16, u16) {
        (self.header.cur_entry, self.cur_page)
    }
}

fn progress(ghcb: &Ghcb<&mut [u8; GHCB_SIZE]>) -> Progress {
    let buffer = ghcb.shared_buffer();
    let header = PscHeader::read(buffer).unwrap_or_default();
    let cur_page = PscEntry::read(buffer, header.cur_entry).map_or(0, |entry| entry.cur_page);
    Progress { header, cur_page }
}
