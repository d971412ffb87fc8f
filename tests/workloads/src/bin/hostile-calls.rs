//! A hostile workload: attacks the hypercall surface with every class of bad number and
//! argument it can name, storms the conversion path, floods the hypervisor with calls,
//! and checks each answer against the one docs/abi.md and the code give.
//!
//! Every case prints `hostile-calls: <case>: <got> (as documented|WRONG)`; the exit
//! status is the number of WRONG cases.
//!
//! The workload makes every call itself, never through the SDK's console or conversion
//! helpers, so it knows exactly how many it made: its last line says how many, and the
//! run summary's `hypercalls=` must agree. It also keeps a model of every private page
//! it converts, so it knows how many prepared frames conversions to shared released:
//! the hypervisor's memory line must balance with that number.
//!
//! The memory map is fixed by tests/configs/hostile-calls.toml and checked at start.
//! With calls the configuration denies (hostile-calls-denied.toml), each case of such a
//! call expects DENIED whatever its arguments, and the parts that need conversions (the
//! scenarios, the storm and the flood) are skipped.
#![no_std]
#![no_main]

use cloister_guest::abi::boot::{BOOT_INFO_GPA, BOOT_INFO_SIZE};
use cloister_guest::abi::hypercall::{
    CONSOLE_DRAIN_PER_EXIT, CONSOLE_WRITE_MAX, CONVERT_MAX_ENTRIES, CONVERT_MAX_PAGES_PER_CALL,
    CONVERT_RANGE_SIZE, CONVERT_TO_PRIVATE, CONVERT_TO_SHARED, ConvertRange, MEASUREMENT_SIZE,
    bench,
};
use cloister_guest::abi::{BootInfo, Call, Error, MemoryKind, MemoryRegion};
use cloister_guest::entry;
use cloister_guest::hypercall::{Transport, raw_hypercall, transport};
use cloister_guest::memory::{self, ConvertError};
use core::fmt::{self, Write};

entry!(main);

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const INFO_LEN: u64 = BOOT_INFO_SIZE as u64;

// The memory map (tests/configs/hostile-calls.toml).

/// Private slot A: boot info, page tables, stack, image, and the pages converted here.
const A: u64 = 0;
const A_SIZE: u64 = 16 * MIB;
/// Private slot B, right after A.
const B: u64 = A + A_SIZE;
const B_SIZE: u64 = 4 * MIB;
/// Shared S1, followed directly by private C.
const S1: u64 = 0x4000_0000;
const S1_END: u64 = S1 + 2 * MIB;
/// Private C, followed directly by shared S2.
const C: u64 = S1_END;
const C_SIZE: u64 = 2 * MIB;
const C_END: u64 = C + C_SIZE;
/// Shared S2, followed directly by shared S3.
const S2: u64 = C_END;
/// Shared S3; nothing follows it.
const S3: u64 = S2 + 2 * MIB;
const S3_END: u64 = S3 + 2 * MIB;

const LAYOUT: [(u64, u64, MemoryKind); 6] = [
    (A, A_SIZE, MemoryKind::Private),
    (B, B_SIZE, MemoryKind::Private),
    (S1, S1_END - S1, MemoryKind::Shared),
    (C, C_SIZE, MemoryKind::Private),
    (S2, S3 - S2, MemoryKind::Shared),
    (S3, S3_END - S3, MemoryKind::Shared),
];

// Addresses that are no memory of the workload, or not memory a buffer may be in.

/// Far from every region.
const UNMAPPED: u64 = 0x8000_0000;
/// Inside the hypervisor's reserved host-physical [0, 32M) (its stacks and heap), and
/// outside every region: a GPA must never be taken for a host address.
const HOST_HYPERVISOR_MEMORY: u64 = 24 * MIB;
/// Where the hypervisor image lives on the host; a private page of slot A to the
/// workload, to be treated as just that.
const HOST_HYPERVISOR_IMAGE: u64 = MIB;
/// The host-physical bases of pools (fixed in the configuration); no region has them.
const HOST_SHARED_POOL_S1: u64 = 0x340_0000;
const HOST_PRIVATE_POOL_A: u64 = 0x200_0000;
/// The TDX shared-GPA bit: on SVM it makes a GPA that is no memory.
const BIT_47: u64 = 1 << 47;

// Buffers in shared memory. S1's first page is the SDK's staging page: unused here.

/// Each output line is written from here.
const PRINT: u64 = S1 + PAGE;
/// INFO and MEASUREMENT copies: aligned, and unaligned in a page of its own.
const OUT: u64 = S1 + 2 * PAGE;
const OUT_UNALIGNED: u64 = S1 + 3 * PAGE + 3;
/// MEMORY_CONVERT lists: page aligned, and 256 entries starting 8 bytes into a page.
const LIST: u64 = S1 + 4 * PAGE;
const LIST_UNALIGNED: u64 = S1 + 5 * PAGE + 8;
/// The 4 KiB console text (4095 dots and a newline).
const LONG_TEXT: u64 = S2;
/// Console texts from an unaligned GPA and across a page boundary.
const TEXT_UNALIGNED: u64 = S2 + PAGE + 1;
const TEXT_CROSSING: u64 = S2 + 3 * PAGE - 40;

// Private pages this workload converts (all tracked by the model).

/// Slot A's last 8 MiB: the storm's 4 MiB, then pages for the cases.
const STORM: u64 = 8 * MIB;
const STORM_PAGES: u64 = 1024;
const SCRATCH: u64 = STORM + STORM_PAGES * PAGE;

/// The pages refused lists name (every other page from SCRATCH): never touched, so a
/// conversion that should not have happened shows and costs no prepared frame.
const fn untouched(i: u64) -> u64 {
    SCRATCH + 2 * i * PAGE
}
const REFUSED_LIST_PAGES: u64 = 256;

/// Pages for the scenarios, 8 KiB apart, above the ones refused lists name.
const fn scenario(i: u64) -> u64 {
    SCRATCH + 2 * MIB + 2 * i * PAGE
}

/// How many conversions the storm makes, and the flood's calls.
const STORM_CONVERSIONS: u64 = 2048;
const FLOOD_ROUNDS: u64 = 3000;
const FLOOD_CALLS_PER_ROUND: u64 = 8;

const NOT_SHARED: i64 = Error::NotShared as i64;
const INVALID: i64 = Error::InvalidArgument as i64;
const UNKNOWN: i64 = Error::UnknownCall as i64;
const BUSY: i64 = Error::Busy as i64;

// Raw access to the workload's own memory, identity mapped: a GPA is a pointer.

fn write_bytes(gpa: u64, bytes: &[u8]) {
    // SAFETY: every GPA passed here is memory of this workload (a shared region, or a
    // private page it owns), identity mapped, and nothing else refers to it.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), gpa as *mut u8, bytes.len()) };
}

fn fill(gpa: u64, len: u64, byte: u8) {
    // SAFETY: as in write_bytes.
    unsafe { core::ptr::write_bytes(gpa as *mut u8, byte, len as usize) };
}

fn byte_at(gpa: u64) -> u8 {
    // SAFETY: as in write_bytes; volatile, since the hypervisor wrote it.
    unsafe { (gpa as *const u8).read_volatile() }
}

fn word_at(gpa: u64) -> u64 {
    // SAFETY: as in write_bytes; GPAs passed here are 8-byte aligned.
    unsafe { (gpa as *const u64).read_volatile() }
}

