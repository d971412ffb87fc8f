//! The rules a configuration must satisfy before placement. Every problem is reported
//! (not just the first), each with the key it is about.

use crate::diagnostic::{Diagnostic, KeyPath};
use crate::key_path;
use crate::schema::{Backend, Config, OnCrash, PageSize, PoolKind};
use crate::suggest::nearest;
use cloister_abi::Call;
use cloister_abi::boot::{IDENTITY_MAP_LIMIT, IMAGE_MIN_GPA, MAX_REGIONS, NAME_LEN};
use std::collections::HashMap;

const PAGE: u64 = 4096;
/// Heap that fits in the hypervisor's reserved range beside its image and stacks.
const MAX_HEAP: u64 = 24 << 20;
const HUGE_PAGE: u64 = 2 << 20;
/// The preemption tick of the boards (qemu-x86_64: the local APIC timer); a shorter
/// watchdog could not be honoured.
pub const WATCHDOG_TICK_MS: u64 = 10;
/// An hour: a longer silence is not a watchdog any more.
const WATCHDOG_MAX_MS: u64 = 3_600_000;
/// Restarts a configuration may allow: a workload that crashes more often than this
/// needs fixing, not restarting.
const MAX_RESTARTS: u32 = 100;

/// Boards this build knows, and the backends each can build an image for. An image
/// built for a backend still needs a CPU that has it: the qemu-x86_64 image for
/// "tdx" stops at boot under QEMU's emulation, which has no TDX (docs/config.md).
pub const BOARDS: &[(&str, &[Backend])] = &[(
    "qemu-x86_64",
    &[Backend::Svm, Backend::Sev, Backend::SevSnp, Backend::Tdx],
)];

pub fn validate(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_hypervisor(config, &mut out);
    check_platform(config, &mut out);
    check_pools(config, &mut out);
    check_workload(config, &mut out);
    check_memslots(config, &mut out);
    out
}

fn check_hypervisor(config: &Config, out: &mut Vec<Diagnostic>) {
    let h = &config.hypervisor;
    let Some((_, backends)) = BOARDS.iter().find(|(name, _)| *name == h.board) else {
        let known: Vec<&str> = BOARDS.iter().map(|(name, _)| *name).collect();
        let mut d = Diagnostic::new(
            key_path!["hypervisor", "board"],
            format!("unknown board {:?}", h.board),
        );
        d = match nearest(&h.board, known.iter().copied()) {
            Some(near) => d.hint(format!("did you mean \"{near}\"?")),
            None => d.hint(format!("known boards: {}", known.join(", "))),
        };
        out.push(d);
        return;
    };
    if !backends.contains(&h.backend) {
        let buildable: Vec<&str> = backends.iter().map(|b| b.as_str()).collect();
        out.push(
            Diagnostic::new(
                key_path!["hypervisor", "backend"],
                format!(
                    "board \"{}\" cannot run backend \"{}\" in this build",
                    h.board,
                    h.backend.as_str()
                ),
            )
            .hint(format!(
                "backends this board builds: {}",
                buildable.join(", ")
            )),
        );
    }
    if h.heap_size.0 > MAX_HEAP {
        out.push(
            Diagnostic::new(key_path!["hypervisor", "heap_size"], format!("{} does not fit in the hypervisor's reserved memory", h.heap_size))
                .hint("the image, its stacks and its heap share 32M (HYPERVISOR_RESERVED); at most 24M of heap"),
        );
    } else if h.heap_size.0 < 64 * 1024 || !h.heap_size.0.is_multiple_of(PAGE) {
        out.push(
            Diagnostic::new(
                key_path!["hypervisor", "heap_size"],
                format!("{} is not a multiple of 4K of at least 64K", h.heap_size),
            )
            .hint("the heap holds page tables and VM state; \"1M\" suits small workloads"),
        );
    }
    for (key, port) in [("console_port", h.console_port), ("log_port", h.log_port)] {
        if port.0 > u64::from(u16::MAX) - 7 {
            out.push(Diagnostic::new(
                key_path!["hypervisor", key],
                format!("{port} is not an x86 I/O port base"),
            ));
        }
    }
    if h.console_port == h.log_port {
        out.push(
            Diagnostic::new(
                key_path!["hypervisor", "log_port"],
                format!("{} is also the console port", h.log_port),
            )
            .hint("the defmt log needs its own UART, e.g. 0x2f8 (COM2)"),
        );
    }
}

