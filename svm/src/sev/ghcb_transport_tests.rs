//! Tests of the hypervisor's side of the GHCB ([`GhcbTransport`]), driven by the guest
//! side of `cloister_abi::ghcb` exactly as the guest SDK (tools/guest-sdk/src/ghcb.rs)
//! uses it, so that both sides are shown to agree on docs/abi.md, Transports, GHCB.
//!
//! Core's part is played here as core/src/hypercall/page_request.rs plays it: the page
//! is copied in, the transport reads the copy, core answers what it asks for, and the
//! copy goes back (not after a refusal, which stops the workload). Conversions are
//! answered as `hypercall::convert::request` answers them: at most
//! `CONVERT_MAX_PAGES_PER_CALL` pages per call, `Retry` at the same place while busy.
//!
//! - MSR protocol: `sev_info_*`, `register_ghcb_*`, `msr_psc_*`, `msr_terminate_*`,
//!   `other_msr_codes_*`, `the_sdk_start_sequence_*`.
//! - Requests in the page: `a_vmgexit_with_a_gpa_*`, `a_page_call_for_a_gpa_*`,
//!   hypercalls and their refusals, `an_answer_that_does_not_match_*`.
//! - Page State Change: merging, partial progress, errors, hints, scratch areas, and the
//!   SDK's whole loop (`the_sdk_loop_*`, and a property test over random ranges).
//! - Hostile input: property tests over random MSR values and random GHCB pages.
//!
//! `PROPTEST_CASES=n` overrides the case counts.

use super::*;
use cloister_abi::ghcb::msr::{
    TERM_GHCB_CALL, TERM_PROTOCOL_UNSUPPORTED, TERM_PSC, TERM_PVALIDATE, TERM_REGISTER,
    TERM_SET_CLOISTER, TERM_SET_GENERAL,
};
use cloister_abi::ghcb::page::{
    ERR_INVALID_SCRATCH_AREA, ERR_INVALID_USAGE, ERR_MISSING_INPUT, EXIT_INFO_1_ERROR,
    SHARED_BUFFER_OFFSET, SHARED_BUFFER_SIZE,
};
use cloister_abi::ghcb::psc::{
    PAGES_PER_2M, PSC_ENTRY_SIZE, PSC_ERROR_INVALID_HDR, PSC_HEADER_SIZE, PSC_MAX_ENTRIES,
};
use cloister_abi::ghcb::{
    Field, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, PscBuilder, PscEntry, PscHeader,
    SVM_VMGEXIT_TERM_REQUEST, SVM_VMGEXIT_UNSUPPORTED_EVENT, gfn,
};
use cloister_abi::hypercall::{CONVERT_MAX_PAGES_PER_CALL, ConvertRange};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

/// Where the tests' workload keeps its GHCB page.
const GHCB_GPA: u64 = 0x20_3000;
/// `sw_scratch` of the SDK's Page State Change: the start of the shared buffer.
const SCRATCH: u64 = GHCB_GPA + SHARED_BUFFER_OFFSET as u64;

type Page = [u8; GHCB_SIZE];

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// The guest: the SDK's requests.

/// One MSR-protocol exchange as the SDK's `msr_protocol` makes it: the request in the
/// MSR, VMGEXIT, the response read back from the MSR.
fn msr_exchange(t: &mut GhcbTransport, request: MsrRequest) -> (Vmgexit, MsrResponse) {
    t.write_msr(request.encode());
    let action = t.vmgexit();
    (action, MsrResponse::decode(t.msr()))
}

/// The SDK's `init` in model mode, core converting the page: SEV information, the GHCB
/// page made shared, registered, and its GPA left in the MSR.
fn started() -> GhcbTransport {
    let mut t = GhcbTransport::new();
    let frame = gfn(GHCB_GPA);
    let (action, info) = msr_exchange(&mut t, MsrRequest::SevInfo);
    assert_eq!(action, Vmgexit::Resume);
    assert!(info.supports_version(PROTOCOL_VERSION_MAX));
    let shared = MsrRequest::PageStateChange {
        gfn: frame,
        op: PscOp::SHARED,
    };
    let (action, _) = msr_exchange(&mut t, shared);
    let convert = Exit::ConvertRequest {
        gpa: GHCB_GPA,
        len: PAGE,
        to_private: false,
    };
    assert_eq!(action, Vmgexit::Exit(convert));
    assert_eq!(
        t.complete_msr_conversion(ConvertReply::Done),
        Vmgexit::Resume
    );
    assert_eq!(
        MsrResponse::decode(t.msr()),
        MsrResponse::PageStateChange { error: 0 }
    );
    let (action, echo) = msr_exchange(&mut t, MsrRequest::RegisterGhcb { gfn: frame });
    assert_eq!(action, Vmgexit::Resume);
    assert_eq!(echo, MsrResponse::RegisterGhcb { gfn: frame });
    t.write_msr(GHCB_GPA);
    t
}

/// The SDK's call: `write_hypercall` on the page.
fn hypercall_page(number: u64, args: [u64; 4]) -> Page {
    let mut page = [0u8; GHCB_SIZE];
    Ghcb::new(&mut page).write_hypercall(number, args);
    page
}

/// The SDK's Page State Change request with `sw_scratch` = `scratch`.
fn psc_request_at(page: &mut Page, scratch: u64) {
    let mut ghcb = Ghcb::new(page);
    ghcb.start_request(SVM_VMGEXIT_PSC, 0, 0);
    ghcb.set(Field::SwScratch, scratch);
}

/// The SDK's Page State Change request: the descriptor at the start of the shared buffer.
fn psc_request(page: &mut Page) {
    psc_request_at(page, SCRATCH);
}

/// A descriptor of `(gpa, pages, op)` runs at the start of the shared buffer, built with
/// [`PscBuilder`] as the SDK's `fill` builds it (all of them must fit).
fn describe(page: &mut Page, runs: &[(u64, u64, PscOp)]) -> PscHeader {
    let mut ghcb = Ghcb::new(page);
    let mut builder = PscBuilder::new(ghcb.shared_buffer_mut());
    for &(gpa, pages, op) in runs {
        assert_eq!(builder.push(gpa, pages, op), Ok(pages));
    }
    builder.finish().expect("a descriptor with entries")
}

/// A descriptor of raw entries (some the builder would never write) at `offset` in the
/// shared buffer, cut off at its end.
fn write_descriptor(page: &mut Page, offset: usize, header: PscHeader, entries: &[PscEntry]) {
    let mut ghcb = Ghcb::new(page);
    let buffer = &mut ghcb.shared_buffer_mut()[offset..];
    let mut bytes = Vec::from(header.to_bytes());
    for entry in entries {
        bytes.extend_from_slice(&entry.encode().to_le_bytes());
    }
    let len = bytes.len().min(buffer.len());
    buffer[..len].copy_from_slice(&bytes[..len]);
}

fn header_of(cur_entry: u16, end_entry: u16) -> PscHeader {
    PscHeader {
        cur_entry,
        end_entry,
        reserved: 0,
    }
}

// ---------------------------------------------------------------------------------------
// The guest: reading the answer.

fn shared_buffer(page: &Page) -> Vec<u8> {
    Vec::from(Ghcb::new(page).shared_buffer())
}

/// The descriptor's header at the start of the shared buffer.
fn header(page: &Page) -> PscHeader {
    PscHeader::read(Ghcb::new(page).shared_buffer()).expect("header")
}

/// Entries `0..=end_entry` of the descriptor at the start of the shared buffer.
fn entries(page: &Page) -> Vec<PscEntry> {
    let ghcb = Ghcb::new(page);
    let buffer = ghcb.shared_buffer();
    (0..=header(page).end_entry)
        .map(|i| PscEntry::read(buffer, i).expect("entry"))
        .collect()
}

fn cur_pages(page: &Page) -> Vec<u16> {
    entries(page).iter().map(|e| e.cur_page).collect()
}

/// `sw_exit_info_1` and `sw_exit_info_2` as the hypervisor left them (`None`: not marked
/// valid).
fn exit_infos(page: &Page) -> (Option<u64>, Option<u64>) {
    let ghcb = Ghcb::new(page);
    (ghcb.get(Field::SwExitInfo1), ghcb.get(Field::SwExitInfo2))
}

/// The fields marked valid.
fn valid_fields(page: &Page) -> Vec<Field> {
    let ghcb = Ghcb::new(page);
    Field::ALL
        .iter()
        .copied()
        .filter(|&f| ghcb.is_valid(f))
        .collect()
}

/// The page after a refusal: `sw_exit_info_1` = 2 and the reason in `sw_exit_info_2`,
/// nothing else marked valid, so no call result.
fn assert_refused(page: &Page, reason: u64) {
    assert_eq!(
        exit_infos(page),
        (Some(u64::from(EXIT_INFO_1_ERROR)), Some(reason))
    );
    assert_eq!(
        valid_fields(page),
        vec![Field::SwExitInfo1, Field::SwExitInfo2]
    );
    assert_eq!(Ghcb::new(page).hypercall_result(), None);
}

// ---------------------------------------------------------------------------------------
// Core.

/// A VMGEXIT with the page: the exit names the GPA in the MSR; the transport reads a copy
/// of the page. Returns the copy (which the transport may have changed) and the call.
fn page_exit(t: &mut GhcbTransport, page: &Page) -> (Page, PageCall) {
    let gpa = t.msr();
    assert_eq!(t.vmgexit(), Vmgexit::Exit(Exit::PageRequest { gpa }));
    let mut copy = *page;
    let call = t.page_call(&mut copy);
    (copy, call)
}