fn set_word(gpa: u64, value: u64) {
    // SAFETY: as in word_at.
    unsafe { (gpa as *mut u64).write_volatile(value) };
}

/// Bytes of `[gpa, gpa + len)` that are not `byte`.
fn bytes_not(gpa: u64, len: u64, byte: u8) -> i64 {
    (0..len).filter(|&i| byte_at(gpa + i) != byte).count() as i64
}

/// Bytes that differ between `[a, a + len)` and `[b, b + len)`.
fn bytes_differing(a: u64, b: u64, len: u64) -> i64 {
    (0..len)
        .filter(|&i| byte_at(a + i) != byte_at(b + i))
        .count() as i64
}

fn write_list(gpa: u64, ranges: &[ConvertRange]) {
    for (i, range) in ranges.iter().enumerate() {
        let at = gpa + i as u64 * CONVERT_RANGE_SIZE;
        write_bytes(at, &range.gpa.to_le_bytes());
        write_bytes(at + 8, &range.pages.to_le_bytes());
    }
}

const fn range(gpa: u64, pages: u64) -> ConvertRange {
    ConvertRange { gpa, pages }
}

/// One output line, formatted on the stack and cut at one exit's drain budget, so a
/// line never leaves a console write draining behind it.
struct Line {
    bytes: [u8; CONSOLE_DRAIN_PER_EXIT as usize],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self {
            bytes: [0; CONSOLE_DRAIN_PER_EXIT as usize],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

/// A case name put together at run time.
fn named(args: fmt::Arguments<'_>) -> Line {
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    line
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // The last byte is kept for the newline.
        let room = self.bytes.len() - 1 - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// What the workload believes of each private page it converts: what the hypervisor's
/// page state must be, and what the page's first word must read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PageState {
    /// Private and never touched since launch or since it became private again: the
    /// next touch prepares a frame, which reads zero.
    Untouched,
    /// Private, touched: a prepared frame.
    Private,
    /// Converted to shared.
    Shared,
}

/// The tracked pages: GPA 1 MiB, slot A from STORM to its end, and slots B and C.
const TRACKED_A: u64 = (A_SIZE - STORM) / PAGE;
const TRACKED_B: u64 = B_SIZE / PAGE;
const TRACKED_C: u64 = C_SIZE / PAGE;
const TRACKED: usize = (1 + TRACKED_A + TRACKED_B + TRACKED_C) as usize;

struct Model {
    state: [PageState; TRACKED],
    word: [u64; TRACKED],
    /// Prepared frames the conversions to shared released (the hypervisor's
    /// `prepared` must be its launch and fault preparations less these).
    released: u64,
    /// Tracked pages prepared by a first touch.
    first_touches: u64,
}

impl Model {
    fn new() -> Self {
        Self {
            state: [PageState::Untouched; TRACKED],
            word: [0; TRACKED],
            released: 0,
            first_touches: 0,
        }
    }

    fn index(gpa: u64) -> usize {
        let page = gpa / PAGE;
        let index = if page == HOST_HYPERVISOR_IMAGE / PAGE {
            Some(0)
        } else if (STORM..A + A_SIZE).contains(&gpa) {
            Some(1 + page - STORM / PAGE)
        } else if (B..B + B_SIZE).contains(&gpa) {
            Some(1 + TRACKED_A + page - B / PAGE)
        } else if (C..C_END).contains(&gpa) {
            Some(1 + TRACKED_A + TRACKED_B + page - C / PAGE)
        } else {
            None
        };
        match index {
            Some(index) => index as usize,
            None => panic!("page {gpa:#x} is not tracked"),
        }
    }

    fn state(&self, gpa: u64) -> PageState {
        self.state[Self::index(gpa)]
    }

    /// A conversion of `ranges` the hypervisor completed.
    fn converted(&mut self, ranges: &[ConvertRange], to_shared: bool) {
        for r in ranges {
            for page in 0..r.pages {
                self.converted_page(r.gpa + page * PAGE, to_shared);
            }
        }
    }

    fn converted_page(&mut self, gpa: u64, to_shared: bool) {
        let i = Self::index(gpa);
        // Converting to the attribute a page has changes nothing; otherwise contents go.
        match (self.state[i], to_shared) {
            (PageState::Private, true) => {
                self.released += 1;
                (self.state[i], self.word[i]) = (PageState::Shared, 0);
            }
            (PageState::Untouched, true) => (self.state[i], self.word[i]) = (PageState::Shared, 0),
            (PageState::Shared, false) => {
                (self.state[i], self.word[i]) = (PageState::Untouched, 0);
            }
            _ => {}
        }
    }

    /// The page is about to be touched.
    fn touch(&mut self, gpa: u64) {
        let i = Self::index(gpa);
        if self.state[i] == PageState::Untouched {
            self.state[i] = PageState::Private;
            self.first_touches += 1;
        }
    }

    /// Read the page's first word; `(read, expected)`.
    fn read(&mut self, gpa: u64) -> (u64, u64) {
        self.touch(gpa);
        (word_at(gpa), self.word[Self::index(gpa)])
    }

    fn write(&mut self, gpa: u64, value: u64) {
        self.touch(gpa);
        set_word(gpa, value);
        self.word[Self::index(gpa)] = value;
    }

    /// The hypervisor wrote the page (INFO): its first word is now `value`.
    fn written_by_hypervisor(&mut self, gpa: u64, value: u64) {
        self.word[Self::index(gpa)] = value;
    }

    /// Fill the whole page with `word`.
    fn fill_page(&mut self, gpa: u64, word: u64) {
        self.touch(gpa);
        for i in 0..PAGE / 8 {
            set_word(gpa + i * 8, word);
        }
        self.word[Self::index(gpa)] = word;
    }

    /// Words of the page that are not `word` (touching it).
    fn words_not(&mut self, gpa: u64, word: u64) -> i64 {
        self.touch(gpa);
        (0..PAGE / 8)
            .filter(|&i| word_at(gpa + i * 8) != word)
            .count() as i64
    }
}

/// Deterministic pseudo-random numbers for the storm (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Hostile {
    permitted: u64,
    /// Hypercalls made, every one.
    calls: u64,
    cases: u64,
    wrong: u64,
    model: Model,
}

impl Hostile {
    fn call(&mut self, number: u64, args: [u64; 4]) -> i64 {
        self.calls += 1;
        raw_hypercall(number, args) as i64
    }

    fn permits(&self, call: Call) -> bool {
        self.permitted & call.mask() != 0
    }

    /// What `number` must answer when docs/abi.md says `documented` for its arguments:
    /// a defined call the configuration does not permit is DENIED whatever they are.
    fn expected(&self, number: u64, documented: i64) -> i64 {
        match Call::from_raw(number) {
            Some(call) if !self.permits(call) => Error::Denied as i64,
            _ => documented,
        }
    }

    fn say(&mut self, args: fmt::Arguments<'_>) {
        let mut line = named(args);
        line.bytes[line.len] = b'\n';
        let len = line.len as u64 + 1;
        write_bytes(PRINT, &line.bytes[..len as usize]);
        // BUSY: a long write of a case still drains; every retry drains more.
        while self.call(Call::ConsoleWrite as u64, [PRINT, len, 0, 0]) == BUSY {}
    }

