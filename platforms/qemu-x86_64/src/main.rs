//! Cloister on QEMU x86-64: boot, check the firmware's RAM against the build-time pool
//! placement, switch to page tables that leave the private pools out, turn SVM on,
//! launch the configured workload and run it to its end. An image built for
//! `backend = "tdx"` stops after the heap is set up instead: see [`tdx_backend`];
//! `"sev"` and `"sev-snp"` run in model mode under QEMU: see [`sev_backend`].
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod board_host;
mod debug_exit;
mod heap;
mod host_tables;
mod memory_check;
mod selftest;
mod sev_backend;
mod tdx_backend;

use alloc::vec::Vec;
use cloister_core::Stop;
use cloister_core::mmu::VendorMmu;
use cloister_core::vm::{RestartMemory, Vm, VmSpec};
use cloister_core::watchdog::WatchdogSetting;
use cloister_privmem::PrivateMemory;
use cloister_svm::sev::ghcb_vcpu::GhcbVcpu;
use cloister_svm::{NptFormat, Svm, SvmMmu, SvmVcpu};
use cloister_x86::{boot, console, cpu, logger, println, set_phase};
use debug_exit::Outcome;
use generated::*;

// Provides mem*, bcmp and rust_eh_personality for the linker.
use cloister_rt as _;

/// A pool placed at build time.
pub struct PoolSpec {
    pub name: &'static str,
    pub kind: cloister_abi::MemoryKind,
    pub base: u64,
    pub size: u64,
}

mod generated {
    #![allow(dead_code)]
    use super::PoolSpec;
    use cloister_abi::MemoryKind;
    use cloister_core::memslot::SlotSpec;
    use cloister_core::vm::Pinning;

    /// The backends a configuration can name (`BACKEND` is the image's); the build
    /// refuses those this board cannot build.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Backend {
        Svm,
        Sev,
        SevSnp,
        Tdx,
    }

    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// The workload's address-space identifier; 0 belongs to the host.
const WORKLOAD_ASID: u32 = 1;

#[unsafe(no_mangle)]
extern "sysv64" fn cloister_main(protocol: u32, info: u32) -> ! {
    // SAFETY: RDTSC only reads the time-stamp counter. Read first: benchmarks measure
    // launch from here.
    let entry_tsc = unsafe { core::arch::x86_64::_rdtsc() };
    console::init(CONSOLE_PORT);
    logger::init(LOG_PORT);
    cpu::init();
    cloister_x86::set_fatal_exit(debug_exit::fatal);
    set_phase("boot");
    let via = if protocol == boot::PROTOCOL_PVH {
        "PVH"
    } else {
        "Multiboot"
    };
    println!(
        "cloister {}: booted via {via} on qemu-x86_64",
        env!("CARGO_PKG_VERSION")
    );
    defmt::info!(
        "cloister {=str} starting (boot protocol {=str})",
        env!("CARGO_PKG_VERSION"),
        via
    );
    defmt::info!("entry tsc={=u64}", entry_tsc);
    selftest::at_boot(SELFTEST);

    // SAFETY: `protocol` and `info` are what the entry code received; nothing has been
    // allocated yet, so the firmware's structures are intact.
    memory_check::check_pools(unsafe { cloister_x86::boot_info::ram_map(protocol, info) });
    // From here on the private pools are out of the hypervisor's address space: before
    // the heap exists and long before launch, the first thing to touch private memory.
    host_tables::switch();
    selftest::after_host_tables(SELFTEST);
    heap::init();
    if BACKEND == Backend::Tdx {
        tdx_backend::stop();
    }
    if matches!(BACKEND, Backend::Sev | Backend::SevSnp) {
        sev_backend::enter_model_mode();
    }

    let svm = Svm::enable().unwrap_or_else(|e| {
        println!("cloister: cannot run workloads on this CPU: {e}");
        debug_exit::exit(Outcome::HypervisorFailed)
    });
    defmt::info!("SVM enabled with nested paging");
    match BACKEND {
        Backend::SevSnp => {
            let (vm, stop) = supervise(&svm, sev_backend::snp_mmu, true);
            let stats = vm.vendor().stats;
            sev_backend::report(
                stats.rmpupdates,
                stats.psmashes,
                stats.launch_pages,
                stats.quarantined,
            );
            finish(&vm, stop)
        }
        Backend::Sev => {
            let (vm, stop) = supervise(&svm, sev_backend::sev_mmu, false);
            sev_backend::report(0, 0, vm.vendor().launch_pages, 0);
            finish(&vm, stop)
        }
        Backend::Svm | Backend::Tdx => {
            let (vm, stop) = supervise(&svm, SvmMmu::default, false);
            finish(&vm, stop)
        }
    }
}