/// Core serving a VMGEXIT with the page (core/src/hypercall/page_request.rs): `core`
/// answers a hypercall or a conversion; the copy goes back unless the call was refused.
fn serve(
    t: &mut GhcbTransport,
    page: &mut Page,
    core: impl FnOnce(PageCall) -> PageReply,
) -> PageCall {
    let (mut copy, call) = page_exit(t, page);
    match call {
        PageCall::Refused { .. } => {}
        PageCall::Answered => *page = copy,
        PageCall::Hypercall(_) | PageCall::Convert { .. } => {
            t.complete_page_call(&mut copy, core(call));
            *page = copy;
        }
    }
    call
}

/// For requests core must never see.
fn no_core(call: PageCall) -> PageReply {
    panic!("core was asked for {call:?}")
}

/// For conversions core completes.
fn done(_: PageCall) -> PageReply {
    PageReply::Convert(ConvertReply::Done)
}

fn convert(gpa: u64, pages: u64, to_private: bool) -> PageCall {
    PageCall::Convert {
        gpa,
        len: pages * PAGE,
        to_private,
    }
}

/// Core's conversions as `hypercall::convert::request` makes them: at most `step` pages
/// a call, and no progress at all (busy) on the calls bit `calls % 64` of `busy` picks
/// (at most three in a row). Records every conversion of every page.
struct Core {
    step: u64,
    busy: u64,
    calls: u64,
    busy_replies: u64,
    streak: u32,
    converted: BTreeMap<u64, Vec<bool>>,
}

impl Core {
    fn new(step: u64, busy: u64) -> Self {
        Self {
            step,
            busy,
            calls: 0,
            busy_replies: 0,
            streak: 0,
            converted: BTreeMap::new(),
        }
    }

    fn convert(&mut self, gpa: u64, len: u64, to_private: bool) -> ConvertReply {
        assert!(gpa.is_multiple_of(PAGE) && len.is_multiple_of(PAGE) && len > 0);
        let busy = (self.busy >> (self.calls % 64)) & 1 != 0 && self.streak < 3;
        self.calls += 1;
        if busy {
            self.streak += 1;
            self.busy_replies += 1;
            return ConvertReply::Retry { next: gpa };
        }
        self.streak = 0;
        let step = len.min(self.step * PAGE);
        for page in (gpa..gpa + step).step_by(PAGE as usize) {
            self.converted.entry(page).or_default().push(to_private);
        }
        if step == len {
            ConvertReply::Done
        } else {
            ConvertReply::Retry { next: gpa + step }
        }
    }

    fn reply(&mut self, call: PageCall) -> PageReply {
        match call {
            PageCall::Convert {
                gpa,
                len,
                to_private,
            } => PageReply::Convert(self.convert(gpa, len, to_private)),
            other => panic!("core was asked for {other:?}"),
        }
    }

