//! Configuration parsing and validation through `cloister_config::parse` (what
//! `load` does after reading the file: TOML syntax, schema, every rule, placement),
//! then `place` and `generate` on what it accepts. Two ways in, chosen by the first
//! byte:
//!
//! - anything but 0: the bytes are the file (lossily UTF-8), so the shipped
//!   configurations make good seeds and the dictionary (`fuzz/dict/config.dict`) the
//!   TOML keys;
//! - 0: the rest picks the values of a configuration with the right shape (tables,
//!   keys, pools, memslots), so the fuzzer spends its time on the rules and on
//!   placement rather than on TOML syntax.
//!
//! A refused configuration must say why: at least one problem, each naming the file
//! and carrying a message. An accepted one must keep every promise of docs/config.md:
//! every pool placed once, inside declared RAM below 4 GiB, above the hypervisor's
//! reserved range, aligned to its page size (2 MiB when the build placed it), none
//! overlapping; every memslot aligned, inside its pool, backed by a pool of its own,
//! not overlapping another, a private slot covering the boot area; the hypervisor's and
//! the workload's settings within their rules.

use arbitrary::{Result, Unstructured};
use cloister_abi::Call;
use cloister_abi::boot::{IDENTITY_MAP_LIMIT, IMAGE_MIN_GPA, MAX_REGIONS, NAME_LEN};
use cloister_config::{
    BOARDS, Config, HYPERVISOR_RESERVED, Layout, PageSize, PoolKind, generate, place,
};
use std::fmt::Write;
use std::path::Path;

/// The name problems are reported against.
const FILE: &str = "fuzz.toml";
/// Pools end at or below this (the qemu-x86_64 board's identity map of the low 4 GiB).
const POOL_LIMIT: u64 = 1 << 32;
const PAGE: u64 = 4096;
const HUGE: u64 = 2 << 20;
/// The heap the hypervisor's reserved range has room for, and the least it needs.
const HEAP_RANGE: std::ops::RangeInclusive<u64> = (64 << 10)..=(24 << 20);