/// Run the workload under the configured crash policy: each instance over a vendor from
/// `vendor`, launched and run until it stops; a stop other than its own EXIT restarts it
/// (a new instance on the kept or fresh private memory) while restarts remain. Returns
/// the last instance and its stop. `ghcb`: calls travel through the GHCB (SEV-SNP).
fn supervise<V: VendorMmu>(
    svm: &Svm,
    mut vendor: impl FnMut() -> V,
    ghcb: bool,
) -> (Vm<NptFormat, V>, Stop) {
    let mut host = board_host::BoardHost;
    if WATCHDOG_MS != 0 {
        start_preemption_tick();
    }
    let mut memory = Vec::new();
    let mut instance = 1;
    loop {
        let (vm, stop) = run(svm, vendor(), memory, instance, ghcb, &mut host);
        let restarts_done = (instance - 1) as u32;
        if matches!(stop, Stop::Exited { .. }) || restarts_done == MAX_RESTARTS {
            return (vm, stop);
        }
        let (kept, memory_name) = if RESTART_KEEPS_MEMORY {
            (RestartMemory::Keep, "kept")
        } else {
            (RestartMemory::Fresh, "fresh")
        };
        print_memory_line(&vm);
        println!(
            "cloister: workload '{}' {stop}; restarting ({} of {MAX_RESTARTS}, memory {memory_name})",
            vm.name(),
            restarts_done + 1,
        );
        let (objects, teardown) = vm.into_restart_memory(kept, &mut host);
        if let Err(e) = teardown {
            println!(
                "cloister: cannot restart: the vendor refused to tear the instance down: {} ({:#x})",
                e.name, e.code
            );
            debug_exit::exit(Outcome::WorkloadStopped);
        }
        memory = objects;
        instance += 1;
    }
}

/// The preemption tick the watchdog counts in: on this board the local APIC timer,
/// whose clock in QEMU is 1 GHz (one count a nanosecond).
fn start_preemption_tick() {
    const COUNTS_PER_MS: u64 = 1_000_000;
    if let Err(e) = cloister_x86::timer::start(WATCHDOG_TICK_MS * COUNTS_PER_MS) {
        println!("cloister: cannot start the watchdog's preemption tick: {e:?}");
        debug_exit::exit(Outcome::HypervisorFailed);
    }
}

/// Create instance `instance` of the workload's VM over `vendor` and `memory` (the
/// last instance's private memory objects, or none for fresh ones), launch it and run it
/// until it stops.
fn run<V: VendorMmu>(
    svm: &Svm,
    vendor: V,
    memory: Vec<PrivateMemory>,
    instance: u64,
    ghcb: bool,
    host: &mut board_host::BoardHost,
) -> (Vm<NptFormat, V>, Stop) {
    let spec = VmSpec {
        name: WORKLOAD_NAME,
        slots: SLOTS,
        allowed_calls: ALLOWED_CALLS,
        pinning: PINNING,
        instance,
    };
    let mut vm = Vm::with_memory(&spec, memory, vendor, host)
        .unwrap_or_else(|(e, _)| panic!("cannot create the VM: {e:?}"));
    if BENCH_HOOKS {
        vm.enable_bench_hooks();
    }
    if WATCHDOG_MS != 0 {
        vm.set_watchdog(WatchdogSetting {
            limit_ms: WATCHDOG_MS,
            tick_ms: WATCHDOG_TICK_MS,
        });
    }

    set_phase("launch");
    let entry = match vm.launch(WORKLOAD_IMAGE, host) {
        Ok(entry) => entry,
        Err(stop) => return (vm, stop),
    };
    defmt::info!(
        "launched '{=str}' (instance {=u64}): entry={=u64:#x}, {=u64} private frames prepared",
        WORKLOAD_NAME,
        instance,
        entry.rip,
        vm.stats().launch_prepared
    );

    let vcpu = SvmVcpu::new(svm, &entry, vm.npt_root(), WORKLOAD_ASID);
    set_phase("run loop");
    let stop = if ghcb {
        vm.run(&mut GhcbVcpu::new(vcpu), host)
    } else {
        vm.run(&mut { vcpu }, host)
    };
    (vm, stop)
}

/// Print the memory counters and the summary line (the last line of every run), and
/// leave QEMU.
fn finish<V: VendorMmu>(vm: &Vm<NptFormat, V>, stop: Stop) -> ! {
    let (name, stats) = (vm.name(), vm.stats());
    defmt::info!("workload stopped after {=u64} exits", stats.exits);
    print_memory_line(vm);
    println!(
        "cloister: workload '{name}' {stop}; exits={} npf={} hypercalls={}",
        stats.exits, stats.npf, stats.hypercalls
    );
    debug_exit::exit(match stop {
        Stop::Exited { status: 0 } => Outcome::WorkloadSucceeded,
        Stop::Exited { .. } => Outcome::WorkloadFailed,
        _ => Outcome::WorkloadStopped,
    })
}

/// The instance's memory counters, one line.
fn print_memory_line<V: VendorMmu>(vm: &Vm<NptFormat, V>) {
    let stats = vm.stats();
    println!(
        "cloister: memory: launch_prepared={} fault_prepared={} refaults={} huge_maps={} prepared={} metadata_bytes={} scrub_ticks={} table_pages={}",
        stats.launch_prepared,
        stats.fault_prepared,
        stats.refaults,
        stats.huge_maps,
        vm.prepared_frames(),
        vm.metadata_bytes(),
        stats.scrub_ticks,
        vm.table_pages()
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if let Some(mut out) = console::emergency() {
        use core::fmt::Write;
        let _ = write!(out, "\ncloister: panic");
        if let Some(location) = info.location() {
            let _ = write!(
                out,
                " at {}:{}:{}",
                location.file(),
                location.line(),
                location.column()
            );
        }
        let _ = writeln!(out, ": {}", info.message());
    }
    debug_exit::fatal(cloister_x86::Failure::Hypervisor)
}