    /// Every page of `ranges` converted exactly once, to `to_private`, and nothing else.
    fn assert_each_page_once(&self, ranges: &[ConvertRange], to_private: bool) {
        let mut expected: Vec<u64> = ranges
            .iter()
            .flat_map(|r| (0..r.pages).map(move |i| r.gpa + i * PAGE))
            .collect();
        expected.sort_unstable();
        let converted: Vec<u64> = self.converted.keys().copied().collect();
        assert_eq!(converted, expected);
        for (page, conversions) in &self.converted {
            assert_eq!(conversions, &vec![to_private], "page {page:#x}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The SDK's conversion loop (tools/guest-sdk/src/ghcb.rs, `convert`, `fill`,
// `page_state_change`, `progress`), in model mode (no PVALIDATE); its error returns
// are assertions here.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cursor {
    range: usize,
    page: u64,
}

/// What the SDK's loop counted: VMGEXITs, and those without progress.
#[derive(Debug, Default)]
struct Stats {
    calls: u64,
    busy: u64,
}

#[derive(Clone, Copy)]
struct Progress {
    header: PscHeader,
    cur_page: u16,
}

impl Progress {
    fn of(page: &Page) -> Self {
        let ghcb = Ghcb::new(page);
        let buffer = ghcb.shared_buffer();
        let header = PscHeader::read(buffer).unwrap_or_default();
        let cur_page = PscEntry::read(buffer, header.cur_entry).map_or(0, |e| e.cur_page);
        Self { header, cur_page }
    }

    fn key(self) -> (u16, u16) {
        (self.header.cur_entry, self.cur_page)
    }
}

fn sdk_fill(buffer: &mut [u8], ranges: &[ConvertRange], start: Cursor, op: PscOp) -> Cursor {
    let mut builder = PscBuilder::new(buffer);
    let mut at = start;
    while let Some(range) = ranges.get(at.range) {
        let added = builder
            .push(range.gpa + at.page * PAGE, range.pages - at.page, op)
            .expect("a range an entry can name");
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
    builder.finish().expect("a descriptor with entries");
    at
}

fn sdk_page_state_change(
    t: &mut GhcbTransport,
    page: &mut Page,
    core: &mut Core,
    stats: &mut Stats,
) {
    let request = Progress::of(page);
    let mut before = request;
    while !before.header.is_done() {
        psc_request(page);
        let call = serve(t, page, |call| core.reply(call));
        assert!(matches!(call, PageCall::Convert { .. }), "{call:?}");
        stats.calls += 1;
        assert!(stats.calls < 100_000, "the loop does not end");
        let ghcb = Ghcb::new(&*page);
        let info_1 = ghcb.get_raw(Field::SwExitInfo1) as u32;
        let info_2 = ghcb.get_raw(Field::SwExitInfo2);
        let after = Progress::of(page);
        assert_eq!((info_1, info_2), (0, 0));
        assert_eq!(after.header.reserved, 0);
        assert_eq!(after.header.end_entry, request.header.end_entry);
        assert!(after.key() >= before.key(), "progress moved backwards");
        if after.key() == before.key() {
            stats.busy += 1;
        }
        before = after;
    }
}

fn sdk_convert(
    t: &mut GhcbTransport,
    page: &mut Page,
    ranges: &[ConvertRange],
    op: PscOp,
    core: &mut Core,
) -> Stats {
    let mut stats = Stats::default();
    let mut next = Cursor::default();
    while next.range < ranges.len() {
        let start = next;
        next = sdk_fill(Ghcb::new(&mut *page).shared_buffer_mut(), ranges, start, op);
        assert_ne!(next, start);
        sdk_page_state_change(t, page, core, &mut stats);
    }
    stats
}

// ---------------------------------------------------------------------------------------
// MSR protocol.

#[test]
fn sev_info_answers_versions_2_to_2_and_resumes() {
    let mut t = GhcbTransport::new();
    let (action, response) = msr_exchange(&mut t, MsrRequest::SevInfo);
    assert_eq!(action, Vmgexit::Resume);
    assert_eq!(
        response,
        MsrResponse::SevInfo {
            max: 2,
            min: 2,
            cbit: 51
        }
    );
    assert_eq!((PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX), (2, 2));
    assert_eq!(t.msr(), 0x0002_0002_3300_0001);
    assert!(response.supports_version(2));
    assert!(!response.supports_version(1) && !response.supports_version(3));
    assert_eq!(t.registered(), None);
    // Bits the request does not define are ignored.
    t.write_msr(0xdead_beef_0000_0002);
    assert_eq!(t.vmgexit(), Vmgexit::Resume);
    assert_eq!(t.msr(), 0x0002_0002_3300_0001);
}

#[test]
fn register_ghcb_echoes_the_gfn_and_records_it() {
    let mut t = GhcbTransport::new();
    for frame in [gfn(GHCB_GPA), 1, 0x7_ffff, (1 << 52) - 2, gfn(GHCB_GPA)] {
        let (action, response) = msr_exchange(&mut t, MsrRequest::RegisterGhcb { gfn: frame });
        assert_eq!(action, Vmgexit::Resume);
        assert_eq!(response, MsrResponse::RegisterGhcb { gfn: frame });
        assert_eq!(t.msr(), frame << 12 | 0x013);
        assert_eq!(t.registered(), Some(frame << 12));
    }
    // Other MSR requests leave the registration alone.
    msr_exchange(&mut t, MsrRequest::SevInfo);
    assert_eq!(t.registered(), Some(GHCB_GPA));
}

#[test]
fn the_sdk_start_sequence_is_answered_as_it_expects() {
    let t = started();
    assert_eq!(t.registered(), Some(GHCB_GPA));
    assert_eq!(t.msr(), GHCB_GPA);
}

#[test]
fn msr_psc_to_shared_or_private_becomes_a_convert_request() {
    for (op, to_private) in [(PscOp::SHARED, false), (PscOp::PRIVATE, true)] {
        for frame in [gfn(GHCB_GPA), 0, (1 << 40) - 1] {
            let mut t = GhcbTransport::new();
            let request = MsrRequest::PageStateChange { gfn: frame, op };
            t.write_msr(request.encode());
            let convert = Exit::ConvertRequest {
                gpa: frame << 12,
                len: 4096,
                to_private,
            };
            assert_eq!(t.vmgexit(), Vmgexit::Exit(convert));
            // Not answered yet.
            assert_eq!(t.msr(), request.encode());
        }
    }
}

#[test]
fn msr_psc_done_answers_psc_resp_0_and_resumes() {
    for op in [PscOp::SHARED, PscOp::PRIVATE] {
        let mut t = GhcbTransport::new();
        t.write_msr(MsrRequest::PageStateChange { gfn: 0x42, op }.encode());
        assert!(matches!(
            t.vmgexit(),
            Vmgexit::Exit(Exit::ConvertRequest { gpa: 0x42_000, .. })
        ));
        assert_eq!(
            t.complete_msr_conversion(ConvertReply::Done),
            Vmgexit::Resume
        );
        assert_eq!(t.msr(), 0x015);
        assert_eq!(
            MsrResponse::decode(t.msr()),
            MsrResponse::PageStateChange { error: 0 }
        );
        // Answered once: a second completion changes nothing.
        assert_eq!(
            t.complete_msr_conversion(ConvertReply::Invalid),
            Vmgexit::Resume
        );
        assert_eq!(t.msr(), 0x015);
    }
}

#[test]
fn msr_psc_retry_repeats_the_vmgexit_with_the_request_left_in_the_msr() {
    let mut t = GhcbTransport::new();
    let request = MsrRequest::PageStateChange {
        gfn: 0x300,
        op: PscOp::PRIVATE,
    };
    let convert = Vmgexit::Exit(Exit::ConvertRequest {
        gpa: 0x30_0000,
        len: PAGE,
        to_private: true,
    });
    t.write_msr(request.encode());
    for _ in 0..3 {
        // The workload executes the same VMGEXIT again: the same request.
        assert_eq!(t.vmgexit(), convert);
        let retry = ConvertReply::Retry { next: 0x30_0000 };
        assert_eq!(t.complete_msr_conversion(retry), Vmgexit::Repeat);
        assert_eq!(t.msr(), request.encode());
    }
    assert_eq!(t.vmgexit(), convert);
    assert_eq!(
        t.complete_msr_conversion(ConvertReply::Done),
        Vmgexit::Resume
    );
    assert_eq!(
        MsrResponse::decode(t.msr()),
        MsrResponse::PageStateChange { error: 0 }
    );
}

#[test]
fn msr_psc_that_core_refuses_answers_the_generic_error() {
    for reply in [ConvertReply::Invalid, ConvertReply::Misaligned] {
        let mut t = GhcbTransport::new();
        t.write_msr(
            MsrRequest::PageStateChange {
                gfn: 0x42,
                op: PscOp::SHARED,
            }
            .encode(),
        );
        assert!(matches!(t.vmgexit(), Vmgexit::Exit(_)));
        assert_eq!(t.complete_msr_conversion(reply), Vmgexit::Resume);
        assert_eq!(t.msr(), 1 << 63 | 0x015);
        assert_eq!(
            MsrResponse::decode(t.msr()),
            MsrResponse::PageStateChange {
                error: PSC_RESP_ERROR_GENERIC
            }
        );
    }
}

#[test]
fn msr_psc_with_another_operation_answers_the_generic_error_without_converting() {
    for op in [
        PscOp::PSMASH,
        PscOp::UNSMASH,
        PscOp(0),
        PscOp(5),
        PscOp(0xf),
    ] {
        let mut t = GhcbTransport::new();
        let request = MsrRequest::PageStateChange { gfn: 0x200, op };
        let (action, response) = msr_exchange(&mut t, request);
        assert_eq!(action, Vmgexit::Resume, "{op:?}");
        assert_eq!(
            response,
            MsrResponse::PageStateChange {
                error: PSC_RESP_ERROR_GENERIC
            }
        );
        // Nothing pending: a stray completion changes nothing.
        assert_eq!(
            t.complete_msr_conversion(ConvertReply::Done),
            Vmgexit::Resume
        );
        assert_eq!(
            MsrResponse::decode(t.msr()),
            MsrResponse::PageStateChange {
                error: PSC_RESP_ERROR_GENERIC
            }
        );
    }
}

#[test]
fn complete_msr_conversion_without_a_conversion_changes_nothing() {
    let mut t = started();
    for reply in [
        ConvertReply::Done,
        ConvertReply::Retry { next: 0 },
        ConvertReply::Invalid,
    ] {
        assert_eq!(t.complete_msr_conversion(reply), Vmgexit::Resume);
        assert_eq!(t.msr(), GHCB_GPA);
    }
    // A VMGEXIT in between forgets the conversion.
    t.write_msr(
        MsrRequest::PageStateChange {
            gfn: 0x42,
            op: PscOp::SHARED,
        }
        .encode(),
    );
    assert!(matches!(t.vmgexit(), Vmgexit::Exit(_)));
    msr_exchange(&mut t, MsrRequest::SevInfo);
    let info = t.msr();
    assert_eq!(
        t.complete_msr_conversion(ConvertReply::Retry { next: 0 }),
        Vmgexit::Resume
    );
    assert_eq!(t.msr(), info);
}

#[test]
fn msr_terminate_becomes_a_termination_request() {
    let mut t = started();
    let reasons = [
        (TERM_SET_GENERAL, TERM_PROTOCOL_UNSUPPORTED),
        (TERM_SET_CLOISTER, TERM_REGISTER),
        (TERM_SET_CLOISTER, TERM_PSC),
        (TERM_SET_CLOISTER, TERM_PVALIDATE),
        (TERM_SET_CLOISTER, TERM_GHCB_CALL),
        (0, 0),
        (0xf, 0xff),
    ];
    let mut seen = Vec::new();
    for (set, reason) in reasons {
        t.write_msr(MsrRequest::Terminate { set, reason }.encode());
        let Vmgexit::Exit(Exit::TerminationRequest { reason: got }) = t.vmgexit() else {
            panic!("no termination for set {set} reason {reason}");
        };
        // Set in bits 11:8, reason in 7:0: both survive, distinctly.
        assert_eq!(got, u64::from(set) << 8 | u64::from(reason));
        assert!(!seen.contains(&got));
        seen.push(got);
    }
    // Bits the request does not define are ignored.
    t.write_msr(0xffff_ffff_ff00_0000 | 0x03 << 16 | 1 << 12 | 0x100);
    assert_eq!(
        t.vmgexit(),
        Vmgexit::Exit(Exit::TerminationRequest { reason: 0x103 })
    );
}

#[test]
fn other_msr_codes_exit_unknown() {
    let mut t = started();
    // CPUID (0x004), AP reset hold (0x006), hypervisor features (0x080), response codes
    // sent as requests, and the largest code, with data bits.
    for value in [
        0x004,
        0x0000_0001_c000_0004,
        0x006,
        0x080,
        0x001,
        0x013,
        0x015,
        0xfff,
        u64::MAX,
    ] {
        t.write_msr(value);
        let unknown = Exit::Unknown {
            code: value & 0xfff,
            info1: value,
            info2: 0,
        };
        assert_eq!(t.vmgexit(), Vmgexit::Exit(unknown));
        assert_eq!(t.msr(), value);
        assert_eq!(t.registered(), Some(GHCB_GPA));
    }
}

// ---------------------------------------------------------------------------------------
// Requests in the page.

#[test]
fn a_vmgexit_with_a_gpa_in_the_msr_is_a_page_request() {
    let mut t = started();
    assert_eq!(
        t.vmgexit(),
        Vmgexit::Exit(Exit::PageRequest { gpa: GHCB_GPA })
    );
    // Any page-aligned value names a page; core checks that it is shared memory, and
    // the transport that it is the registered GHCB.
    for gpa in [0, 0x1000, GHCB_GPA + PAGE, !0xfff] {
        t.write_msr(gpa);
        assert_eq!(t.vmgexit(), Vmgexit::Exit(Exit::PageRequest { gpa }));
        assert_eq!(t.msr(), gpa);
    }
    assert_eq!(t.registered(), Some(GHCB_GPA));
}

#[test]
fn a_page_call_for_a_gpa_that_is_not_the_registered_ghcb_is_refused() {
    let page = hypercall_page(3, [1, 2, 3, 4]);
    // Never registered.
    let mut t = GhcbTransport::new();
    t.write_msr(GHCB_GPA);
    let (copy, call) = page_exit(&mut t, &page);
    assert!(matches!(call, PageCall::Refused { .. }), "{call:?}");
    assert_eq!(copy, page);
    // Registered, but another page in the MSR.
    let mut t = started();
    for gpa in [GHCB_GPA + PAGE, GHCB_GPA - PAGE, 0, !0xfff] {
        t.write_msr(gpa);
        let (copy, call) = page_exit(&mut t, &page);
        assert!(matches!(call, PageCall::Refused { .. }), "{call:?}");
        assert_eq!(copy, page);
    }
    // Registered elsewhere since.
    msr_exchange(
        &mut t,
        MsrRequest::RegisterGhcb {
            gfn: gfn(GHCB_GPA) + 1,
        },
    );
    t.write_msr(GHCB_GPA);
    let (_, call) = page_exit(&mut t, &page);
    assert!(matches!(call, PageCall::Refused { .. }), "{call:?}");
    // The registered page is served.
    t.write_msr(GHCB_GPA + PAGE);
    let (_, call) = page_exit(&mut t, &page);
    assert!(matches!(call, PageCall::Hypercall(_)), "{call:?}");
}

#[test]
fn a_hypercall_through_the_page_reaches_core_and_its_result_the_guest() {
    let mut t = started();
    for result in [0, 448, u64::MAX, (-22i64) as u64] {
        let args = [0x1000, 448, 7, u64::MAX];
        let mut page = [0xa5u8; GHCB_SIZE];
        Ghcb::new(&mut page).write_hypercall(3, args);
        let call = serve(&mut t, &mut page, |call| {
            assert_eq!(call, PageCall::Hypercall(Request { number: 3, args }));
            PageReply::Hypercall(result)
        });
        assert!(matches!(call, PageCall::Hypercall(_)));
        let ghcb = Ghcb::new(&page);
        assert_eq!(ghcb.hypercall_result(), Some(result));
        assert_eq!(exit_infos(&page), (Some(0), Some(0)));
        assert!(ghcb.is_valid(Field::Rax));
        // Only the answer is marked valid, not the request's fields.
        assert_eq!(
            valid_fields(&page),
            vec![Field::Rax, Field::SwExitInfo1, Field::SwExitInfo2]
        );
        // Version, usage and the shared buffer are left as the guest wrote them.
        assert_eq!((ghcb.protocol_version(), ghcb.usage()), (2, 0));
        assert!(ghcb.shared_buffer().iter().all(|&b| b == 0xa5));
    }
}

#[test]
fn hypercall_arguments_not_marked_valid_read_as_zero() {
    let mut t = started();
    let mut page = [0xffu8; GHCB_SIZE];
    let mut ghcb = Ghcb::new(&mut page);
    ghcb.start_request(SVM_EXIT_VMMCALL, 0, 0);
    ghcb.set(Field::Rax, 5);
    ghcb.set(Field::Cpl, 0);
    ghcb.set(Field::Rcx, 9);
    let (_, call) = page_exit(&mut t, &page);
    assert_eq!(
        call,
        PageCall::Hypercall(Request {
            number: 5,
            args: [0, 9, 0, 0]
        })
    );
}

#[test]
fn a_hypercall_without_rax_or_cpl_marked_valid_is_refused_with_missing_input() {
    let mut t = started();
    for field in [Field::Rax, Field::Cpl] {
        let mut page = hypercall_page(3, [1, 2, 3, 4]);
        Ghcb::new(&mut page).invalidate(field);
        assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
        assert_refused(&page, ERR_MISSING_INPUT);
        // Nothing pending: an answer now is refused too.
        let mut copy = page;
        t.complete_page_call(&mut copy, PageReply::Hypercall(7));
        assert_refused(&copy, ERR_INVALID_INPUT);
    }
}

#[test]
fn a_page_with_another_usage_is_refused_with_invalid_usage() {
    let mut t = started();
    for usage in [1, 2, 0xffff_ffff] {
        let mut call = hypercall_page(3, [0; 4]);
        let mut psc = [0u8; GHCB_SIZE];
        describe(&mut psc, &[(0x10_0000, 1, PscOp::SHARED)]);
        psc_request(&mut psc);
        for page in [&mut call, &mut psc] {
            Ghcb::new(&mut *page).set_usage(usage);
            let before = shared_buffer(page);
            assert_eq!(serve(&mut t, page, no_core), PageCall::Answered);
            assert_refused(page, ERR_INVALID_USAGE);
            assert_eq!(shared_buffer(page), before);
        }
    }
}

#[test]
fn a_missing_exit_code_or_exit_info_is_refused_with_missing_input() {
    let mut t = started();
    for field in [Field::SwExitCode, Field::SwExitInfo1, Field::SwExitInfo2] {
        let mut call = hypercall_page(3, [0; 4]);
        let mut psc = [0u8; GHCB_SIZE];
        describe(&mut psc, &[(0x10_0000, 1, PscOp::SHARED)]);
        psc_request(&mut psc);
        for page in [&mut call, &mut psc] {
            Ghcb::new(&mut *page).invalidate(field);
            let before = shared_buffer(page);
            assert_eq!(serve(&mut t, page, no_core), PageCall::Answered);
            assert_refused(page, ERR_MISSING_INPUT);
            assert_eq!(shared_buffer(page), before);
        }
    }
    // A page with nothing in it.
    let mut page = [0u8; GHCB_SIZE];
    assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
    assert_refused(&page, ERR_MISSING_INPUT);
}

#[test]
fn an_event_other_than_vmmcall_and_psc_is_refused_with_invalid_event() {
    let mut t = started();
    // Termination through the page, the unsupported-event code, IOIO, CPUID, MMIO read.
    for code in [
        SVM_VMGEXIT_TERM_REQUEST,
        SVM_VMGEXIT_UNSUPPORTED_EVENT,
        0x7b,
        0x72,
        0x8000_0001,
        0,
        u64::MAX,
    ] {
        let mut page = hypercall_page(3, [0; 4]);
        Ghcb::new(&mut page).set(Field::SwExitCode, code);
        assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
        assert_refused(&page, ERR_INVALID_EVENT);
    }
}

#[test]
fn an_answer_that_does_not_match_the_call_is_an_invalid_input_error() {
    let mut t = started();
    // A hypercall answered with a conversion.
    let page = hypercall_page(3, [0; 4]);
    let (mut copy, call) = page_exit(&mut t, &page);
    assert!(matches!(call, PageCall::Hypercall(_)));
    t.complete_page_call(&mut copy, PageReply::Convert(ConvertReply::Done));
    assert_refused(&copy, ERR_INVALID_INPUT);
    // A conversion answered with a hypercall result: the descriptor is left as it was.
    let mut page = [0u8; GHCB_SIZE];
    describe(&mut page, &[(0x10_0000, 4, PscOp::SHARED)]);
    psc_request(&mut page);
    let (mut copy, call) = page_exit(&mut t, &page);
    assert_eq!(call, convert(0x10_0000, 4, false));
    t.complete_page_call(&mut copy, PageReply::Hypercall(0));
    assert_refused(&copy, ERR_INVALID_INPUT);
    assert_eq!(shared_buffer(&copy), shared_buffer(&page));
    // A second answer to one call.
    let (mut copy, _) = page_exit(&mut t, &page);
    t.complete_page_call(&mut copy, PageReply::Convert(ConvertReply::Done));
    assert_eq!(exit_infos(&copy), (Some(0), Some(0)));
    let progress = shared_buffer(&copy);
    t.complete_page_call(&mut copy, PageReply::Convert(ConvertReply::Done));
    assert_refused(&copy, ERR_INVALID_INPUT);
    assert_eq!(shared_buffer(&copy), progress);
    // An MSR-protocol VMGEXIT in between forgets the call.
    let (mut copy, _) = page_exit(&mut t, &page);
    msr_exchange(&mut t, MsrRequest::SevInfo);
    t.complete_page_call(&mut copy, PageReply::Convert(ConvertReply::Done));
    assert_refused(&copy, ERR_INVALID_INPUT);
    assert_eq!(shared_buffer(&copy), shared_buffer(&page));
}

// ---------------------------------------------------------------------------------------
// Page State Change through the page.

#[test]
fn contiguous_entries_of_one_op_and_size_merge_into_one_convert() {
    let cases = [
        // 8 pages: 8 entries of 4 KiB.
        (0x10_0000, 8, PscOp::SHARED, 8),
        // 4 MiB from a 2 MiB boundary: 2 entries of 2 MiB.
        (0x40_0000, 1024, PscOp::PRIVATE, 2),
        // 253 pages: a full descriptor (`end_entry` 252).
        (
            0x10_0000,
            PSC_MAX_ENTRIES as u64,
            PscOp::SHARED,
            PSC_MAX_ENTRIES,
        ),
    ];
    for (gpa, pages, op, count) in cases {
        let mut t = started();
        let mut page = [0u8; GHCB_SIZE];
        let request = describe(&mut page, &[(gpa, pages, op)]);
        assert_eq!(usize::from(request.end_entry), count - 1);
        psc_request(&mut page);
        let call = serve(&mut t, &mut page, done);
        assert_eq!(call, convert(gpa, pages, op == PscOp::PRIVATE));
        assert_eq!(exit_infos(&page), (Some(0), Some(0)));
        assert_eq!(
            valid_fields(&page),
            vec![Field::SwExitInfo1, Field::SwExitInfo2]
        );
        let after = header(&page);
        assert_eq!(after.cur_entry, after.end_entry + 1);
        assert_eq!(after.end_entry, request.end_entry);
        for entry in entries(&page) {
            assert_eq!(u64::from(entry.cur_page), entry.pages());
        }
    }
}

#[test]
fn runs_that_differ_in_op_size_or_place_are_converted_one_per_vmgexit() {
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    // 3 4 KiB pages below a 2 MiB boundary, 2 MiB, 2 4 KiB pages; after a gap, 2 more to
    // shared and 1 to private.
    describe(
        &mut page,
        &[
            (0x40_0000 - 3 * PAGE, 3 + 512 + 2, PscOp::SHARED),
            (0x80_0000, 2, PscOp::SHARED),
            (0x80_2000, 1, PscOp::PRIVATE),
        ],
    );
    let expected = [
        convert(0x3f_d000, 3, false),
        convert(0x40_0000, 512, false),
        convert(0x60_0000, 2, false),
        convert(0x80_0000, 2, false),
        convert(0x80_2000, 1, true),
    ];
    let mut cur_entries = Vec::new();
    for want in expected {
        assert!(!header(&page).is_done());
        psc_request(&mut page);
        assert_eq!(serve(&mut t, &mut page, done), want);
        assert_eq!(exit_infos(&page), (Some(0), Some(0)));
        cur_entries.push(header(&page).cur_entry);
    }
    assert_eq!(cur_entries, [3, 4, 6, 8, 9]);
    assert!(header(&page).is_done());
    assert_eq!(cur_pages(&page), [1, 1, 1, 512, 1, 1, 1, 1, 1]);
}

#[test]
fn retry_records_partial_progress_and_the_next_call_continues_there() {
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    describe(&mut page, &[(0x10_0000, 8, PscOp::SHARED)]);
    psc_request(&mut page);
    let call = serve(&mut t, &mut page, |_| {
        PageReply::Convert(ConvertReply::Retry {
            next: 0x10_0000 + 3 * PAGE,
        })
    });
    assert_eq!(call, convert(0x10_0000, 8, false));
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert_eq!(header(&page).cur_entry, 3);
    assert_eq!(cur_pages(&page), [1, 1, 1, 0, 0, 0, 0, 0]);
    // Busy: nothing done at all.
    psc_request(&mut page);
    let call = serve(&mut t, &mut page, |_| {
        PageReply::Convert(ConvertReply::Retry {
            next: 0x10_0000 + 3 * PAGE,
        })
    });
    assert_eq!(call, convert(0x10_3000, 5, false));
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert_eq!(header(&page).cur_entry, 3);
    assert_eq!(cur_pages(&page), [1, 1, 1, 0, 0, 0, 0, 0]);
    // A `next` that is not page aligned counts the pages wholly before it.
    psc_request(&mut page);
    let call = serve(&mut t, &mut page, |_| {
        PageReply::Convert(ConvertReply::Retry {
            next: 0x10_4000 + 0x800,
        })
    });
    assert_eq!(call, convert(0x10_3000, 5, false));
    assert_eq!(header(&page).cur_entry, 4);
    psc_request(&mut page);
    assert_eq!(serve(&mut t, &mut page, done), convert(0x10_4000, 4, false));
    assert!(header(&page).is_done());
    assert_eq!(cur_pages(&page), [1; 8]);
}

#[test]
fn a_2mib_entry_stopped_midway_continues_as_4kib_pages() {
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    // Two 2 MiB entries, then a 4 KiB one right after them.
    describe(&mut page, &[(0x40_0000, 1025, PscOp::PRIVATE)]);
    let sizes: Vec<bool> = entries(&page).iter().map(|e| e.huge).collect();
    assert_eq!(sizes, [true, true, false]);
    // Both 2 MiB entries in one run (the 4 KiB entry is another size); 700 pages done.
    psc_request(&mut page);
    let call = serve(&mut t, &mut page, |_| {
        PageReply::Convert(ConvertReply::Retry {
            next: 0x40_0000 + 700 * PAGE,
        })
    });
    assert_eq!(call, convert(0x40_0000, 1024, true));
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert_eq!(header(&page).cur_entry, 1);
    assert_eq!(cur_pages(&page), [512, 188, 0]);
    // The rest of the second entry goes on as 4 KiB pages, so it joins the 4 KiB entry
    // that follows it (as KVM's `snp_begin_psc`).
    psc_request(&mut page);
    let call = serve(&mut t, &mut page, |_| {
        PageReply::Convert(ConvertReply::Retry {
            next: 0x40_0000 + 800 * PAGE,
        })
    });
    assert_eq!(call, convert(0x40_0000 + 700 * PAGE, 324 + 1, true));
    assert_eq!(header(&page).cur_entry, 1);
    assert_eq!(cur_pages(&page), [512, 288, 0]);
    psc_request(&mut page);
    let call = serve(&mut t, &mut page, done);
    assert_eq!(call, convert(0x40_0000 + 800 * PAGE, 225, true));
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert_eq!(header(&page).cur_entry, 3);
    assert!(header(&page).is_done());
    assert_eq!(cur_pages(&page), [512, 512, 1]);
}

#[test]
fn a_partly_done_2mib_entry_from_the_guest_continues_as_4kib_pages() {
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    let first = PscEntry {
        cur_page: 100,
        ..PscEntry::new(0x400, PscOp::SHARED, true)
    };
    let second = PscEntry::new(0x600, PscOp::SHARED, true);
    write_descriptor(&mut page, 0, header_of(0, 1), &[first, second]);
    psc_request(&mut page);
    // The 2 MiB entry after it does not join: it is 2 MiB, the run 4 KiB.
    assert_eq!(
        serve(&mut t, &mut page, done),
        convert(0x40_0000 + 100 * PAGE, 412, false)
    );
    assert_eq!(header(&page).cur_entry, 1);
    psc_request(&mut page);
    assert_eq!(
        serve(&mut t, &mut page, done),
        convert(0x60_0000, 512, false)
    );
    assert!(header(&page).is_done());
    assert_eq!(cur_pages(&page), [512, 512]);
}

#[test]
fn a_conversion_core_refuses_answers_invalid_entry_and_records_nothing() {
    for reply in [ConvertReply::Invalid, ConvertReply::Misaligned] {
        let mut t = started();
        let mut page = [0u8; GHCB_SIZE];
        describe(&mut page, &[(0x10_0000, 3, PscOp::PRIVATE)]);
        psc_request(&mut page);
        // Some progress first.
        serve(&mut t, &mut page, |_| {
            PageReply::Convert(ConvertReply::Retry { next: 0x10_1000 })
        });
        let before = shared_buffer(&page);
        psc_request(&mut page);
        let call = serve(&mut t, &mut page, |_| PageReply::Convert(reply));
        assert_eq!(call, convert(0x10_1000, 2, true));
        assert_eq!(exit_infos(&page), (Some(0), Some(PSC_ERROR_INVALID_ENTRY)));
        assert_eq!(
            valid_fields(&page),
            vec![Field::SwExitInfo1, Field::SwExitInfo2]
        );
        assert_eq!(shared_buffer(&page), before);
    }
}

/// A full descriptor of valid 4 KiB entries, with `end_entry` as given.
fn full_descriptor(page: &mut Page, end_entry: u16) {
    let entries: Vec<PscEntry> = (0..PSC_MAX_ENTRIES as u64)
        .map(|i| PscEntry::new(0x100 + i, PscOp::SHARED, false))
        .collect();
    write_descriptor(page, 0, header_of(0, end_entry), &entries);
}

#[test]
fn a_header_beyond_252_entries_is_invalid_and_converts_nothing() {
    let mut t = started();
    for end_entry in [253, 254, 0x1000, u16::MAX] {
        let mut page = [0u8; GHCB_SIZE];
        full_descriptor(&mut page, end_entry);
        psc_request(&mut page);
        let before = shared_buffer(&page);
        assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
        assert_eq!(exit_infos(&page), (Some(0), Some(PSC_ERROR_INVALID_HDR)));
        assert_eq!(
            valid_fields(&page),
            vec![Field::SwExitInfo1, Field::SwExitInfo2]
        );
        assert_eq!(shared_buffer(&page), before);
    }
    // 252, the last entry there is room for: one run of 253 pages.
    let mut page = [0u8; GHCB_SIZE];
    full_descriptor(&mut page, 252);
    psc_request(&mut page);
    assert_eq!(
        serve(&mut t, &mut page, done),
        convert(0x10_0000, 253, false)
    );
    assert!(header(&page).is_done());
}

#[test]
fn an_invalid_entry_anywhere_in_the_request_converts_nothing() {
    let good = PscEntry::new(0x100, PscOp::SHARED, false);
    let bad = [
        // A 2 MiB entry whose GFN is not 2 MiB aligned.
        PscEntry::new(0x401, PscOp::SHARED, true),
        PscEntry::new(0x600 - 0x100, PscOp::PRIVATE, true),
        // `cur_page` beyond its pages.
        PscEntry {
            cur_page: 2,
            ..PscEntry::new(0x101, PscOp::SHARED, false)
        },
        PscEntry {
            cur_page: 513,
            ..PscEntry::new(0x400, PscOp::SHARED, true)
        },
        // Undefined operations.
        PscEntry::new(0x101, PscOp(0), false),
        PscEntry::new(0x101, PscOp(5), false),
        PscEntry::new(0x101, PscOp(0xf), false),
        // Reserved bits.
        PscEntry {
            reserved: 1,
            ..PscEntry::new(0x101, PscOp::SHARED, false)
        },
    ];
    let mut t = started();
    for bad in bad {
        for (header, list) in [
            (header_of(0, 0), vec![bad]),
            (header_of(0, 1), vec![good, bad]),
        ] {
            let mut page = [0u8; GHCB_SIZE];
            write_descriptor(&mut page, 0, header, &list);
            psc_request(&mut page);
            let before = shared_buffer(&page);
            assert_eq!(
                serve(&mut t, &mut page, no_core),
                PageCall::Answered,
                "{bad:?}"
            );
            assert_eq!(exit_infos(&page), (Some(0), Some(PSC_ERROR_INVALID_ENTRY)));
            assert_eq!(shared_buffer(&page), before);
        }
    }
    // An invalid entry before `cur_entry` is done with and not looked at again.
    let mut page = [0u8; GHCB_SIZE];
    write_descriptor(&mut page, 0, header_of(1, 1), &[bad[0], good]);
    psc_request(&mut page);
    assert_eq!(serve(&mut t, &mut page, done), convert(0x10_0000, 1, false));
    assert!(header(&page).is_done());
}

#[test]
fn psmash_and_unsmash_only_descriptors_are_answered_0_without_a_convert() {
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    describe(
        &mut page,
        &[
            (0x40_0000, 512, PscOp::PSMASH),
            (0x60_0000, 512, PscOp::UNSMASH),
            (0x80_0000, 1, PscOp::PSMASH),
        ],
    );
    psc_request(&mut page);
    assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert!(header(&page).is_done());
    assert_eq!(cur_pages(&page), [512, 512, 1]);
    // Done already: answered 0, unchanged.
    let before = shared_buffer(&page);
    psc_request(&mut page);
    assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert_eq!(shared_buffer(&page), before);
}

#[test]
fn hints_complete_on_the_way_to_the_runs_that_convert() {
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    describe(
        &mut page,
        &[
            (0x40_0000, 512, PscOp::PSMASH),
            (0x10_0000, 2, PscOp::SHARED),
            (0x60_0000, 512, PscOp::UNSMASH),
        ],
    );
    psc_request(&mut page);
    assert_eq!(serve(&mut t, &mut page, done), convert(0x10_0000, 2, false));
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert_eq!(header(&page).cur_entry, 3);
    assert_eq!(cur_pages(&page), [512, 1, 1, 0]);
    psc_request(&mut page);
    assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    assert!(header(&page).is_done());
    assert_eq!(cur_pages(&page), [512, 1, 1, 512]);
}

#[test]
fn a_scratch_area_outside_the_shared_buffer_is_refused() {
    let mut t = started();
    let outside = [
        GHCB_GPA,
        GHCB_GPA + 0x3a8,
        SCRATCH - 1,
        SCRATCH + SHARED_BUFFER_SIZE as u64,
        GHCB_GPA + PAGE - 1,
        // The shared buffer of the pages either side.
        SCRATCH + PAGE,
        SCRATCH - PAGE,
        0,
        u64::MAX,
    ];
    for scratch in outside {
        let mut page = [0u8; GHCB_SIZE];
        describe(&mut page, &[(0x10_0000, 1, PscOp::SHARED)]);
        psc_request_at(&mut page, scratch);
        let before = shared_buffer(&page);
        assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
        assert_refused(&page, ERR_INVALID_SCRATCH_AREA);
        assert_eq!(shared_buffer(&page), before);
    }
    // No `sw_scratch` at all.
    let mut page = [0u8; GHCB_SIZE];
    describe(&mut page, &[(0x10_0000, 1, PscOp::SHARED)]);
    psc_request(&mut page);
    Ghcb::new(&mut page).invalidate(Field::SwScratch);
    assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
    assert_refused(&page, ERR_MISSING_INPUT);
}

#[test]
fn a_descriptor_further_into_the_shared_buffer_is_served_where_it_is() {
    let mut t = started();
    let offset = 0x100;
    let mut page = [0u8; GHCB_SIZE];
    {
        let mut ghcb = Ghcb::new(&mut page);
        let mut builder = PscBuilder::new(&mut ghcb.shared_buffer_mut()[offset..]);
        assert_eq!(builder.push(0x10_0000, 3, PscOp::PRIVATE), Ok(3));
        builder.finish();
    }
    psc_request_at(&mut page, SCRATCH + offset as u64);
    assert_eq!(serve(&mut t, &mut page, done), convert(0x10_0000, 3, true));
    assert_eq!(exit_infos(&page), (Some(0), Some(0)));
    let buffer = shared_buffer(&page);
    assert!(buffer[..offset].iter().all(|&b| b == 0));
    let after = PscHeader::read(&buffer[offset..]).unwrap();
    assert_eq!((after.cur_entry, after.end_entry), (3, 2));

    // Not even room for the header: an invalid header.
    let mut page = [0u8; GHCB_SIZE];
    write_descriptor(&mut page, SHARED_BUFFER_SIZE - 4, header_of(0, 0), &[]);
    psc_request_at(&mut page, SCRATCH + SHARED_BUFFER_SIZE as u64 - 4);
    assert_eq!(serve(&mut t, &mut page, no_core), PageCall::Answered);
    assert_eq!(exit_infos(&page), (Some(0), Some(PSC_ERROR_INVALID_HDR)));

    // At the end of the buffer there is room for the header and one entry: a second
    // one does not fit, which makes the header invalid.
    let offset = SHARED_BUFFER_SIZE - PSC_HEADER_SIZE - PSC_ENTRY_SIZE;
    let entries = [
        PscEntry::new(0x100, PscOp::SHARED, false),
        PscEntry::new(0x101, PscOp::SHARED, false),
    ];
    for (end_entry, answer) in [(1, Some(PSC_ERROR_INVALID_HDR)), (0, None)] {
        let mut page = [0u8; GHCB_SIZE];
        write_descriptor(&mut page, offset, header_of(0, end_entry), &entries);
        psc_request_at(&mut page, SCRATCH + offset as u64);
        let call = serve(&mut t, &mut page, done);
        match answer {
            Some(error) => {
                assert_eq!(call, PageCall::Answered);
                assert_eq!(exit_infos(&page), (Some(0), Some(error)));
            }
            None => assert_eq!(call, convert(0x10_0000, 1, false)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The SDK's whole loop.

/// Ranges as workloads convert them: 4 KiB pages around 2 MiB ones, a single page, a run
/// longer than core's step and than a descriptor of 4 KiB entries, and more scattered
/// pages than one descriptor holds.
fn workload_ranges() -> Vec<ConvertRange> {
    let mut ranges = vec![
        ConvertRange {
            gpa: 0x40_0000 - 3 * PAGE,
            pages: 3 + 1024 + 5,
        },
        ConvertRange {
            gpa: 0x100_0000,
            pages: 1,
        },
        ConvertRange {
            gpa: 0x120_0000 + PAGE,
            pages: 600,
        },
    ];
    ranges.extend((0..300).map(|i| ConvertRange {
        gpa: 0x200_0000 + 2 * i * PAGE,
        pages: 1,
    }));
    ranges
}

#[test]
fn the_sdk_loop_converts_every_page_exactly_once_and_ends() {
    let ranges = workload_ranges();
    let cores = [
        (CONVERT_MAX_PAGES_PER_CALL, 0),
        (CONVERT_MAX_PAGES_PER_CALL, 0b1001_0110),
        (1, 0),
        (37, 0x5555_5555_5555_5555),
        (u64::MAX >> 12, 0),
    ];
    for op in [PscOp::SHARED, PscOp::PRIVATE] {
        for (step, busy) in cores {
            let mut t = started();
            let mut page = [0u8; GHCB_SIZE];
            let mut core = Core::new(step, busy);
            let stats = sdk_convert(&mut t, &mut page, &ranges, op, &mut core);
            core.assert_each_page_once(&ranges, op == PscOp::PRIVATE);
            // One conversion per VMGEXIT; those without progress are core's busy ones.
            assert_eq!(stats.calls, core.calls);
            assert_eq!(stats.busy, core.busy_replies);
            assert_eq!(t.msr(), GHCB_GPA);
        }
    }
    // Unbounded steps: one VMGEXIT per run of entries. The first range is 3 runs
    // (4 KiB, 2 MiB, 4 KiB), then the single page; the 600 4 KiB pages fill the rest of
    // the first descriptor (249 entries) and 2 more (253, 98); the scattered pages are
    // one run each.
    let mut t = started();
    let mut page = [0u8; GHCB_SIZE];
    let mut core = Core::new(u64::MAX >> 12, 0);
    let stats = sdk_convert(&mut t, &mut page, &ranges, PscOp::SHARED, &mut core);
    assert_eq!(stats.calls, 3 + 1 + 3 + 300);
}

fn ranges_strategy() -> impl Strategy<Value = Vec<ConvertRange>> {
    let runs = proptest::collection::vec((0u64..600, 1u64..1100), 1..6);
    (0u64..512, runs).prop_map(|(offset, runs)| {
        let mut gpa = 0x100_0000 + offset * PAGE;
        runs.into_iter()
            .map(|(gap, pages)| {
                gpa += gap * PAGE;
                let range = ConvertRange { gpa, pages };
                gpa += pages * PAGE;
                range
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// Whatever the ranges, core's step and when it is busy, the SDK's loop converts
    /// each page once and ends, and every answer passes the SDK's checks.
    #[test]
    fn the_sdk_loop_converts_random_ranges_each_page_once(
        ranges in ranges_strategy(),
        private in any::<bool>(),
        step in 16u64..=CONVERT_MAX_PAGES_PER_CALL,
        busy in any::<u64>(),
    ) {
        let op = if private { PscOp::PRIVATE } else { PscOp::SHARED };
        let mut t = started();
        let mut page = [0u8; GHCB_SIZE];
        let mut core = Core::new(step, busy);
        let stats = sdk_convert(&mut t, &mut page, &ranges, op, &mut core);
        core.assert_each_page_once(&ranges, private);
        prop_assert_eq!(stats.calls, core.calls);
        prop_assert_eq!(stats.busy, core.busy_replies);
    }
}

// ---------------------------------------------------------------------------------------
// Hostile input.

fn msr_value_strategy() -> impl Strategy<Value = u64> {
    let codes = vec![
        0x000, 0x001, 0x002, 0x004, 0x012, 0x013, 0x014, 0x015, 0x080, 0x100, 0xfff,
    ];
    prop_oneof![
        any::<u64>(),
        (any::<u64>(), proptest::sample::select(codes)).prop_map(|(v, code)| v & !0xfff | code),
        Just(GHCB_GPA),
        Just(gfn(GHCB_GPA) << 12 | 0x012),
    ]
}

fn convert_reply(kind: u8, value: u64) -> ConvertReply {
    match kind % 4 {
        0 => ConvertReply::Done,
        1 => ConvertReply::Retry { next: value },
        2 => ConvertReply::Invalid,
        _ => ConvertReply::Misaligned,
    }
}

/// Any sequence of MSR values: no panic, each classified as docs/abi.md says, and
/// answered in the MSR or handed to core accordingly; a random page behind a GPA is
/// served only if it is the registered one.
fn hostile_msr_run(steps: &[(u64, u8, u64)], bytes: &[u8]) {
    let mut t = GhcbTransport::new();
    let mut page = [0u8; GHCB_SIZE];
    page.copy_from_slice(bytes);
    for &(value, kind, next) in steps {
        let registered = t.registered();
        t.write_msr(value);
        let action = t.vmgexit();
        match MsrValue::decode(value) {
            MsrValue::GhcbGpa(gpa) => {
                assert_eq!(action, Vmgexit::Exit(Exit::PageRequest { gpa }));
                assert_eq!(t.msr(), value);
                let mut copy = page;
                let call = t.page_call(&mut copy);
                let refused = matches!(call, PageCall::Refused { .. });
                assert_eq!(refused, registered != Some(gpa));
                if matches!(call, PageCall::Hypercall(_) | PageCall::Convert { .. }) {
                    let reply = if kind & 0x80 != 0 {
                        PageReply::Hypercall(next)
                    } else {
                        PageReply::Convert(convert_reply(kind, next))
                    };
                    t.complete_page_call(&mut copy, reply);
                    assert!(Ghcb::new(&copy).is_valid(Field::SwExitInfo1));
                }
            }
            MsrValue::Request(request) => {
                match request {
                    MsrRequest::SevInfo => {
                        assert_eq!(action, Vmgexit::Resume);
                        assert_eq!(t.msr(), 0x0002_0002_3300_0001);
                    }
                    MsrRequest::RegisterGhcb { gfn } => {
                        assert_eq!(action, Vmgexit::Resume);
                        assert_eq!(
                            MsrResponse::decode(t.msr()),
                            MsrResponse::RegisterGhcb { gfn }
                        );
                        assert_eq!(t.registered(), Some(gfn << 12));
                    }
                    MsrRequest::PageStateChange { gfn, op } if op.converts() => {
                        let convert = Exit::ConvertRequest {
                            gpa: gfn << 12,
                            len: PAGE,
                            to_private: op == PscOp::PRIVATE,
                        };
                        assert_eq!(action, Vmgexit::Exit(convert));
                        let reply = convert_reply(kind, next);
                        let answer = t.complete_msr_conversion(reply);
                        let error = match reply {
                            ConvertReply::Retry { .. } => {
                                assert_eq!(answer, Vmgexit::Repeat);
                                assert_eq!(t.msr(), value);
                                None
                            }
                            ConvertReply::Done => Some(0),
                            _ => Some(PSC_RESP_ERROR_GENERIC),
                        };
                        if let Some(error) = error {
                            assert_eq!(answer, Vmgexit::Resume);
                            assert_eq!(t.msr(), MsrResponse::PageStateChange { error }.encode());
                        }
                    }
                    MsrRequest::PageStateChange { .. } => {
                        assert_eq!(action, Vmgexit::Resume);
                        let error = PSC_RESP_ERROR_GENERIC;
                        assert_eq!(t.msr(), MsrResponse::PageStateChange { error }.encode());
                    }
                    MsrRequest::Terminate { set, reason } => {
                        let reason = u64::from(set) << 8 | u64::from(reason);
                        assert_eq!(action, Vmgexit::Exit(Exit::TerminationRequest { reason }));
                    }
                    MsrRequest::Other { code } => {
                        let unknown = Exit::Unknown {
                            code: u64::from(code),
                            info1: value,
                            info2: 0,
                        };
                        assert_eq!(action, Vmgexit::Exit(unknown));
                    }
                }
                if !matches!(request, MsrRequest::RegisterGhcb { .. }) {
                    assert_eq!(t.registered(), registered);
                }
            }
        }
        // Nothing is pending any more: a stray completion changes nothing.
        let msr = t.msr();
        assert_eq!(
            t.complete_msr_conversion(convert_reply(kind, next)),
            Vmgexit::Resume
        );
        assert_eq!(t.msr(), msr);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// See [`hostile_msr_run`].
    #[test]
    fn hostile_msr_values_never_panic_and_are_answered_as_the_protocol_says(
        steps in proptest::collection::vec(
            (msr_value_strategy(), any::<u8>(), any::<u64>()),
            1..24,
        ),
        bytes in proptest::collection::vec(any::<u8>(), GHCB_SIZE),
    ) {
        hostile_msr_run(&steps, &bytes);
    }
}

/// A GHCB page for the hostile tests.
#[derive(Clone, Debug)]
struct Hostile {
    bytes: Vec<u8>,
    /// 0: the bytes as they are; 1: a hypercall (number `code`); 2: a Page State Change
    /// with `descriptor` where `sw_scratch` points (or at the buffer's start); 3: one
    /// whose descriptor is the random bytes; 4: event `code`, with `sw_scratch`.
    shape: u8,
    code: u64,
    scratch: u64,
    descriptor: (PscHeader, Vec<u64>),
    /// Bits: which parts of the request to break afterwards.
    breaks: u16,
}

impl Hostile {
    fn page(&self) -> Page {
        let mut page = [0u8; GHCB_SIZE];
        page.copy_from_slice(&self.bytes);
        let mut ghcb = Ghcb::new(&mut page);
        match self.shape {
            0 => {}
            1 => ghcb.write_hypercall(self.code, [self.code, !self.code, 1, 2]),
            2 | 3 => {
                if self.shape == 2 {
                    let offset = match self.scratch.checked_sub(SCRATCH) {
                        Some(o) if o < SHARED_BUFFER_SIZE as u64 => o as usize,
                        _ => 0,
                    };
                    let (header, raws) = &self.descriptor;
                    let entries: Vec<PscEntry> =
                        raws.iter().map(|&r| PscEntry::decode(r)).collect();
                    write_descriptor(&mut page, offset, *header, &entries);
                }
                psc_request_at(&mut page, self.scratch);
            }
            _ => {
                ghcb.start_request(self.code, 0, 0);
                ghcb.set(Field::SwScratch, self.scratch);
            }
        }
        let mut ghcb = Ghcb::new(&mut page);
        let fields = [
            Field::SwExitInfo1,
            Field::SwExitInfo2,
            Field::SwExitCode,
            Field::Rax,
            Field::Cpl,
            Field::SwScratch,
        ];
        for (bit, field) in fields.into_iter().enumerate() {
            if self.breaks & (1 << bit) != 0 {
                ghcb.invalidate(field);
            }
        }
        if self.breaks & 1 << 6 != 0 {
            ghcb.set_usage(u32::from(self.breaks) | 1);
        }
        if self.breaks & 1 << 7 != 0 {
            ghcb.set_protocol_version(self.breaks);
        }
        page
    }
}

/// Descriptors near valid ones: mostly contiguous entries (so runs merge), half of them
/// without any defect, the others with some (invalid operations, misaligned 2 MiB
/// entries, reserved bits, `cur_page` beyond the entry, random entries or headers).
fn descriptor_strategy() -> impl Strategy<Value = (PscHeader, Vec<u64>)> {
    let entry = (
        0u8..16,
        0u8..8,
        any::<bool>(),
        0u8..8,
        0u8..16,
        any::<u64>(),
    );
    let entries = proptest::collection::vec(entry, 1..24);
    let header = (0u8..4, any::<u16>(), any::<u16>(), any::<u32>());
    (any::<bool>(), entries, header).prop_map(|(clean, list, (header_kind, a, b, reserved))| {
        let mut next_gfn = 0x400u64;
        let raws: Vec<u64> = list
            .iter()
            .map(|&(gap, op, huge, cur, defect, random)| {
                let (op, cur, defect) = if clean {
                    (op % 7, cur % 7, defect.max(3))
                } else {
                    (op, cur, defect)
                };
                if defect == 0 {
                    return random;
                }
                let pages = if huge { PAGES_PER_2M } else { 1 };
                if huge {
                    next_gfn = next_gfn.next_multiple_of(PAGES_PER_2M);
                }
                let gfn = next_gfn + u64::from(defect == 1 && huge);
                next_gfn += pages + if gap < 12 { 0 } else { u64::from(gap) };
                let op = match op {
                    0..=2 => PscOp::SHARED,
                    3 | 4 => PscOp::PRIVATE,
                    5 => PscOp::PSMASH,
                    6 => PscOp::UNSMASH,
                    _ => PscOp((random >> 60) as u8),
                };
                let cur_page = match cur {
                    0..=4 => 0,
                    5 => pages as u16,
                    6 => (random % (pages + 1)) as u16,
                    _ => (random % 0x1000) as u16,
                };
                PscEntry {
                    cur_page,
                    gfn,
                    op,
                    huge,
                    reserved: u8::from(defect == 2),
                }
                .encode()
            })
            .collect();
        let last = (raws.len() as u16).saturating_sub(1);
        let header = match (clean, header_kind) {
            (true, _) | (false, 0) => header_of(0, last),
            (false, 1) => header_of(a % (last + 2), last),
            (false, 2) => header_of(0, b % 260),
            _ => PscHeader {
                cur_entry: a,
                end_entry: b,
                reserved,
            },
        };
        (header, raws)
    })
}

fn hostile_strategy() -> impl Strategy<Value = Hostile> {
    let scratch = prop_oneof![
        4 => Just(SCRATCH),
        2 => (0..SHARED_BUFFER_SIZE as u64).prop_map(|o| SCRATCH + o),
        1 => (0..PAGE).prop_map(|o| GHCB_GPA + o),
        1 => any::<u64>(),
    ];
    let code = prop_oneof![
        Just(SVM_EXIT_VMMCALL),
        Just(SVM_VMGEXIT_PSC),
        Just(SVM_VMGEXIT_TERM_REQUEST),
        any::<u64>(),
    ];
    let breaks = prop_oneof![3 => Just(0u16), 1 => any::<u16>().prop_map(|b| b & 0xff)];
    (
        proptest::collection::vec(any::<u8>(), GHCB_SIZE),
        prop_oneof![1 => Just(0u8), 2 => Just(1), 6 => Just(2), 1 => Just(3), 1 => Just(4)],
        code,
        scratch,
        descriptor_strategy(),
        breaks,
    )
        .prop_map(
            |(bytes, shape, code, scratch, descriptor, breaks)| Hostile {
                bytes,
                shape,
                code,
                scratch,
                descriptor,
                breaks,
            },
        )
}

/// Whether `[gpa, gpa + len)` is all pages still to do with that conversion in entries
/// `cur_entry..=end_entry` of the descriptor in `buffer`.
fn covered(buffer: &[u8], gpa: u64, len: u64, to_private: bool) -> bool {
    let Some(header) = PscHeader::read(buffer) else {
        return false;
    };
    let op = if to_private {
        PscOp::PRIVATE
    } else {
        PscOp::SHARED
    };
    let mut spans: Vec<(u64, u64)> = (header.cur_entry..=header.end_entry)
        .filter_map(|i| PscEntry::read(buffer, i))
        .filter(|e| e.op == op)
        .map(|e| {
            (
                e.gpa() + u64::from(e.cur_page) * PAGE,
                e.gpa() + e.pages() * PAGE,
            )
        })
        .collect();
    spans.sort_unstable();
    let (mut at, end) = (gpa, gpa + len);
    for (start, stop) in spans {
        if at >= end {
            break;
        }
        if start > at {
            return false;
        }
        at = at.max(stop);
    }
    at >= end
}

/// The progress of the descriptor at `scratch`, if that is inside the shared buffer.
fn scratch_progress(page: &Page, scratch: u64) -> Option<(PscHeader, (u16, u16))> {
    let offset = usize::try_from(scratch.checked_sub(SCRATCH)?).ok()?;
    let ghcb = Ghcb::new(page);
    let buffer = ghcb.shared_buffer().get(offset..)?;
    let header = PscHeader::read(buffer)?;
    let cur_page = PscEntry::read(buffer, header.cur_entry).map_or(0, |e| e.cur_page);
    Some((header, (header.cur_entry, cur_page)))
}

/// The guest's loop on a hostile page, with core answering from `replies` and then
/// `Done`: every answer is well formed, nothing panics, and a Page State Change ends.
fn hostile_run(hostile: &Hostile, replies: &[(u8, u64)]) {
    let mut t = started();
    let mut page = hostile.page();
    let scratch = Ghcb::new(&page).get_raw(Field::SwScratch);
    let mut replies = replies.iter().copied();
    let limit = replies.len() + PSC_MAX_ENTRIES + 2;
    for round in 0.. {
        assert!(round < limit, "the Page State Change does not end");
        let request = page;
        let (mut copy, call) = page_exit(&mut t, &request);
        let (kind, value) = replies.next().unwrap_or((0, 0));
        match call {
            PageCall::Refused { what } => panic!("refused: {what}"),
            PageCall::Answered => {
                let (info_1, info_2) = exit_infos(&copy);
                assert_eq!(
                    valid_fields(&copy),
                    vec![Field::SwExitInfo1, Field::SwExitInfo2]
                );
                match info_1 {
                    Some(0) => {
                        // Only a Page State Change answers without refusing.
                        assert_eq!(Ghcb::new(&request).exit_code(), Ok(SVM_VMGEXIT_PSC));
                        let errors = [0, PSC_ERROR_INVALID_HDR, PSC_ERROR_INVALID_ENTRY];
                        assert!(errors.contains(&info_2.unwrap()), "{info_2:?}");
                        if info_2 == Some(0) {
                            let (before, key) = scratch_progress(&request, scratch).unwrap();
                            let (after, key_after) = scratch_progress(&copy, scratch).unwrap();
                            assert!(after.is_done());
                            assert!(key_after >= key);
                            assert_eq!(after.end_entry, before.end_entry);
                        } else {
                            assert_eq!(shared_buffer(&copy), shared_buffer(&request));
                        }
                    }
                    Some(1..) => {
                        assert_eq!(info_1, Some(u64::from(EXIT_INFO_1_ERROR)));
                        let reasons = [
                            ERR_INVALID_USAGE,
                            ERR_INVALID_SCRATCH_AREA,
                            ERR_MISSING_INPUT,
                            ERR_INVALID_EVENT,
                        ];
                        assert!(reasons.contains(&info_2.unwrap()), "{info_2:?}");
                        assert_eq!(shared_buffer(&copy), shared_buffer(&request));
                    }
                    None => panic!("no sw_exit_info_1"),
                }
                return;
            }
            PageCall::Hypercall(call) => {
                let ghcb = Ghcb::new(&request);
                assert_eq!(ghcb.exit_code(), Ok(SVM_EXIT_VMMCALL));
                assert_eq!(Some(call.number), ghcb.get(Field::Rax));
                if kind & 1 == 0 {
                    t.complete_page_call(&mut copy, PageReply::Hypercall(value));
                    assert_eq!(Ghcb::new(&copy).hypercall_result(), Some(value));
                } else {
                    let reply = PageReply::Convert(convert_reply(kind, value));
                    t.complete_page_call(&mut copy, reply);
                    assert_refused(&copy, ERR_INVALID_INPUT);
                }
                return;
            }
            PageCall::Convert {
                gpa,
                len,
                to_private,
            } => {
                assert!(gpa.is_multiple_of(PAGE) && len.is_multiple_of(PAGE) && len > 0);
                let ghcb = Ghcb::new(&request);
                assert_eq!(ghcb.exit_code(), Ok(SVM_VMGEXIT_PSC));
                let buffer = ghcb.scratch_buffer(GHCB_GPA).expect("a scratch area");
                assert!(
                    covered(buffer, gpa, len, to_private),
                    "{gpa:#x}+{len:#x} is not in the request"
                );
                let (before, key) = scratch_progress(&request, scratch).unwrap();
                let reply = match kind % 6 {
                    0 => PageReply::Convert(ConvertReply::Done),
                    1 => PageReply::Convert(ConvertReply::Retry {
                        next: gpa + value % (len + 2 * PAGE),
                    }),
                    2 => PageReply::Convert(ConvertReply::Retry { next: value }),
                    3 => PageReply::Convert(ConvertReply::Invalid),
                    4 => PageReply::Convert(ConvertReply::Misaligned),
                    _ => PageReply::Hypercall(value),
                };
                t.complete_page_call(&mut copy, reply);
                page = copy;
                match reply {
                    PageReply::Hypercall(_) => {
                        assert_refused(&page, ERR_INVALID_INPUT);
                        return;
                    }
                    PageReply::Convert(ConvertReply::Invalid | ConvertReply::Misaligned) => {
                        assert_eq!(exit_infos(&page), (Some(0), Some(PSC_ERROR_INVALID_ENTRY)));
                        return;
                    }
                    PageReply::Convert(_) => {
                        assert_eq!(exit_infos(&page), (Some(0), Some(0)));
                        let (after, key_after) = scratch_progress(&page, scratch).unwrap();
                        assert!(key_after >= key, "progress moved backwards");
                        assert_eq!(after.end_entry, before.end_entry);
                        assert_eq!(after.reserved, before.reserved);
                        if after.is_done() {
                            return;
                        }
                        // The guest asks again, unchanged.
                        psc_request_at(&mut page, scratch);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    /// Random GHCB pages, from raw bytes to near-valid requests with defects, through
    /// `page_call` and `complete_page_call` with random answers: no panic, every answer
    /// well formed, conversions only of pages the request names, progress only forwards,
    /// and a Page State Change the guest repeats ends.
    #[test]
    fn hostile_pages_never_panic_and_page_state_changes_end(
        hostile in hostile_strategy(),
        replies in proptest::collection::vec((any::<u8>(), any::<u64>()), 0..8),
    ) {
        hostile_run(&hostile, &replies);
    }

    /// Raw random pages, and answers with nothing pending, never panic.
    #[test]
    fn random_bytes_and_stray_answers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), GHCB_SIZE),
        kind in any::<u8>(),
        value in any::<u64>(),
    ) {
        let mut t = started();
        let mut page = [0u8; GHCB_SIZE];
        page.copy_from_slice(&bytes);
        let mut copy = page;
        t.complete_page_call(&mut copy, PageReply::Convert(convert_reply(kind, value)));
        assert_refused(&copy, ERR_INVALID_INPUT);
        let (mut copy, call) = page_exit(&mut t, &page);
        let refused = matches!(call, PageCall::Refused { .. });
        prop_assert!(!refused);
        t.complete_page_call(&mut copy, PageReply::Hypercall(value));
        prop_assert!(Ghcb::new(&copy).is_valid(Field::SwExitInfo1));
    }
}