pub fn run(data: &[u8]) {
    let text = match data.split_first() {
        Some((0, rest)) => match structured(&mut Unstructured::new(rest)) {
            Ok(text) => text,
            Err(_) => return,
        },
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    check(&text);
}

/// Parse `text` and check what comes out.
pub fn check(text: &str) {
    match cloister_config::parse(Path::new(FILE), text.to_owned()) {
        Ok(config) => check_accepted(&config, text),
        Err(error) => {
            assert!(
                !error.problems.is_empty(),
                "refused without a problem:\n{text}"
            );
            for problem in &error.problems {
                let first = problem.lines().next().unwrap_or_default();
                assert!(
                    first.starts_with(FILE) && first.contains(": "),
                    "a problem that does not name the file: {problem:?}\n{text}"
                );
                assert!(
                    !first.trim_end().ends_with(':'),
                    "a problem without a message: {problem:?}\n{text}"
                );
            }
            let report = error.to_string();
            assert!(report.contains("problem"), "report: {report}");
        }
    }
}

fn check_accepted(config: &Config, text: &str) {
    let layout = place(config).unwrap_or_else(|problems| {
        panic!("parse accepted a configuration place refuses: {problems:?}\n{text}")
    });
    check_layout(config, &layout, text);
    check_memslots(config, text);
    check_settings(config, text);
    let code = generate(config, &layout, Path::new("workload.elf"));
    for pool in &layout.pools {
        assert!(
            code.contains(&format!("{:#x}", pool.base)),
            "generated code lacks pool {:?}:\n{code}",
            pool.name
        );
    }
}

fn check_layout(config: &Config, layout: &Layout, text: &str) {
    assert_eq!(
        layout.pools.len(),
        config.pools.len(),
        "every pool is placed once\n{text}"
    );
    for pool in &config.pools {
        let placed = layout
            .pool(&pool.name)
            .unwrap_or_else(|| panic!("pool {:?} not placed\n{text}", pool.name));
        assert_eq!(
            (placed.kind, placed.size),
            (pool.kind, pool.size.0),
            "{text}"
        );
        let align = match pool.page_size {
            PageSize::Size4K => PAGE,
            PageSize::Size2M => HUGE,
        };
        match pool.base {
            Some(base) => assert_eq!(placed.base, base.0, "a fixed pool moved\n{text}"),
            None => assert_eq!(placed.base % HUGE, 0, "placed pools are 2M aligned\n{text}"),
        }
        assert!(
            placed.size > 0
                && placed.base.is_multiple_of(align)
                && placed.size.is_multiple_of(align),
            "pool {placed:?} is not aligned to its page size\n{text}"
        );
        let end = placed
            .base
            .checked_add(placed.size)
            .expect("pool end wraps");
        assert!(
            end <= POOL_LIMIT,
            "pool {placed:?} ends above 4 GiB\n{text}"
        );
        assert!(
            placed.base >= HYPERVISOR_RESERVED.end,
            "pool {placed:?} overlaps the hypervisor's range\n{text}"
        );
        assert!(
            config
                .platform
                .ram
                .iter()
                .any(|r| placed.base >= r.base.0 && end <= r.base.0.saturating_add(r.size.0)),
            "pool {placed:?} is not inside one platform.ram range\n{text}"
        );
    }
    for pair in layout.pools.windows(2) {
        assert!(
            pair[0].base + pair[0].size <= pair[1].base,
            "pools overlap or are out of order: {pair:?}\n{text}"
        );
    }
}

fn check_memslots(config: &Config, text: &str) {
    let slots = &config.workload.memory;
    assert!(
        !slots.is_empty() && slots.len() <= MAX_REGIONS,
        "{} memslots\n{text}",
        slots.len()
    );
    for (i, slot) in slots.iter().enumerate() {
        let (gpa, size) = (slot.gpa.0, slot.size.0);
        assert!(
            gpa % PAGE == 0 && size % PAGE == 0 && size > 0,
            "memslot {i} is not 4K aligned\n{text}"
        );
        assert!(
            gpa.checked_add(size)
                .is_some_and(|end| end <= IDENTITY_MAP_LIMIT),
            "memslot {i} ends beyond 512 GiB\n{text}"
        );
        let pool = config
            .pool(&slot.pool)
            .unwrap_or_else(|| panic!("memslot {i} names no pool\n{text}"));
        assert!(size <= pool.size.0, "memslot {i} outgrows its pool\n{text}");
        if pool.page_size == PageSize::Size2M {
            assert!(
                gpa % HUGE == 0 && size % HUGE == 0,
                "memslot {i} of a 2M pool is not 2M aligned\n{text}"
            );
        }
        if let Some(default) = slot.default {
            assert_eq!(default, pool.kind, "memslot {i}'s attribute\n{text}");
        }
        for (j, other) in slots.iter().enumerate().take(i) {
            assert_ne!(
                other.pool, slot.pool,
                "memslots {j} and {i} share a pool\n{text}"
            );
            let other_end = other.gpa.0 + other.size.0;
            assert!(
                gpa >= other_end || gpa + size <= other.gpa.0,
                "memslots {j} and {i} overlap\n{text}"
            );
        }
    }
    assert!(
        slots.iter().any(|s| s.gpa.0 == 0
            && s.size.0 >= IMAGE_MIN_GPA
            && config
                .pool(&s.pool)
                .is_some_and(|p| p.kind == PoolKind::Private)),
        "no private memslot covers the boot area\n{text}"
    );
}

fn check_settings(config: &Config, text: &str) {
    let h = &config.hypervisor;
    assert!(
        BOARDS
            .iter()
            .any(|(board, backends)| *board == h.board && backends.contains(&h.backend)),
        "board {:?} with backend {:?}\n{text}",
        h.board,
        h.backend
    );
    assert!(
        HEAP_RANGE.contains(&h.heap_size.0) && h.heap_size.0.is_multiple_of(PAGE),
        "heap {}\n{text}",
        h.heap_size.0
    );
    for port in [h.console_port.0, h.log_port.0] {
        assert!(port <= u64::from(u16::MAX) - 7, "port {port:#x}\n{text}");
    }
    assert_ne!(h.console_port, h.log_port, "one UART for both\n{text}");
    let w = &config.workload;
    assert!(
        !w.name.is_empty() && w.name.len() <= NAME_LEN && !w.name.contains(['\'', '\n', '\0']),
        "workload name {:?}\n{text}",
        w.name
    );
    assert_eq!(w.vcpus, 1, "{text}");
    assert!(!w.image.trim().is_empty(), "empty image\n{text}");
    let all = Call::ALL.iter().fold(0, |mask, c| mask | c.mask());
    assert_eq!(w.allowed_calls() & !all, 0, "{text}");
    if let Some(calls) = &w.hypercalls {
        for (i, name) in calls.iter().enumerate() {
            assert!(
                Call::from_name(name).is_some(),
                "hypercall {name:?}\n{text}"
            );
            assert!(!calls[..i].contains(name), "{name:?} twice\n{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configurations of the right shape
// ---------------------------------------------------------------------------------------

/// A TOML string literal of `text` (basic string, escaped).
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One of `names` (the first `valid` of which are what a valid file holds) seven times
/// in eight, else a string of a few fuzzer-chosen characters.
fn name(u: &mut Unstructured<'_>, names: &[&str]) -> Result<String> {
    if u.ratio(7, 8)? {
        return Ok(u.choose(names)?.to_string());
    }
    let n = u.int_in_range(0..=40usize)?;
    (0..n).map(|_| u.arbitrary::<char>()).collect()
}

/// Sizes a valid file uses, as the file writes them.
const SIZES: [&str; 8] = ["2M", "4M", "8M", "16M", "64M", "128M", "256M", "1G"];
/// Sizes at or past the rules' edges.
const ODD_SIZES: [&str; 14] = [
    "4K", "8K", "3M", "24M", "25M", "0", "0M", "2MiB", "1.5M", "-1M", "4096", "4G", "8G", "1T",
];

/// A size as the file may write it: mostly `valid`, sometimes an odd one or anything.
fn size(u: &mut Unstructured<'_>, valid: &str) -> Result<String> {
    Ok(match u.int_in_range(0..=15u8)? {
        0..=9 => quoted(valid),
        10 => quoted(u.choose(&SIZES)?),
        11 => quoted(u.choose(&ODD_SIZES)?),
        12 => (u.int_in_range(0..=64u64)? * HUGE).to_string(),
        13 => (u.int_in_range(0..=4096u64)? * PAGE).to_string(),
        14 => u.arbitrary::<i64>()?.to_string(),
        _ => quoted(&format!("{:#x}", u.arbitrary::<u64>()?)),
    })
}

/// An address as the file may write it: mostly `valid`, sometimes one at an edge or
/// anything.
fn address(u: &mut Unstructured<'_>, valid: u64) -> Result<String> {
    Ok(match u.int_in_range(0..=15u8)? {
        0..=9 => format!("{valid:#x}"),
        10..=11 => format!(
            "{:#x}",
            u.choose(&[
                0u64,
                0x1000,
                0x20_0000,
                0x1ff_f000,
                0x200_0000,
                0x201_0000,
                0x1000_0000,
                0x4000_0000,
                0xffe0_0000,
                0xffff_f000,
                0x1_0000_0000,
                0x7f_ffe0_0000,
                0x80_0000_0000,
            ])?
        ),
        12 => format!("{:#x}", u.int_in_range(0..=2048u64)? * HUGE),
        13 => (u.int_in_range(0..=1u64 << 20)? * PAGE).to_string(),
        14 => u.arbitrary::<i64>()?.to_string(),
        _ => quoted(&format!("{:#x}", u.arbitrary::<u64>()?)),
    })
}

/// `key = value` on its own line, one time in two.
fn optional(
    out: &mut String,
    u: &mut Unstructured<'_>,
    key: &str,
    value: impl FnOnce(&mut Unstructured<'_>) -> Result<String>,
) -> Result<()> {
    if u.arbitrary()? {
        let value = value(u)?;
        let _ = writeln!(out, "{key} = {value}");
    }
    Ok(())
}

/// A configuration file of the right shape whose values are mostly those of a valid
/// one (a private pool behind GPA 0, the others shared, each slot as large as its
/// pool), each now and then replaced by one at an edge of its rule or by anything.
fn structured(u: &mut Unstructured<'_>) -> Result<String> {
    let mut out = String::from("[hypervisor]\n");
    let _ = writeln!(out, "board = {}", quoted(&name(u, &["qemu-x86_64"])?));
    let backend = name(u, &["svm", "sev", "sev-snp", "tdx"])?;
    let _ = writeln!(out, "backend = {}", quoted(&backend));
    optional(&mut out, u, "log_level", |u| {
        Ok(quoted(&name(
            u,
            &["error", "warn", "info", "debug", "trace"],
        )?))
    })?;
    optional(&mut out, u, "heap_size", |u| size(u, "1M"))?;
    optional(&mut out, u, "console_port", |u| {
        Ok(format!(
            "{:#x}",
            u.choose(&[0x3f8u32, 0x3e8, 0xfff8, 0xfff9, 0x2f8])?
        ))
    })?;
    optional(&mut out, u, "log_port", |u| {
        Ok(format!("{:#x}", u.choose(&[0x2f8u32, 0x2e8, 0, 0x3f8])?))
    })?;
    out.push_str("\n[platform]\nram = [");
    let ram_ranges = u.int_in_range(1..=3)?;
    for (i, (base, ram_size)) in [(0, "512M"), (0x1_0000_0000, "1G"), (0x4000_0000, "1G")]
        .into_iter()
        .take(ram_ranges)
        .enumerate()
    {
        if i > 0 {
            out.push_str(", ");
        }
        let base = address(u, base)?;
        let _ = write!(out, "{{ base = {base}, size = {} }}", size(u, ram_size)?);
    }
    out.push_str("]\n");
    let pools = u.int_in_range(1..=4usize)?;
    let mut pool_sizes = Vec::new();
    for i in 0..pools {
        let pool_size = *u.choose(&SIZES[..6])?;
        pool_sizes.push(pool_size);
        let pool_name = name(u, &[&format!("pool{i}"), "main", "shared"])?;
        let _ = writeln!(out, "\n[[pool]]\nname = {}", quoted(&pool_name));
        let kind = if i == 0 { "private" } else { "shared" };
        let _ = writeln!(
            out,
            "kind = {}",
            quoted(&name(u, &[kind, "private", "shared"])?)
        );
        let _ = writeln!(out, "size = {}", size(u, pool_size)?);
        if u.ratio(1, 4)? {
            let base = address(u, 0x1000_0000 + i as u64 * 0x1000_0000)?;
            let _ = writeln!(out, "base = {base}");
        }
        optional(&mut out, u, "page_size", |u| {
            Ok(quoted(&name(u, &["4K", "2M"])?))
        })?;
    }
    out.push_str("\n[workload]\n");
    let _ = writeln!(out, "name = {}", quoted(&name(u, &["demo", "w"])?));
    let _ = writeln!(
        out,
        "image = {}",
        quoted(&name(
            u,
            &["demo", "package:cloister-demo/cloister-demo", "w.elf"]
        )?)
    );
    optional(&mut out, u, "vcpus", |u| {
        Ok(u.int_in_range(1..=2u8)?.to_string())
    })?;
    optional(&mut out, u, "pinning", |u| {
        Ok(quoted(&name(u, &["demand", "upfront"])?))
    })?;
    optional(&mut out, u, "hypercalls", |u| {
        let n = u.int_in_range(0..=4usize)?;
        let all = Call::ALL.map(|c| c.name());
        let names = (0..n)
            .map(|_| Ok(quoted(&name(u, &all)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(format!("[{}]", names.join(", ")))
    })?;
    if u.ratio(1, 4)? {
        let restart = u.arbitrary()?;
        let policy = if restart { "restart" } else { "halt" };
        let _ = writeln!(out, "on_crash = {}", quoted(&name(u, &[policy])?));
        let restarts = if restart {
            u.int_in_range(0..=101u32)?
        } else {
            0
        };
        let _ = writeln!(out, "max_restarts = {restarts}");
        optional(&mut out, u, "restart_memory", |u| {
            Ok(quoted(&name(u, &["keep", "fresh"])?))
        })?;
    }
    optional(&mut out, u, "watchdog_ms", |u| {
        Ok(u.choose(&[0u64, 5, 10, 1000, 3_600_000, 3_600_001])?
            .to_string())
    })?;
    for (i, pool_size) in pool_sizes.iter().enumerate() {
        if i > 0 && u.ratio(1, 8)? {
            continue;
        }
        out.push_str("\n[[workload.memory]]\n");
        let gpa = if i == 0 { 0 } else { 0x4000_0000 * i as u64 };
        let _ = writeln!(out, "gpa = {}", address(u, gpa)?);
        let _ = writeln!(out, "size = {}", size(u, pool_size)?);
        let pool = name(u, &[&format!("pool{i}"), "pool0", "main"])?;
        let _ = writeln!(out, "pool = {}", quoted(&pool));
        optional(&mut out, u, "default", |u| {
            Ok(quoted(&name(u, &["private", "shared"])?))
        })?;
    }
    Ok(out)
}