    /// Report a case: `got` must be `expected`.
    fn check(&mut self, name: &str, got: i64, expected: i64) {
        self.cases += 1;
        let ok = got == expected;
        self.wrong += u64::from(!ok);
        let verdict = if ok { "as documented" } else { "WRONG" };
        self.say(format_args!("hostile-calls: {name}: {got} ({verdict})"));
    }

    /// Make a call and check its answer against the documented one (or DENIED).
    fn case(&mut self, name: &str, number: u64, args: [u64; 4], documented: i64) -> i64 {
        let expected = self.expected(number, documented);
        let got = self.call(number, args);
        self.check(name, got, expected);
        got
    }

    /// Zero-length console writes until the console is idle (BUSY while a write drains).
    fn wait_for_console(&mut self) {
        while self.call(Call::ConsoleWrite as u64, [PRINT, 0, 0, 0]) == BUSY {}
    }

    /// Whether the page at `gpa` is shared memory to the hypervisor: a zero-length
    /// console write from it answers 0 if so, NOT_SHARED if not (the console is idle).
    /// It names a byte inside the page, not its first: a page's first byte is also
    /// where the slot before it may end, and a zero-length buffer there crashes the
    /// hypervisor (see `slot_end_cases`).
    fn probe(&mut self, gpa: u64) -> i64 {
        self.call(Call::ConsoleWrite as u64, [gpa + 8, 0, 0, 0])
    }

    /// One MEMORY_CONVERT call for `ranges` written at LIST, checked as a case; on a
    /// complete answer from the start, the model follows.
    fn convert_case(&mut self, name: &str, ranges: &[ConvertRange], direction: u64) -> i64 {
        write_list(LIST, ranges);
        let count = ranges.len() as u64;
        let total: u64 = ranges.iter().map(|r| r.pages).sum();
        let args = [LIST, count, direction, 0];
        let got = self.case(name, Call::MemoryConvert as u64, args, total as i64);
        if got == total as i64 {
            self.model.converted(ranges, direction == CONVERT_TO_SHARED);
        }
        got
    }

    /// Convert `ranges` completely; returns the calls it took. On VMMCALL: MEMORY_CONVERT
    /// calls, each call's progress exactly the next batch (no BUSY: nothing converted
    /// here is a console buffer). On GHCB: the transport's own conversion, Page State
    /// Change requests, through the SDK (the table still attacks MEMORY_CONVERT there).
    fn convert(&mut self, ranges: &[ConvertRange], direction: u64) -> Result<u64, Failure> {
        let to_shared = direction == CONVERT_TO_SHARED;
        if transport() == Transport::Ghcb {
            let stats = if to_shared {
                memory::to_shared(ranges)
            } else {
                memory::to_private(ranges)
            };
            let stats = stats.map_err(Failure::Sdk)?;
            self.calls += stats.calls;
            self.model.converted(ranges, to_shared);
            return Ok(stats.calls);
        }
        let total: u64 = ranges.iter().map(|r| r.pages).sum();
        let (mut done, mut calls) = (0, 0);
        while done < total {
            write_list(LIST, ranges);
            let args = [LIST, ranges.len() as u64, direction, done];
            let got = self.call(Call::MemoryConvert as u64, args);
            calls += 1;
            let next = total.min(done + CONVERT_MAX_PAGES_PER_CALL);
            if got != next as i64 {
                return Err(Failure::Answer(got));
            }
            done = next;
        }
        self.model.converted(ranges, to_shared);
        Ok(calls)
    }

    /// A conversion the scenarios need as a step: reported (WRONG) only if it fails.
    fn convert_step(&mut self, name: &str, ranges: &[ConvertRange], direction: u64) {
        if let Err(failure) = self.convert(ranges, direction) {
            self.cases += 1;
            self.wrong += 1;
            self.say(format_args!("hostile-calls: {name}: {failure} (WRONG)"));
        }
    }
}

/// Why [`Hostile::convert`] did not finish.
enum Failure {
    /// A MEMORY_CONVERT call answered this instead of the next batch.
    Answer(i64),
    /// The SDK's Page State Change conversion failed (and its calls went uncounted).
    Sdk(ConvertError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answer(got) => write!(f, "memory_convert answered {got}"),
            Self::Sdk(error) => write!(f, "page state change failed: {error:?}"),
        }
    }
}

fn main(info: &'static BootInfo) -> i32 {
    let mut run = Hostile {
        permitted: info.allowed_calls,
        calls: 0,
        cases: 0,
        wrong: 0,
        model: Model::new(),
    };
    if !layout_matches(info) {
        run.say(format_args!(
            "hostile-calls: the boot info's memory map is not tests/configs/hostile-calls.toml's (WRONG)"
        ));
        return 1;
    }
    if info.name() == SLOT_END_NAME {
        slot_end_cases(&mut run);
        return finish(run);
    }
    prepare_texts();
    unknown_calls(&mut run);
    console_write_cases(&mut run);
    info_cases(&mut run);
    measurement_cases(&mut run);
    convert_cases(&mut run);
    let full = [Call::Info, Call::Measurement, Call::MemoryConvert]
        .into_iter()
        .all(|c| run.permits(c));
    if full {
        host_address_scenario(&mut run);
        resume_scenario(&mut run);
        contents_scenario(&mut run);
        list_scenario(&mut run);
        batch_scenario(&mut run);
        busy_scenario(&mut run);
        slot_scenario(&mut run);
        cross_slot(&mut run);
        storm(&mut run);
        flood(&mut run);
    } else {
        run.say(format_args!(
            "hostile-calls: info, measurement or memory_convert not permitted: scenarios, storm and flood skipped"
        ));
    }
    finish(run)
}

/// The closing lines, and the exit status: the number of WRONG cases.
fn finish(mut run: Hostile) -> i32 {
    let (released, first_touches) = (run.model.released, run.model.first_touches);
    run.say(format_args!(
        "hostile-calls: accounting: released={released} first_touches={first_touches}"
    ));
    let (cases, wrong) = (run.cases, run.wrong);
    run.say(format_args!("hostile-calls: {cases} cases, {wrong} wrong"));
    // The console is idle (every line fits one exit's drain), so the next line is one
    // call, and the exit after it one more. On GHCB the SDK's start made one more: the
    // MSR-protocol Page State Change of its GHCB page, which the hypervisor counts as a
    // conversion request (it answers the SEV information and registration requests in
    // the transport, without counting them).
    run.wait_for_console();
    let start = u64::from(transport() == Transport::Ghcb);
    let total = run.calls + 2 + start;
    run.say(format_args!(
        "hostile-calls: hypercalls made: {total} (this line, the exit and the SDK's included)"
    ));
    // EXIT reports the low 32 bits of its status: the run must end "exited <wrong>",
    // whatever the bits above. Should EXIT return, the SDK's exit after `main` is one
    // call more than the line above says.
    let status = wrong.min(i32::MAX as u64);
    run.call(Call::Exit as u64, [0xdead_beef << 32 | status, 0, 0, 0]);
    status as i32
}

/// The workload name of tests/configs/hostile-calls-slot-end.toml, which runs only
/// [`slot_end_cases`].
const SLOT_END_NAME: &str = "hostile-calls-slot-end";

