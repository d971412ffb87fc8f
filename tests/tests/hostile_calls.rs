//! The hostile-calls workload (tests/workloads/src/bin/hostile-calls.rs) in QEMU: every
//! class of bad hypercall number and argument gets exactly the answer docs/abi.md and the
//! code give, a storm of conversions and a flood of calls leave the hypervisor
//! consistent, and the run's own counters agree with what the workload did.

use cloister_runner::RunResult;
use cloister_tests::harness::{describe, memory_counter, model_line, run_to_clean_exit};

/// Every case line of a run with every call permitted, in order, after the
/// `hostile-calls: ` prefix. The same on VMMCALL and on the GHCB (SEV-SNP model).
const CASES: [&str; 168] = [
    "call 0: -1 (as documented)",
    "call 6 (the first unassigned number): -1 (as documented)",
    "call 63: -1 (as documented)",
    "call 64: -1 (as documented)",
    "call u64::MAX: -1 (as documented)",
    "call 0xbe000001 (bench-only, in an image without bench hooks): -1 (as documented)",
    "call 0x100000001 (console_write's number plus bit 32): -1 (as documented)",
    "call 3 with bit 63 set (info's number plus bit 63): -1 (as documented)",
    "console_write: gpa outside every region: -3 (as documented)",
    "console_write: gpa 24 MiB (hypervisor host memory, no region): -3 (as documented)",
    "console_write: gpa = host base of shared pool S1 (no region): -3 (as documented)",
    "console_write: gpa 1 MiB (private; the hypervisor image's host address): -3 (as documented)",
    "console_write: the boot info page (private): -3 (as documented)",
    "console_write: the image (private): -3 (as documented)",
    "console_write: shared gpa with bit 47 set: -3 (as documented)",
    "console_write: shared gpa with bit 63 set: -3 (as documented)",
    "console_write: length 4097: -2 (as documented)",
    "console_write: length u64::MAX: -2 (as documented)",
    "console_write: length 1<<63: -2 (as documented)",
    "console_write: range wrapping past 2^64: -3 (as documented)",
    "console_write: 4096 bytes wrapping past 2^64: -3 (as documented)",
    "console_write: straddling shared S1 into private C: -3 (as documented)",
    "console_write: straddling private C into shared S2: -3 (as documented)",
    "console_write: straddling shared S2 into shared S3: -3 (as documented)",
    "console_write: straddling shared S3 into unmapped: -3 (as documented)",
    "console_write: length 0 outside every region: -3 (as documented)",
    "console_write: length 0 in private memory: -3 (as documented)",
    "console_write: length 0 at the end of shared S3: -3 (as documented)",
    "console_write: length 0 at the start of shared S3: 0 (as documented)",
    "console_write: unaligned shared gpa: 59 (as documented)",
    "console_write: crossing a page boundary in one shared region: 80 (as documented)",
    "console_write: the last byte of shared S3: 1 (as documented)",
    "console_write: non-zero unused arguments: 59 (as documented)",
    "console_write: length 4096 (the maximum): 4096 (as documented)",
    "console_write: another write while it drains: -5 (as documented)",
    "console_write: length 0 while it drains: -5 (as documented)",
    "console_write: length 0 once idle: 0 (as documented)",
    "info: length 0: -2 (as documented)",
    "info: length one short: -2 (as documented)",
    "info: length u64::MAX: 448 (as documented)",
    "info: length 1<<63: 448 (as documented)",
    "info: gpa outside every region: -3 (as documented)",
    "info: gpa 24 MiB (hypervisor host memory, no region): -3 (as documented)",
    "info: gpa = host base of shared pool S1 (no region): -3 (as documented)",
    "info: gpa 1 MiB (private; the hypervisor image's host address): -3 (as documented)",
    "info: the boot info page (private): -3 (as documented)",
    "info: shared gpa with bit 47 set: -3 (as documented)",
    "info: range wrapping past 2^64: -3 (as documented)",
    "info: straddling shared S1 into private C: -3 (as documented)",
    "info: straddling shared S2 into shared S3: -3 (as documented)",
    "info: straddling shared S3 into unmapped: -3 (as documented)",
    "info: bytes the refused straddling calls wrote: 0 (as documented)",
    "info: the last bytes of shared S3: 448 (as documented)",
    "info: 4 KiB-aligned shared gpa: 448 (as documented)",
    "info: unaligned shared gpa: 448 (as documented)",
    "info: bytes differing between the aligned and unaligned copies: 0 (as documented)",
    "info: bytes of the copy differing from the boot info page: 0 (as documented)",
    "measurement: length 0: -2 (as documented)",
    "measurement: length one short: -2 (as documented)",
    "measurement: length u64::MAX: 48 (as documented)",
    "measurement: length 1<<63: 48 (as documented)",
    "measurement: gpa outside every region: -3 (as documented)",
    "measurement: gpa 24 MiB (hypervisor host memory, no region): -3 (as documented)",
    "measurement: gpa = host base of shared pool S1 (no region): -3 (as documented)",
    "measurement: gpa 1 MiB (private; the hypervisor image's host address): -3 (as documented)",
    "measurement: the boot info page (private): -3 (as documented)",
    "measurement: shared gpa with bit 47 set: -3 (as documented)",
    "measurement: range wrapping past 2^64: -3 (as documented)",
    "measurement: straddling shared S1 into private C: -3 (as documented)",
    "measurement: straddling shared S2 into shared S3: -3 (as documented)",
    "measurement: straddling shared S3 into unmapped: -3 (as documented)",
    "measurement: bytes the refused straddling calls wrote: 0 (as documented)",
    "measurement: the last bytes of shared S3: 48 (as documented)",
    "measurement: 4 KiB-aligned shared gpa: 48 (as documented)",
    "measurement: unaligned shared gpa: 48 (as documented)",
    "measurement: bytes differing between the aligned and unaligned copies: 0 (as documented)",
    "memory_convert: direction 0: -2 (as documented)",
    "memory_convert: direction 3: -2 (as documented)",
    "memory_convert: direction u64::MAX: -2 (as documented)",
    "memory_convert: count 0: -2 (as documented)",
    "memory_convert: count 257: -2 (as documented)",
    "memory_convert: count u64::MAX: -2 (as documented)",
    "memory_convert: count 1<<60 (count x 16 wraps to 0): -2 (as documented)",
    "memory_convert: list outside every region: -3 (as documented)",
    "memory_convert: list at 24 MiB (hypervisor host memory, no region): -3 (as documented)",
    "memory_convert: list at the host base of shared pool S1 (no region): -3 (as documented)",
    "memory_convert: list at 1 MiB (private; the hypervisor image's host address): -3 (as documented)",
    "memory_convert: list in the boot info page (private): -3 (as documented)",
    "memory_convert: list with bit 47 set: -3 (as documented)",
    "memory_convert: list wrapping past 2^64: -3 (as documented)",
    "memory_convert: list straddling shared S1 into private C: -3 (as documented)",
    "memory_convert: list straddling shared S2 into shared S3: -3 (as documented)",
    "memory_convert: list straddling shared S3 into unmapped: -3 (as documented)",
    "memory_convert: 256 entries running off the end of shared S3: -3 (as documented)",
    "memory_convert: entry gpa 2 KiB off alignment: -2 (as documented)",
    "memory_convert: entry gpa 1 byte off alignment, to private: -2 (as documented)",
    "memory_convert: entry of 0 pages: -2 (as documented)",
    "memory_convert: entry of u64::MAX pages: -2 (as documented)",
    "memory_convert: entry of 2^52 pages (its length wraps to 0): -2 (as documented)",
    "memory_convert: entry wrapping past 2^64: -2 (as documented)",
    "memory_convert: entry outside every region: -2 (as documented)",
    "memory_convert: entry at 24 MiB (hypervisor host memory, no region): -2 (as documented)",
    "memory_convert: entry at the host base of private pool A (no region): -2 (as documented)",
    "memory_convert: entry in shared S1: -2 (as documented)",
    "memory_convert: entry spanning private slots A and B: -2 (as documented)",
    "memory_convert: entry running off private B into unmapped: -2 (as documented)",
    "memory_convert: entry running off private C into shared S2: -2 (as documented)",
    "memory_convert: entry with bit 47 set: -2 (as documented)",
    "memory_convert: second entry starting inside the first: -2 (as documented)",
    "memory_convert: the same entry twice: -2 (as documented)",
    "memory_convert: overlapping entries, the later one first: -2 (as documented)",
    "memory_convert: an entry inside another: -2 (as documented)",
    "memory_convert: resume beyond the total: -2 (as documented)",
    "memory_convert: resume u64::MAX: -2 (as documented)",
    "memory_convert: the 256th entry the same as the first: -2 (as documented)",
    "memory_convert: a misaligned entry after 255 good ones: -2 (as documented)",
    "memory_convert: a slot-spanning entry after 255 good ones: -2 (as documented)",
    "memory_convert: pages the refused lists converted: 0 (as documented)",
    "memory_convert: gpa 1 MiB (the hypervisor image's host address) to shared: 1 (as documented)",
    "memory_convert: non-zero words of 1 MiB once shared (scrubbed): 0 (as documented)",
    "console_write: from converted memory at 1 MiB: 65 (as documented)",
    "info: into converted memory at 1 MiB: 448 (as documented)",
    "info: bytes of the copy at 1 MiB differing from the boot info page: 0 (as documented)",
    "memory_convert: 1 MiB back to private: 1 (as documented)",
    "console_write: from 1 MiB once private again: -3 (as documented)",
    "memory_convert: non-zero words of 1 MiB once private again: 0 (as documented)",
    "memory_convert: resume equal to the total (nothing left to do): 1 (as documented)",
    "memory_convert: its page after resume equal to the total: -3 (as documented)",
    "memory_convert: resume 1 of 2 pages: 2 (as documented)",
    "memory_convert: the page resume 1 skipped (still private): -3 (as documented)",
    "memory_convert: the page resume 1 converted (shared): 0 (as documented)",
    "memory_convert: a page holding data to shared: 1 (as documented)",
    "memory_convert: non-zero words once shared (scrubbed): 0 (as documented)",
    "memory_convert: the shared page to shared again: 1 (as documented)",
    "memory_convert: words shared to shared changed: 0 (as documented)",
    "memory_convert: the page back to private: 1 (as documented)",
    "memory_convert: non-zero words once private again: 0 (as documented)",
    "memory_convert: a private page holding data to private: 1 (as documented)",
    "memory_convert: words private to private changed: 0 (as documented)",
    "memory_convert: list in converted-to-shared memory: 1 (as documented)",
    "memory_convert: list converting its own page to private: 1 (as documented)",
    "memory_convert: the same list again, its page now private: -3 (as documented)",
    "memory_convert: 256 entries from an unaligned list, to shared: 256 (as documented)",
    "memory_convert: the same 256 entries back to private: 256 (as documented)",
    "memory_convert: 600 pages in 2 contiguous entries, first call: 512 (as documented)",
    "memory_convert: the same, resumed at 512: 600 (as documented)",
    "memory_convert: 600 pages back to private, first call: 512 (as documented)",
    "memory_convert: back to private, resumed at 512: 600 (as documented)",
    "console_write: 4096 bytes from a converted page: 4096 (as documented)",
    "memory_convert: that page to private while it drains: -5 (as documented)",
    "memory_convert: that page to shared while it drains (already shared): 1 (as documented)",
    "memory_convert: that page to private once the console is idle: 1 (as documented)",
    "memory_convert: 8 pages of private slot C to shared: 8 (as documented)",
    "info: into converted memory of slot C: 448 (as documented)",
    "info: straddling converted C memory into private C memory: -3 (as documented)",
    "console_write: straddling converted C memory into private C memory: -3 (as documented)",
    "memory_convert: list straddling converted C memory into private C memory: -3 (as documented)",
    "memory_convert: the 8 pages of slot C back to private: 8 (as documented)",
    "memory_convert: entries ending A and starting B (each in one slot), after a lone one: 3 (as documented)",
    "memory_convert: pages that list converted: 3 (as documented)",
    "storm: answers and reads not as the model says: 0 (as documented)",
    "flood: the digest before: 48 (as documented)",
    "flood: unexpected answers: 0 (as documented)",
    "after the flood: digest bytes differing from the one before: 0 (as documented)",
    "after the flood: info bytes differing from the boot info page: 0 (as documented)",
    "after the flood: its page back to private: 1 (as documented)",
    "after the flood: and to shared again: 1 (as documented)",
    "after the flood: and to private again: 1 (as documented)",
];