fn check_platform(config: &Config, out: &mut Vec<Diagnostic>) {
    let ram = &config.platform.ram;
    if ram.is_empty() {
        out.push(Diagnostic::new(
            key_path!["platform", "ram"],
            "no RAM range declared",
        ));
    }
    for (i, r) in ram.iter().enumerate() {
        let key = key_path!["platform", "ram", i];
        if !r.base.0.is_multiple_of(PAGE) || !r.size.0.is_multiple_of(PAGE) || r.size.0 == 0 {
            out.push(Diagnostic::new(
                key.clone(),
                format!(
                    "base {} and size {} must be non-zero multiples of 4K",
                    r.base, r.size
                ),
            ));
        }
        if r.base.0.checked_add(r.size.0).is_none() {
            out.push(Diagnostic::new(
                key.key("size"),
                "range runs past the end of the address space",
            ));
        }
        for (j, other) in ram.iter().enumerate().take(i) {
            if overlaps((r.base.0, r.size.0), (other.base.0, other.size.0)) {
                out.push(Diagnostic::new(
                    key.clone(),
                    format!("overlaps platform.ram[{j}]"),
                ));
            }
        }
    }
}

pub(crate) fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

fn check_pools(config: &Config, out: &mut Vec<Diagnostic>) {
    if config.pools.is_empty() {
        out.push(
            Diagnostic::new(key_path!["pool"], "no pool declared")
                .hint("add a [[pool]] table for the workload's memory"),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, pool) in config.pools.iter().enumerate() {
        let key = key_path!["pool", i];
        if let Some(first) = seen.insert(&pool.name, i) {
            out.push(Diagnostic::new(
                key.key("name"),
                format!("duplicate pool name {:?} (also pool[{first}])", pool.name),
            ));
        }
        let align = match pool.page_size {
            PageSize::Size4K => PAGE,
            PageSize::Size2M => HUGE_PAGE,
        };
        let unit = if align == PAGE {
            "4K"
        } else {
            "2M (page_size = \"2M\")"
        };
        if pool.size.0 == 0 || !pool.size.0.is_multiple_of(align) {
            out.push(Diagnostic::new(
                key.key("size"),
                format!("{} is not a non-zero multiple of {unit}", pool.size),
            ));
        }
        if let Some(base) = pool.base
            && !base.0.is_multiple_of(align)
        {
            out.push(Diagnostic::new(
                key.key("base"),
                format!("{base} is not a multiple of {unit}"),
            ));
        }
    }
}

fn check_workload(config: &Config, out: &mut Vec<Diagnostic>) {
    let w = &config.workload;
    if w.name.is_empty() || w.name.len() > NAME_LEN || w.name.contains(['\'', '\n', '\0']) {
        out.push(Diagnostic::new(
            key_path!["workload", "name"],
            format!(
                "{:?} must be 1 to {NAME_LEN} bytes without quotes, NULs or newlines",
                w.name
            ),
        ));
    }
    match w.vcpus {
        0 => out.push(
            Diagnostic::new(
                key_path!["workload", "vcpus"],
                "0 vCPUs: the workload could never run",
            )
            .hint("set vcpus = 1"),
        ),
        1 => {}
        n => out.push(
            Diagnostic::new(
                key_path!["workload", "vcpus"],
                format!("{n} vCPUs are not supported yet"),
            )
            .hint("Cloister runs one vCPU per workload; set vcpus = 1"),
        ),
    }
    if w.image.trim().is_empty() {
        out.push(
            Diagnostic::new(key_path!["workload", "image"], "empty image")
                .hint("use \"demo\", \"package:NAME/BIN\" or a path to an ELF file"),
        );
    }
    check_crash_policy(config, out);
    if let Some(calls) = &w.hypercalls {
        let known: Vec<&str> = Call::ALL.iter().map(|c| c.name()).collect();
        for (i, name) in calls.iter().enumerate() {
            if Call::from_name(name).is_none() {
                let d = Diagnostic::new(
                    key_path!["workload", "hypercalls", i],
                    format!("unknown hypercall {name:?}"),
                );
                out.push(match nearest(name, known.iter().copied()) {
                    Some(near) => d.hint(format!("did you mean \"{near}\"?")),
                    None => d.hint(format!("hypercalls: {}", known.join(", "))),
                });
            } else if calls[..i].contains(name) {
                out.push(Diagnostic::new(
                    key_path!["workload", "hypercalls", i],
                    format!("{name:?} is listed twice"),
                ));
            }
        }
    }
}

fn check_crash_policy(config: &Config, out: &mut Vec<Diagnostic>) {
    let w = &config.workload;
    let restarts = key_path!["workload", "max_restarts"];
    match (w.on_crash, w.max_restarts) {
        (OnCrash::Halt, 0) => {}
        (OnCrash::Halt, n) => out.push(
            Diagnostic::new(
                restarts,
                format!("{n} restarts allowed, but on_crash = \"halt\" never restarts"),
            )
            .hint("set on_crash = \"restart\", or remove max_restarts"),
        ),
        (OnCrash::Restart, 0) => out.push(
            Diagnostic::new(
                restarts,
                "on_crash = \"restart\" with max_restarts = 0 would never restart",
            )
            .hint("allow at least one restart, or set on_crash = \"halt\""),
        ),
        (OnCrash::Restart, n) if n > MAX_RESTARTS => out.push(Diagnostic::new(
            restarts,
            format!("{n} restarts: at most {MAX_RESTARTS} are allowed"),
        )),
        (OnCrash::Restart, _) => {}
    }
    let backend = config.hypervisor.backend;
    if w.on_crash == OnCrash::Restart && backend != Backend::Svm {
        out.push(
            Diagnostic::new(
                key_path!["workload", "on_crash"],
                format!(
                    "on_crash = \"restart\" is not supported with backend \"{}\" yet: a \
                     restarted confidential guest needs a new launch (context, measurement) \
                     that the backend does not do",
                    backend.as_str()
                ),
            )
            .hint("set on_crash = \"halt\""),
        );
    }
    if w.watchdog_ms != 0 && !(WATCHDOG_TICK_MS..=WATCHDOG_MAX_MS).contains(&w.watchdog_ms) {
        out.push(
            Diagnostic::new(
                key_path!["workload", "watchdog_ms"],
                format!(
                    "{} ms: the watchdog takes 0 (off) or {WATCHDOG_TICK_MS} to \
                     {WATCHDOG_MAX_MS} ms",
                    w.watchdog_ms
                ),
            )
            .hint(format!(
                "the preemption tick is {WATCHDOG_TICK_MS} ms; a shorter limit could not be kept"
            )),
        );
    }
}

fn check_memslots(config: &Config, out: &mut Vec<Diagnostic>) {
    let slots = &config.workload.memory;
    let memory = key_path!["workload", "memory"];
    if slots.is_empty() {
        out.push(
            Diagnostic::new(memory.clone(), "the workload has no memory")
                .hint("add a [[workload.memory]] slot backed by a private pool"),
        );
        return;
    }
    if slots.len() > MAX_REGIONS {
        out.push(Diagnostic::new(
            memory.clone(),
            format!("{} slots; at most {MAX_REGIONS}", slots.len()),
        ));
    }
    for (i, slot) in slots.iter().enumerate() {
        let key = memory.index(i);
        check_memslot(config, i, &key, out);
        for (j, other) in slots.iter().enumerate().take(i) {
            if overlaps((slot.gpa.0, slot.size.0), (other.gpa.0, other.size.0)) {
                out.push(Diagnostic::new(
                    key.key("gpa"),
                    format!("GPA range collides with workload.memory[{j}]"),
                ));
            }
            if other.pool == slot.pool {
                out.push(
                    Diagnostic::new(
                        key.key("pool"),
                        format!("pool {:?} already backs workload.memory[{j}]", slot.pool),
                    )
                    .hint("a pool backs one memslot; declare another pool"),
                );
            }
        }
    }
    let boot_area_private = slots.iter().any(|s| {
        s.gpa.0 == 0
            && s.size.0 >= IMAGE_MIN_GPA
            && config
                .pool(&s.pool)
                .is_some_and(|p| p.kind == PoolKind::Private)
    });
    if !boot_area_private {
        out.push(
            Diagnostic::new(memory, format!("no private slot covers guest-physical [0, {IMAGE_MIN_GPA:#x})"))
                .hint("the boot info, initial page tables and stack live there (docs/abi.md): start a private slot at gpa = 0"),
        );
    }
}

fn check_memslot(config: &Config, i: usize, key: &KeyPath, out: &mut Vec<Diagnostic>) {
    let slot = &config.workload.memory[i];
    if !slot.gpa.0.is_multiple_of(PAGE) {
        out.push(Diagnostic::new(
            key.key("gpa"),
            format!("{} is not a multiple of 4K", slot.gpa),
        ));
    }
    if slot.size.0 == 0 || !slot.size.0.is_multiple_of(PAGE) {
        out.push(Diagnostic::new(
            key.key("size"),
            format!("{} is not a non-zero multiple of 4K", slot.size),
        ));
    }
    if slot
        .gpa
        .0
        .checked_add(slot.size.0)
        .is_none_or(|end| end > IDENTITY_MAP_LIMIT)
    {
        out.push(Diagnostic::new(key.key("size"), "the slot ends beyond guest-physical 512 GiB, which the workload cannot address at boot"));
    }
    let Some(pool) = config.pool(&slot.pool) else {
        let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
        let d = Diagnostic::new(key.key("pool"), format!("no pool named {:?}", slot.pool));
        out.push(match nearest(&slot.pool, names.iter().copied()) {
            Some(near) => d.hint(format!("did you mean \"{near}\"?")),
            None => d.hint(format!("pools: {}", names.join(", "))),
        });
        return;
    };
    if slot.size > pool.size {
        out.push(Diagnostic::new(
            key.key("size"),
            format!(
                "{} is larger than pool {:?} ({})",
                slot.size, pool.name, pool.size
            ),
        ));
    }
    if pool.page_size == PageSize::Size2M
        && (!slot.gpa.0.is_multiple_of(HUGE_PAGE) || !slot.size.0.is_multiple_of(HUGE_PAGE))
    {
        out.push(
            Diagnostic::new(
                key.key("gpa"),
                format!(
                    "pool {:?} prefers 2M pages but the slot is not 2M aligned",
                    pool.name
                ),
            )
            .hint("align gpa and size to 2M, or set the pool's page_size = \"4K\""),
        );
    }
    if let Some(default) = slot.default
        && default != pool.kind
    {
        let (want, have) = match default {
            PoolKind::Private => ("private", "shared"),
            PoolKind::Shared => ("shared", "private"),
        };
        out.push(
            Diagnostic::new(
                key.key("default"),
                format!(
                    "a {want} slot cannot be backed by {have} pool {:?}",
                    pool.name
                ),
            )
            .hint(format!(
                "back it with a {want} pool, or set default = \"{have}\""
            )),
        );
    }
}