/// A zero-length CONSOLE_WRITE at the GPA where a private slot ends. The empty range
/// lies in no shared region, so NOT_SHARED, as "length 0 in private memory" is. The
/// hypervisor instead panics on the first: the slot "contains" the empty range at its
/// end (core/src/memslot.rs), and PrivateMemory::is_shared then reads the state of the
/// page after the slot's last (privmem/src/private_memory.rs), out of bounds. Kept out
/// of the main run, which it would end.
fn slot_end_cases(run: &mut Hostile) {
    let n = Call::ConsoleWrite as u64;
    run.case(
        "console_write: length 0 at the end of private slot B (nothing follows)",
        n,
        [B + B_SIZE, 0, 0, 0],
        NOT_SHARED,
    );
    run.case(
        "console_write: length 0 at the end of private slot A (private B follows)",
        n,
        [B, 0, 0, 0],
        NOT_SHARED,
    );
}

fn layout_matches(info: &BootInfo) -> bool {
    let expected = LAYOUT.map(|(gpa, size, kind)| MemoryRegion {
        gpa,
        size,
        kind: kind as u32,
        reserved: 0,
    });
    info.regions() == expected
}

/// The console texts the successful console writes send.
fn prepare_texts() {
    fill(LONG_TEXT, CONSOLE_WRITE_MAX - 1, b'.');
    write_bytes(LONG_TEXT + CONSOLE_WRITE_MAX - 1, b"\n");
    write_bytes(TEXT_UNALIGNED, UNALIGNED_TEXT);
    write_bytes(TEXT_CROSSING, CROSSING_TEXT);
    write_bytes(S3_END - 1, b"\n");
}

const UNALIGNED_TEXT: &[u8] = b"hostile-calls: (console text from an unaligned shared GPA)\n";
const CROSSING_TEXT: &[u8] =
    b"hostile-calls: (console text crossing a page boundary inside one shared region)\n";

fn unknown_calls(run: &mut Hostile) {
    let numbers: [(&str, u64); 8] = [
        ("call 0", 0),
        ("call 6 (the first unassigned number)", 6),
        ("call 63", 63),
        ("call 64", 64),
        ("call u64::MAX", u64::MAX),
        (
            "call 0xbe000001 (bench-only, in an image without bench hooks)",
            bench::ZAP_PRIVATE,
        ),
        (
            "call 0x100000001 (console_write's number plus bit 32)",
            1 << 32 | 1,
        ),
        (
            "call 3 with bit 63 set (info's number plus bit 63)",
            1 << 63 | 3,
        ),
    ];
    for (name, number) in numbers {
        // Arguments that would be a valid INFO: only the number is wrong.
        run.case(name, number, [OUT, INFO_LEN, 0, 0], UNKNOWN);
    }
}