/// The derived checks whose answer changes when INFO and MEASUREMENT are denied: the
/// buffers keep their fills (0x5a and 0xa5: the two copies differ in every byte, and
/// the boot info holds no 0x5a byte).
const DENIED_DERIVED: [(&str, &str); 3] = [
    (
        "info: bytes differing between the aligned and unaligned copies",
        "448",
    ),
    (
        "info: bytes of the copy differing from the boot info page",
        "448",
    ),
    (
        "measurement: bytes differing between the aligned and unaligned copies",
        "48",
    ),
];

/// The derived checks that nothing was written or converted: the same answer denied.
const NOTHING_HAPPENED: [&str; 3] = [
    "info: bytes the refused straddling calls wrote",
    "measurement: bytes the refused straddling calls wrote",
    "memory_convert: pages the refused lists converted",
];

/// The last case a run without INFO, MEASUREMENT and MEMORY_CONVERT makes.
const LAST_STATIC_CASE: &str =
    "memory_convert: pages the refused lists converted: 0 (as documented)";

/// The workload's lines, without the console's `[<name>] ` and the workload's
/// `hostile-calls: ` prefixes.
fn workload_lines<'a>(result: &'a RunResult, name: &str) -> Vec<&'a str> {
    let prefix = format!("[{name}] hostile-calls: ");
    result
        .console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The case lines: each ends with its verdict.