fn console_write_cases(run: &mut Hostile) {
    let n = Call::ConsoleWrite as u64;
    let unaligned = UNALIGNED_TEXT.len() as u64;
    let crossing = CROSSING_TEXT.len() as u64;
    let cases: [(&str, [u64; 4], i64); 25] = [
        (
            "console_write: gpa outside every region",
            [UNMAPPED, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: gpa 24 MiB (hypervisor host memory, no region)",
            [HOST_HYPERVISOR_MEMORY, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: gpa = host base of shared pool S1 (no region)",
            [HOST_SHARED_POOL_S1, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: gpa 1 MiB (private; the hypervisor image's host address)",
            [HOST_HYPERVISOR_IMAGE, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: the boot info page (private)",
            [BOOT_INFO_GPA, 64, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: the image (private)",
            [0x20_0000, 64, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: shared gpa with bit 47 set",
            [S2 | BIT_47, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: shared gpa with bit 63 set",
            [S2 | 1 << 63, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: length 4097",
            [S2, CONSOLE_WRITE_MAX + 1, 0, 0],
            INVALID,
        ),
        (
            "console_write: length u64::MAX",
            [S2, u64::MAX, 0, 0],
            INVALID,
        ),
        ("console_write: length 1<<63", [S2, 1 << 63, 0, 0], INVALID),
        (
            "console_write: range wrapping past 2^64",
            [u64::MAX - 3, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: 4096 bytes wrapping past 2^64",
            [u64::MAX - 2047, 4096, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: straddling shared S1 into private C",
            [S1_END - 4, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: straddling private C into shared S2",
            [C_END - 4, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: straddling shared S2 into shared S3",
            [S3 - 4, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: straddling shared S3 into unmapped",
            [S3_END - 4, 8, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: length 0 outside every region",
            [UNMAPPED, 0, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: length 0 in private memory",
            [BOOT_INFO_GPA, 0, 0, 0],
            NOT_SHARED,
        ),
        (
            // Judged by the page the GPA falls in: past S3's end, nothing.
            "console_write: length 0 at the end of shared S3",
            [S3_END, 0, 0, 0],
            NOT_SHARED,
        ),
        (
            "console_write: length 0 at the start of shared S3",
            [S3, 0, 0, 0],
            0,
        ),
        (
            "console_write: unaligned shared gpa",
            [TEXT_UNALIGNED, unaligned, 0, 0],
            unaligned as i64,
        ),
        (
            "console_write: crossing a page boundary in one shared region",
            [TEXT_CROSSING, crossing, 0, 0],
            crossing as i64,
        ),
        (
            "console_write: the last byte of shared S3",
            [S3_END - 1, 1, 0, 0],
            1,
        ),
        (
            "console_write: non-zero unused arguments",
            [TEXT_UNALIGNED, unaligned, u64::MAX, u64::MAX],
            unaligned as i64,
        ),
    ];
    for (name, args, documented) in cases {
        run.case(name, n, args, documented);
    }
    // A write of the maximum length drains over the following exits; while it does,
    // every write is BUSY, even an empty one. The three calls follow each other with
    // no exit between them (no line is printed until the last).
    let long = run.call(n, [LONG_TEXT, CONSOLE_WRITE_MAX, 0, 0]);
    let second = run.call(n, [TEXT_UNALIGNED, 8, 0, 0]);
    let empty = run.call(n, [PRINT, 0, 0, 0]);
    run.check("console_write: length 4096 (the maximum)", long, 4096);
    // Printing the line above drained the rest of the long write.
    run.check("console_write: another write while it drains", second, BUSY);
    run.check("console_write: length 0 while it drains", empty, BUSY);
    run.case("console_write: length 0 once idle", n, [PRINT, 0, 0, 0], 0);
}

/// The shared bytes in front of a boundary that INFO and MEASUREMENT buffers straddle:
/// S1 into private C, S2 into S3, S3 into unmapped.
const STRADDLED: [u64; 3] = [
    S1_END - STRADDLED_LEN,
    S3 - STRADDLED_LEN,
    S3_END - STRADDLED_LEN,
];
const STRADDLED_LEN: u64 = 20;
/// What buffers hold before a call that must not write them.
const FILL: u8 = 0x5a;

/// INFO and MEASUREMENT share their argument classes; `len` is what each writes.
fn copy_call_cases(run: &mut Hostile, call: Call, len: u64) {
    let n = call as u64;
    let name = call.name();
    let cases: [(&str, [u64; 4], i64); 17] = [
        ("length 0", [OUT, 0, 0, 0], INVALID),
        ("length one short", [OUT, len - 1, 0, 0], INVALID),
        ("length u64::MAX", [OUT, u64::MAX, 0, 0], len as i64),
        ("length 1<<63", [OUT, 1 << 63, 0, 0], len as i64),
        (
            "gpa outside every region",
            [UNMAPPED, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "gpa 24 MiB (hypervisor host memory, no region)",
            [HOST_HYPERVISOR_MEMORY, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "gpa = host base of shared pool S1 (no region)",
            [HOST_SHARED_POOL_S1, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "gpa 1 MiB (private; the hypervisor image's host address)",
            [HOST_HYPERVISOR_IMAGE, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "the boot info page (private)",
            [BOOT_INFO_GPA, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "shared gpa with bit 47 set",
            [OUT | BIT_47, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "range wrapping past 2^64",
            [u64::MAX - 20, len, 0, 0],
            NOT_SHARED,
        ),
        (
            "straddling shared S1 into private C",
            [STRADDLED[0], len, 0, 0],
            NOT_SHARED,
        ),
        (
            "straddling shared S2 into shared S3",
            [STRADDLED[1], len, 0, 0],
            NOT_SHARED,
        ),
        (
            "straddling shared S3 into unmapped",
            [STRADDLED[2], len, 0, 0],
            NOT_SHARED,
        ),
        (
            "the last bytes of shared S3",
            [S3_END - len, len, 0, 0],
            len as i64,
        ),
        ("4 KiB-aligned shared gpa", [OUT, len, 0, 0], len as i64),
        (
            "unaligned shared gpa",
            [OUT_UNALIGNED, len, 0, 0],
            len as i64,
        ),
    ];
    // Refused calls write nothing: the shared bytes in front of each straddle, and the
    // buffers of the valid calls, start out filled with a byte the copy changes.
    for gpa in STRADDLED {
        fill(gpa, STRADDLED_LEN, FILL);
    }
    fill(OUT, len, FILL);
    fill(OUT_UNALIGNED, len, !FILL);
    for (what, args, documented) in cases {
        // The refused straddles are checked before the valid last-bytes case rewrites
        // the end of S3.
        if what == "the last bytes of shared S3" {
            let changed = STRADDLED
                .map(|gpa| bytes_not(gpa, STRADDLED_LEN, FILL))
                .iter()
                .sum();
            let name = named(format_args!(
                "{name}: bytes the refused straddling calls wrote"
            ));
            run.check(name.as_str(), changed, 0);
        }
        run.case(
            named(format_args!("{name}: {what}")).as_str(),
            n,
            args,
            documented,
        );
    }
    // Permitted: both copies hold the same bytes. Denied: both keep their fills, which
    // differ everywhere.
    let differing = if run.permits(call) { 0 } else { len as i64 };
    let name = named(format_args!(
        "{name}: bytes differing between the aligned and unaligned copies"
    ));
    run.check(
        name.as_str(),
        bytes_differing(OUT, OUT_UNALIGNED, len),
        differing,
    );
}

fn info_cases(run: &mut Hostile) {
    copy_call_cases(run, Call::Info, INFO_LEN);
    // What INFO copied is the boot info as the workload was launched with it (it has
    // not changed it). Denied: the copy keeps its fill.
    let differing = bytes_differing(OUT, BOOT_INFO_GPA, INFO_LEN);
    let expected = if run.permits(Call::Info) {
        0
    } else {
        bytes_not(BOOT_INFO_GPA, INFO_LEN, FILL)
    };
    run.check(
        "info: bytes of the copy differing from the boot info page",
        differing,
        expected,
    );
}

fn measurement_cases(run: &mut Hostile) {
    copy_call_cases(run, Call::Measurement, MEASUREMENT_SIZE);
}

/// MEMORY_CONVERT with bad arguments: every list is refused whole, so the pages the
/// lists name (never touched) stay private.
fn convert_cases(run: &mut Hostile) {
    let n = Call::MemoryConvert as u64;
    let f = untouched;
    let shared = CONVERT_TO_SHARED;
    let private = CONVERT_TO_PRIVATE;
    let max = CONVERT_MAX_ENTRIES;
    // (name, where the list is, its entries (written only to LIST), count, direction,
    // resume, documented)
    type ListCase<'a> = (&'a str, u64, &'a [ConvertRange], u64, u64, u64, i64);
    let one = [range(f(0), 1)];
    let cases: [ListCase<'_>; 32] = [
        ("direction 0", LIST, &one, 1, 0, 0, INVALID),
        ("direction 3", LIST, &one, 1, 3, 0, INVALID),
        ("direction u64::MAX", LIST, &one, 1, u64::MAX, 0, INVALID),
        ("count 0", LIST, &one, 0, shared, 0, INVALID),
        ("count 257", LIST, &one, max + 1, shared, 0, INVALID),
        ("count u64::MAX", LIST, &one, u64::MAX, shared, 0, INVALID),
        (
            "count 1<<60 (count x 16 wraps to 0)",
            LIST,
            &one,
            1 << 60,
            shared,
            0,
            INVALID,
        ),
        (
            "list outside every region",
            UNMAPPED,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list at 24 MiB (hypervisor host memory, no region)",
            HOST_HYPERVISOR_MEMORY,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list at the host base of shared pool S1 (no region)",
            HOST_SHARED_POOL_S1,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list at 1 MiB (private; the hypervisor image's host address)",
            HOST_HYPERVISOR_IMAGE,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list in the boot info page (private)",
            BOOT_INFO_GPA,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list with bit 47 set",
            LIST | BIT_47,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list wrapping past 2^64",
            u64::MAX - 7,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list straddling shared S1 into private C",
            S1_END - 8,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list straddling shared S2 into shared S3",
            S3 - 8,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "list straddling shared S3 into unmapped",
            S3_END - 8,
            &[],
            1,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "256 entries running off the end of shared S3",
            S3_END - 255 * CONVERT_RANGE_SIZE,
            &[],
            max,
            shared,
            0,
            NOT_SHARED,
        ),
        (
            "entry gpa 2 KiB off alignment",
            LIST,
            &[range(f(0) + 0x800, 1)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry gpa 1 byte off alignment, to private",
            LIST,
            &[range(f(0) + 1, 1)],
            1,
            private,
            0,
            INVALID,
        ),
        (
            "entry of 0 pages",
            LIST,
            &[range(f(0), 0)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry of u64::MAX pages",
            LIST,
            &[range(f(0), u64::MAX)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry of 2^52 pages (its length wraps to 0)",
            LIST,
            &[range(f(0), 1 << 52)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry wrapping past 2^64",
            LIST,
            &[range(0xffff_ffff_ffff_f000, 2)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry outside every region",
            LIST,
            &[range(UNMAPPED, 1)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry at 24 MiB (hypervisor host memory, no region)",
            LIST,
            &[range(HOST_HYPERVISOR_MEMORY, 1)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry at the host base of private pool A (no region)",
            LIST,
            &[range(HOST_PRIVATE_POOL_A, 1)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry in shared S1",
            LIST,
            &[range(S1 + MIB, 1)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry spanning private slots A and B",
            LIST,
            &[range(B - PAGE, 2)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry running off private B into unmapped",
            LIST,
            &[range(B + B_SIZE - PAGE, 2)],
            1,
            shared,
            0,
            INVALID,
        ),
        (
            "entry running off private C into shared S2",
            LIST,
            &[range(C_END - PAGE, 2)],
            1,
            private,
            0,
            INVALID,
        ),
        (
            "entry with bit 47 set",
            LIST,
            &[range(f(0) | BIT_47, 1)],
            1,
            shared,
            0,
            INVALID,
        ),
    ];
    let case = |run: &mut Hostile, what: &str, list: u64, count, direction, resume, doc| {
        let name = named(format_args!("memory_convert: {what}"));
        run.case(name.as_str(), n, [list, count, direction, resume], doc);
    };
    for (what, list, entries, count, direction, resume, documented) in cases {
        if list == LIST {
            write_list(LIST, entries);
        }
        case(run, what, list, count, direction, resume, documented);
    }

    // Lists that are refused for the company their entries keep.
    let lists: [(&str, &[ConvertRange], u64, i64); 6] = [
        (
            "second entry starting inside the first",
            &[range(f(0), 2), range(f(0) + PAGE, 1)],
            0,
            INVALID,
        ),
        (
            "the same entry twice",
            &[range(f(0), 1), range(f(0), 1)],
            0,
            INVALID,
        ),
        (
            "overlapping entries, the later one first",
            &[range(f(0) + PAGE, 1), range(f(0), 2)],
            0,
            INVALID,
        ),
        (
            "an entry inside another",
            &[range(f(0), 4), range(f(1), 1)],
            0,
            INVALID,
        ),
        ("resume beyond the total", &[range(f(0), 1)], 2, INVALID),
        ("resume u64::MAX", &[range(f(0), 1)], u64::MAX, INVALID),
    ];
    for (what, entries, resume, documented) in lists {
        write_list(LIST, entries);
        case(
            run,
            what,
            LIST,
            entries.len() as u64,
            shared,
            resume,
            documented,
        );
    }

    // Full lists: 256 pages, every other page of SCRATCH, each on its own.
    let mut full = [range(0, 1); CONVERT_MAX_ENTRIES as usize];
    for (i, entry) in full.iter_mut().enumerate() {
        entry.gpa = f(i as u64);
    }
    full[255].gpa = full[0].gpa;
    write_list(LIST, &full);
    case(
        run,
        "the 256th entry the same as the first",
        LIST,
        max,
        shared,
        0,
        INVALID,
    );
    full[255].gpa = f(255) + 0x800;
    write_list(LIST, &full);
    case(
        run,
        "a misaligned entry after 255 good ones",
        LIST,
        max,
        shared,
        0,
        INVALID,
    );
    full[255] = range(B - PAGE, 2);
    write_list(LIST, &full);
    case(
        run,
        "a slot-spanning entry after 255 good ones",
        LIST,
        max,
        private,
        0,
        INVALID,
    );

    // Nothing was converted: every page the refused lists named is private.
    run.wait_for_console();
    let converted = (0..REFUSED_LIST_PAGES)
        .flat_map(|i| [f(i), f(i) + PAGE])
        .filter(|&gpa| run.probe(gpa) != NOT_SHARED)
        .count() as i64;
    run.check(
        "memory_convert: pages the refused lists converted",
        converted,
        0,
    );
}

/// GPA 1 MiB is where the hypervisor image lives on the host; to the workload it is a
/// private page like any other, and converting it must reach nothing of the host's.
fn host_address_scenario(run: &mut Hostile) {
    let gpa = HOST_HYPERVISOR_IMAGE;
    run.model.write(gpa, 0x1111);
    run.convert_case(
        "memory_convert: gpa 1 MiB (the hypervisor image's host address) to shared",
        &[range(gpa, 1)],
        CONVERT_TO_SHARED,
    );
    let words = run.model.words_not(gpa, 0);
    run.check(
        "memory_convert: non-zero words of 1 MiB once shared (scrubbed)",
        words,
        0,
    );
    let text = b"hostile-calls: (console text from converted memory at GPA 1 MiB)\n";
    run.model.touch(gpa);
    write_bytes(gpa, text);
    run.case(
        "console_write: from converted memory at 1 MiB",
        Call::ConsoleWrite as u64,
        [gpa, text.len() as u64, 0, 0],
        text.len() as i64,
    );
    let got = run.case(
        "info: into converted memory at 1 MiB",
        Call::Info as u64,
        [gpa, INFO_LEN, 0, 0],
        INFO_LEN as i64,
    );
    if got == INFO_LEN as i64 {
        run.model.written_by_hypervisor(gpa, word_at(BOOT_INFO_GPA));
    }
    run.check(
        "info: bytes of the copy at 1 MiB differing from the boot info page",
        bytes_differing(gpa, BOOT_INFO_GPA, INFO_LEN),
        0,
    );
    run.convert_case(
        "memory_convert: 1 MiB back to private",
        &[range(gpa, 1)],
        CONVERT_TO_PRIVATE,
    );
    run.case(
        "console_write: from 1 MiB once private again",
        Call::ConsoleWrite as u64,
        [gpa, 8, 0, 0],
        NOT_SHARED,
    );
    let words = run.model.words_not(gpa, 0);
    run.check(
        "memory_convert: non-zero words of 1 MiB once private again",
        words,
        0,
    );
}

/// RSI says how much of the list earlier calls did; the hypervisor goes on from there.
fn resume_scenario(run: &mut Hostile) {
    let n = Call::MemoryConvert as u64;
    let (first, second) = (scenario(0), scenario(1));
    write_list(LIST, &[range(first, 1)]);
    run.case(
        "memory_convert: resume equal to the total (nothing left to do)",
        n,
        [LIST, 1, CONVERT_TO_SHARED, 1],
        1,
    );
    let probe = run.probe(first);
    run.check(
        "memory_convert: its page after resume equal to the total",
        probe,
        NOT_SHARED,
    );
    write_list(LIST, &[range(second, 2)]);
    let got = run.case(
        "memory_convert: resume 1 of 2 pages",
        n,
        [LIST, 1, CONVERT_TO_SHARED, 1],
        2,
    );
    if got == 2 {
        run.model.converted(&[range(second + PAGE, 1)], true);
    }
    let skipped = run.probe(second);
    let done = run.probe(second + PAGE);
    run.check(
        "memory_convert: the page resume 1 skipped (still private)",
        skipped,
        NOT_SHARED,
    );
    run.check(
        "memory_convert: the page resume 1 converted (shared)",
        done,
        0,
    );
    run.convert_step(
        "memory_convert: both pages back to private",
        &[range(second, 2)],
        CONVERT_TO_PRIVATE,
    );
}

/// Contents do not survive a conversion, and converting to the attribute a page already
/// has changes nothing.
fn contents_scenario(run: &mut Hostile) {
    let (page, kept) = (scenario(2), scenario(3));
    let pattern = 0x5eed_0000_0000_0001;
    run.model.fill_page(page, pattern);
    run.convert_case(
        "memory_convert: a page holding data to shared",
        &[range(page, 1)],
        CONVERT_TO_SHARED,
    );
    let words = run.model.words_not(page, 0);
    run.check(
        "memory_convert: non-zero words once shared (scrubbed)",
        words,
        0,
    );
    run.model.fill_page(page, pattern);
    run.convert_case(
        "memory_convert: the shared page to shared again",
        &[range(page, 1)],
        CONVERT_TO_SHARED,
    );
    let words = run.model.words_not(page, pattern);
    run.check("memory_convert: words shared to shared changed", words, 0);
    run.convert_case(
        "memory_convert: the page back to private",
        &[range(page, 1)],
        CONVERT_TO_PRIVATE,
    );
    let words = run.model.words_not(page, 0);
    run.check(
        "memory_convert: non-zero words once private again",
        words,
        0,
    );
    run.model.fill_page(kept, pattern);
    run.convert_case(
        "memory_convert: a private page holding data to private",
        &[range(kept, 1)],
        CONVERT_TO_PRIVATE,
    );
    let words = run.model.words_not(kept, pattern);
    run.check("memory_convert: words private to private changed", words, 0);
}

/// Lists in converted memory, a list that converts its own page, and a full list at an
/// unaligned GPA.
fn list_scenario(run: &mut Hostile) {
    let n = Call::MemoryConvert as u64;
    let (list_page, target) = (scenario(4), scenario(5));
    run.convert_step(
        "memory_convert: a page for the list to shared",
        &[range(list_page, 1)],
        CONVERT_TO_SHARED,
    );
    run.model.touch(list_page);
    write_list(list_page, &[range(target, 1)]);
    let got = run.case(
        "memory_convert: list in converted-to-shared memory",
        n,
        [list_page, 1, CONVERT_TO_SHARED, 0],
        1,
    );
    if got == 1 {
        run.model.converted(&[range(target, 1)], true);
    }
    write_list(list_page, &[range(list_page, 1)]);
    let got = run.case(
        "memory_convert: list converting its own page to private",
        n,
        [list_page, 1, CONVERT_TO_PRIVATE, 0],
        1,
    );
    if got == 1 {
        run.model.converted(&[range(list_page, 1)], false);
    }
    run.case(
        "memory_convert: the same list again, its page now private",
        n,
        [list_page, 1, CONVERT_TO_PRIVATE, 0],
        NOT_SHARED,
    );
    run.convert_step(
        "memory_convert: the target back to private",
        &[range(target, 1)],
        CONVERT_TO_PRIVATE,
    );

    // 256 single pages (every other page of slot B), the list 8 bytes into a page.
    let mut full = [range(0, 1); CONVERT_MAX_ENTRIES as usize];
    for (i, entry) in full.iter_mut().enumerate() {
        entry.gpa = B + 2 * i as u64 * PAGE;
    }
    write_list(LIST_UNALIGNED, &full);
    for (name, direction) in [
        (
            "memory_convert: 256 entries from an unaligned list, to shared",
            CONVERT_TO_SHARED,
        ),
        (
            "memory_convert: the same 256 entries back to private",
            CONVERT_TO_PRIVATE,
        ),
    ] {
        let got = run.case(name, n, [LIST_UNALIGNED, 256, direction, 0], 256);
        if got == 256 {
            run.model.converted(&full, direction == CONVERT_TO_SHARED);
        }
    }
}

/// At most 512 pages per call; contiguous entries are one range.
fn batch_scenario(run: &mut Hostile) {
    let n = Call::MemoryConvert as u64;
    let ranges = [range(B, 300), range(B + 300 * PAGE, 300)];
    for (direction, first, resumed) in [
        (
            CONVERT_TO_SHARED,
            "memory_convert: 600 pages in 2 contiguous entries, first call",
            "memory_convert: the same, resumed at 512",
        ),
        (
            CONVERT_TO_PRIVATE,
            "memory_convert: 600 pages back to private, first call",
            "memory_convert: back to private, resumed at 512",
        ),
    ] {
        write_list(LIST, &ranges);
        run.case(first, n, [LIST, 2, direction, 0], 512);
        let got = run.case(resumed, n, [LIST, 2, direction, 512], 600);
        if got == 600 {
            run.model.converted(&ranges, direction == CONVERT_TO_SHARED);
        }
    }
}

/// While a console write drains from a converted page, that page cannot become private.
fn busy_scenario(run: &mut Hostile) {
    let n = Call::MemoryConvert as u64;
    let page = scenario(6);
    run.convert_step(
        "memory_convert: the console page to shared",
        &[range(page, 1)],
        CONVERT_TO_SHARED,
    );
    run.model.touch(page);
    fill(page, CONSOLE_WRITE_MAX - 1, b'.');
    write_bytes(page + CONSOLE_WRITE_MAX - 1, b"\n");
    write_list(LIST, &[range(page, 1)]);
    // No exit between these calls: the write still drains at each of them.
    let write = run.call(Call::ConsoleWrite as u64, [page, CONSOLE_WRITE_MAX, 0, 0]);
    let to_private = run.call(n, [LIST, 1, CONVERT_TO_PRIVATE, 0]);
    let to_shared = run.call(n, [LIST, 1, CONVERT_TO_SHARED, 0]);
    run.check(
        "console_write: 4096 bytes from a converted page",
        write,
        4096,
    );
    run.check(
        "memory_convert: that page to private while it drains",
        to_private,
        BUSY,
    );
    run.check(
        "memory_convert: that page to shared while it drains (already shared)",
        to_shared,
        1,
    );
    run.wait_for_console();
    run.convert_case(
        "memory_convert: that page to private once the console is idle",
        &[range(page, 1)],
        CONVERT_TO_PRIVATE,
    );
}

/// Private slot C lies above shared S1 (beyond 1 GiB): its pages convert as slot A's.
fn slot_scenario(run: &mut Hostile) {
    let ranges = [range(C + PAGE, 8)];
    run.convert_case(
        "memory_convert: 8 pages of private slot C to shared",
        &ranges,
        CONVERT_TO_SHARED,
    );
    let got = run.case(
        "info: into converted memory of slot C",
        Call::Info as u64,
        [C + PAGE, INFO_LEN, 0, 0],
        INFO_LEN as i64,
    );
    if got == INFO_LEN as i64 {
        run.model
            .written_by_hypervisor(C + PAGE, word_at(BOOT_INFO_GPA));
    }
    run.case(
        "info: straddling converted C memory into private C memory",
        Call::Info as u64,
        [C + 9 * PAGE - 20, INFO_LEN, 0, 0],
        NOT_SHARED,
    );
    run.case(
        "console_write: straddling converted C memory into private C memory",
        Call::ConsoleWrite as u64,
        [C + 9 * PAGE - 4, 8, 0, 0],
        NOT_SHARED,
    );
    run.case(
        "memory_convert: list straddling converted C memory into private C memory",
        Call::MemoryConvert as u64,
        [C + 9 * PAGE - 8, 1, CONVERT_TO_SHARED, 0],
        NOT_SHARED,
    );
    run.convert_case(
        "memory_convert: the 8 pages of slot C back to private",
        &ranges,
        CONVERT_TO_PRIVATE,
    );
}

/// docs/abi.md: "Contiguous entries (one starting where the previous one ends) are
/// converted as one range", each entry inside one private memory region. A's last page
/// and B's first are contiguous but in two slots: each is converted in its own. (The
/// hypervisor used to merge them into one range no slot holds and refuse it after the
/// lone entry before them was converted.)
fn cross_slot(run: &mut Hostile) {
    let n = Call::MemoryConvert as u64;
    let lone = scenario(7);
    let pair = [range(B - PAGE, 1), range(B, 1)];
    let ranges = [range(lone, 1), pair[0], pair[1]];
    write_list(LIST, &ranges);
    let got = run.call(n, [LIST, 3, CONVERT_TO_SHARED, 0]);
    run.check(
        "memory_convert: entries ending A and starting B (each in one slot), after a lone one",
        got,
        3,
    );
    let converted = ranges.iter().filter(|r| run.probe(r.gpa) == 0).count() as i64;
    run.check("memory_convert: pages that list converted", converted, 3);
    // Whatever happened, the three pages were never touched: back to private, the model
    // and the hypervisor agree again (nothing was prepared, nothing released).
    for r in ranges {
        run.convert_step(
            "memory_convert: the cross-slot pages back to private",
            &[r],
            CONVERT_TO_PRIVATE,
        );
    }
}

/// Thousands of conversions of varying size and alignment over 4 MiB, checking the
/// data rules at every step and the batching of every call.
fn storm(run: &mut Hostile) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut calls, mut pages, mut mismatches, mut info_calls) = (0u64, 0u64, 0i64, 0u64);
    for step in 0..STORM_CONVERSIONS {
        let mut ranges = [range(0, 0); 4];
        let mut count = 0;
        for _ in 0..1 + rng.below(4) {
            let len = match rng.below(100) {
                0..70 => 1 + rng.below(16),
                70..95 => 17 + rng.below(112),
                _ => 300 + rng.below(401),
            };
            let start = match rng.below(4) {
                // 2 MiB aligned.
                0 => rng.below(2) * 512,
                // Right after the previous entry: merged with it.
                1 if count > 0 => {
                    let last: ConvertRange = ranges[count - 1];
                    (last.gpa - STORM) / PAGE + last.pages
                }
                _ => rng.below(STORM_PAGES),
            };
            if start >= STORM_PAGES {
                continue;
            }
            let entry = range(STORM + start * PAGE, len.min(STORM_PAGES - start));
            let end = entry.gpa + entry.pages * PAGE;
            let overlaps = ranges[..count]
                .iter()
                .any(|r| r.gpa < end && entry.gpa < r.gpa + r.pages * PAGE);
            if !overlaps {
                ranges[count] = entry;
                count += 1;
            }
        }
        let ranges = &ranges[..count];
        let direction = if rng.below(2) == 0 {
            CONVERT_TO_SHARED
        } else {
            CONVERT_TO_PRIVATE
        };
        match run.convert(ranges, direction) {
            Ok(n) => calls += n,
            Err(failure) => {
                run.say(format_args!(
                    "hostile-calls: storm: conversion {step} failed: {failure}"
                ));
                mismatches += 1;
                continue;
            }
        }
        pages += ranges.iter().map(|r| r.pages).sum::<u64>();
        // Each entry's first, middle and last page read what the model says, and take
        // a new word.
        for r in ranges {
            for gpa in [
                r.gpa,
                r.gpa + r.pages / 2 * PAGE,
                r.gpa + (r.pages - 1) * PAGE,
            ] {
                let (read, expected) = run.model.read(gpa);
                mismatches += i64::from(read != expected);
                run.model.write(gpa, step << 32 | gpa);
            }
        }
        // Every 16th step: INFO into the first page, which must be shared memory for
        // the hypervisor exactly when the model says so.
        if step % 16 == 0 {
            let gpa = ranges[0].gpa;
            let shared = run.model.state(gpa) == PageState::Shared;
            let got = run.call(Call::Info as u64, [gpa, INFO_LEN, 0, 0]);
            info_calls += 1;
            let expected = if shared { INFO_LEN as i64 } else { NOT_SHARED };
            mismatches += i64::from(got != expected);
            if got == INFO_LEN as i64 {
                run.model.written_by_hypervisor(gpa, word_at(BOOT_INFO_GPA));
            }
        }
    }
    // The whole area to private: pages converted earlier read zero, private ones keep
    // their words. Then to shared: every page reads zero. Then private and untouched,
    // so the storm leaves no prepared frame behind.
    let all = [range(STORM, STORM_PAGES)];
    for direction in [CONVERT_TO_PRIVATE, CONVERT_TO_SHARED] {
        match run.convert(&all, direction) {
            Ok(n) => calls += n,
            Err(_) => mismatches += 1,
        }
        for page in 0..STORM_PAGES {
            let (read, expected) = run.model.read(STORM + page * PAGE);
            mismatches += i64::from(read != expected);
        }
    }
    match run.convert(&all, CONVERT_TO_PRIVATE) {
        Ok(n) => calls += n,
        Err(_) => mismatches += 1,
    }
    let left = (0..STORM_PAGES)
        .filter(|&page| run.model.state(STORM + page * PAGE) != PageState::Untouched)
        .count();
    let by = match transport() {
        Transport::Ghcb => "page state change",
        _ => "memory_convert",
    };
    run.say(format_args!(
        "hostile-calls: storm: {STORM_CONVERSIONS} conversions, {pages} pages, {calls} {by} calls, {info_calls} info calls, {left} pages left touched"
    ));
    run.check(
        "storm: answers and reads not as the model says",
        mismatches,
        0,
    );
}

/// Tens of thousands of calls back to back, valid and invalid mixed, each answer
/// checked; then the hypervisor must still work.
fn flood(run: &mut Hostile) {
    let page = scenario(8);
    run.convert_step(
        "flood: its page to shared",
        &[range(page, 1)],
        CONVERT_TO_SHARED,
    );
    let digest = OUT + 0x800;
    let reference = OUT + 0xc00;
    let m = MEASUREMENT_SIZE;
    run.case(
        "flood: the digest before",
        Call::Measurement as u64,
        [reference, m, 0, 0],
        m as i64,
    );
    write_list(LIST, &[range(page, 1)]);
    let round: [(u64, [u64; 4], i64); FLOOD_CALLS_PER_ROUND as usize] = [
        (Call::Info as u64, [OUT, INFO_LEN, 0, 0], INFO_LEN as i64),
        (Call::Measurement as u64, [digest, m, 0, 0], m as i64),
        (6, [0; 4], UNKNOWN),
        (Call::ConsoleWrite as u64, [PRINT, 0, 0, 0], 0),
        (Call::ConsoleWrite as u64, [UNMAPPED, 8, 0, 0], NOT_SHARED),
        (
            Call::MemoryConvert as u64,
            [LIST, 0, CONVERT_TO_SHARED, 0],
            INVALID,
        ),
        // Already shared: changes nothing, answers its one page.
        (
            Call::MemoryConvert as u64,
            [LIST, 1, CONVERT_TO_SHARED, 0],
            1,
        ),
        (
            Call::Info as u64,
            [BOOT_INFO_GPA, INFO_LEN, 0, 0],
            NOT_SHARED,
        ),
    ];
    let before = run.calls;
    let mut unexpected = 0i64;
    for _ in 0..FLOOD_ROUNDS {
        for (number, args, expected) in round {
            unexpected += i64::from(run.call(number, args) != expected);
        }
    }
    let made = (run.calls - before) as i64;
    run.say(format_args!(
        "hostile-calls: flood: {made} calls in {FLOOD_ROUNDS} rounds"
    ));
    run.check("flood: unexpected answers", unexpected, 0);
    // Afterwards: the same digest, the same boot info, and a conversion round trip.
    run.check(
        "after the flood: digest bytes differing from the one before",
        bytes_differing(digest, reference, m),
        0,
    );
    run.check(
        "after the flood: info bytes differing from the boot info page",
        bytes_differing(OUT, BOOT_INFO_GPA, INFO_LEN),
        0,
    );
    run.convert_case(
        "after the flood: its page back to private",
        &[range(page, 1)],
        CONVERT_TO_PRIVATE,
    );
    run.convert_case(
        "after the flood: and to shared again",
        &[range(page, 1)],
        CONVERT_TO_SHARED,
    );
    run.convert_case(
        "after the flood: and to private again",
        &[range(page, 1)],
        CONVERT_TO_PRIVATE,
    );
}