fn case_lines<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines
        .iter()
        .copied()
        .filter(|l| l.ends_with(" (as documented)") || l.ends_with(" (WRONG)"))
        .collect()
}

/// The number after `prefix` in the line that starts with it.
fn number_after(lines: &[&str], prefix: &str) -> Option<u64> {
    let rest = lines.iter().find_map(|l| l.strip_prefix(prefix))?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn assert_cases(result: &RunResult, name: &str, expected: &[String]) {
    let context = describe(result);
    let lines = workload_lines(result, name);
    let got = case_lines(&lines);
    let wrong: Vec<&&str> = got.iter().filter(|l| l.ends_with("(WRONG)")).collect();
    assert!(wrong.is_empty(), "WRONG cases: {wrong:#?}\n{context}");
    for case in expected {
        assert!(got.contains(&case.as_str()), "missing {case:?}\n{context}");
    }
    assert_eq!(got, expected, "the case lines, in order\n{context}");
}

/// The run summary counts every call the workload made, which the workload counted
/// itself (its console lines and conversions included).
fn assert_calls_counted(result: &RunResult, name: &str) {
    let context = describe(result);
    let lines = workload_lines(result, name);
    let made = number_after(&lines, "hypercalls made: ");
    let counted = result.summary.as_ref().map(|s| s.hypercalls);
    assert!(made.is_some(), "no call count\n{context}");
    assert_eq!(
        counted, made,
        "summary hypercalls= against the workload's count\n{context}"
    );
}

/// No prepared frame is lost: what launch and faults prepared, less what conversions
/// to shared released (the workload's model of every page it converts counts those),
/// is what is prepared at the end.
fn assert_memory_balances(result: &RunResult, name: &str) -> u64 {
    let context = describe(result);
    let lines = workload_lines(result, name);
    let released = number_after(&lines, "accounting: released=");
    let released = released.unwrap_or_else(|| panic!("no accounting line\n{context}"));
    let counter = |key| {
        memory_counter(&result.console, key)
            .unwrap_or_else(|| panic!("no {key} in the memory line\n{context}"))
    };
    let prepared = counter("prepared");
    assert_eq!(
        counter("launch_prepared") + counter("fault_prepared"),
        prepared + released,
        "launch_prepared + fault_prepared = prepared + released\n{context}"
    );
    prepared
}

fn assert_storm_and_flood(result: &RunResult, name: &str, storm: &str) {
    let context = describe(result);
    let lines = workload_lines(result, name);
    for line in [storm, "flood: 24000 calls in 3000 rounds"] {
        assert!(lines.contains(&line), "missing {line:?}\n{context}");
    }
}

fn all_cases() -> Vec<String> {
    CASES.iter().map(|c| (*c).to_owned()).collect()
}

#[test]
fn hostile_calls_get_exactly_their_documented_answers_and_the_counters_balance() {
    // Exited 0: the status of the workload's EXIT also has bits above 32 set, which the
    // hypervisor must not report.
    let result = run_to_clean_exit("tests/configs/hostile-calls.toml");
    let name = "hostile-calls";
    assert_cases(&result, name, &all_cases());
    let lines = workload_lines(&result, name);
    let total = format!("{} cases, 0 wrong", CASES.len());
    assert!(
        lines.contains(&total.as_str()),
        "missing {total:?}\n{}",
        describe(&result)
    );
    assert_calls_counted(&result, name);
    assert_memory_balances(&result, name);
    // 2048 conversions of 1 to 4 entries; each MEMORY_CONVERT converted exactly the next
    // 512 pages or the rest (the workload checks every answer): 2114 calls.
    assert_storm_and_flood(
        &result,
        name,
        "storm: 2048 conversions, 181306 pages, 2114 memory_convert calls, 128 info calls, 0 pages left touched",
    );
}

#[test]
fn calls_the_configuration_denies_are_denied_whatever_their_arguments() {
    let result = run_to_clean_exit("tests/configs/hostile-calls-denied.toml");
    let name = "hostile-calls-denied";
    let last = CASES.iter().position(|&c| c == LAST_STATIC_CASE);
    let last = last.unwrap_or_else(|| panic!("{LAST_STATIC_CASE:?} is not in CASES"));
    let expected: Vec<String> = CASES[..=last]
        .iter()
        .map(|&line| {
            let (case, _) = line.rsplit_once(": ").unwrap_or((line, ""));
            let denied_call = ["info: ", "measurement: ", "memory_convert: "]
                .iter()
                .any(|call| case.starts_with(call));
            if let Some((_, answer)) = DENIED_DERIVED.iter().find(|(c, _)| *c == case) {
                format!("{case}: {answer} (as documented)")
            } else if denied_call && !NOTHING_HAPPENED.contains(&case) {
                format!("{case}: -4 (as documented)")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_cases(&result, name, &expected);
    let lines = workload_lines(&result, name);
    let context = describe(&result);
    for line in [
        "info, measurement or memory_convert not permitted: scenarios, storm and flood skipped",
        &format!("{} cases, 0 wrong", expected.len()),
    ] {
        assert!(lines.contains(&line), "missing {line:?}\n{context}");
    }
    assert_calls_counted(&result, name);
    assert_memory_balances(&result, name);
}

#[test]
fn hostile_calls_through_the_ghcb_get_the_same_answers_and_leak_no_rmp_entry() {
    let result = run_to_clean_exit("tests/configs/hostile-calls-snp.toml");
    let name = "hostile-calls-snp";
    assert_cases(&result, name, &all_cases());
    assert_calls_counted(&result, name);
    let prepared = assert_memory_balances(&result, name);
    // The storm converts by Page State Change here: one VMGEXIT per merged range of at
    // most 512 pages.
    assert_storm_and_flood(
        &result,
        name,
        "storm: 2048 conversions, 181306 pages, 4194 page state change calls, 128 info calls, 0 pages left touched",
    );
    let context = describe(&result);
    let model = model_line(&result.console, "sev-snp")
        .unwrap_or_else(|| panic!("no model line\n{context}"));
    assert_eq!(model.quarantined, 0, "{context}");
    // Every prepared private frame is assigned in the RMP, and one frame more: the
    // firmware's guest context page. Nothing converted to shared stays assigned.
    assert_eq!(model.assigned_frames, prepared + 1, "{model:?}\n{context}");
}

/// A zero-length CONSOLE_WRITE at the GPA where a private slot ends: no shared region
/// holds the range, so NOT_SHARED. It used to panic the hypervisor: `Memslot::contains`
/// holds the empty range at the slot's end, and `PrivateMemory::is_shared` read the state
/// of the page one past the object's end.
#[test]
fn a_zero_length_buffer_at_the_end_of_a_private_slot_is_not_shared() {
    let result = run_to_clean_exit("tests/configs/hostile-calls-slot-end.toml");
    let name = "hostile-calls-slot-end";
    let expected = [
        "console_write: length 0 at the end of private slot B (nothing follows): -3 (as documented)",
        "console_write: length 0 at the end of private slot A (private B follows): -3 (as documented)",
    ]
    .map(str::to_owned);
    assert_cases(&result, name, &expected);
    assert_calls_counted(&result, name);
}
