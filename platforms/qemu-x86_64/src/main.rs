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

use cloister_core::Stop;
use cloister_core::mmu::VendorMmu;
use cloister_core::vm::{Vm, VmSpec};
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
            let (vm, stop) = run(&svm, sev_backend::snp_mmu(), true);
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
            let (vm, stop) = run(&svm, sev_backend::sev_mmu(), false);
            sev_backend::report(0, 0, vm.vendor().launch_pages, 0);
            finish(&vm, stop)
        }
        Backend::Svm | Backend::Tdx => {
            let (vm, stop) = run(&svm, SvmMmu::default(), false);
            finish(&vm, stop)
        }
    }
}

/// Create the workload's VM over `vendor`, launch it and run it until it stops. `ghcb`:
/// calls travel through the GHCB (SEV-SNP).
fn run<V: VendorMmu>(svm: &Svm, vendor: V, ghcb: bool) -> (Vm<NptFormat, V>, Stop) {
    let mut host = board_host::BoardHost;
    let spec = VmSpec {
        name: WORKLOAD_NAME,
        slots: SLOTS,
        allowed_calls: ALLOWED_CALLS,
        pinning: PINNING,
        instance: 1,
    };
    let mut vm =
        Vm::new(&spec, vendor, &mut host).unwrap_or_else(|e| panic!("cannot create the VM: {e:?}"));
    if BENCH_HOOKS {
        vm.enable_bench_hooks();
    }

    set_phase("launch");
    let entry = match vm.launch(WORKLOAD_IMAGE, &mut host) {
        Ok(entry) => entry,
        Err(stop) => return (vm, stop),
    };
    defmt::info!(
        "launched '{=str}': entry={=u64:#x}, {=u64} private frames prepared",
        WORKLOAD_NAME,
        entry.rip,
        vm.stats().launch_prepared
    );

    let vcpu = SvmVcpu::new(svm, &entry, vm.npt_root(), WORKLOAD_ASID);
    set_phase("run loop");
    let stop = if ghcb {
        vm.run(&mut GhcbVcpu::new(vcpu), &mut host)
    } else {
        vm.run(&mut { vcpu }, &mut host)
    };
    (vm, stop)
}

/// Print the memory counters and the summary line (the last line of every run), and
/// leave QEMU.
fn finish<V: VendorMmu>(vm: &Vm<NptFormat, V>, stop: Stop) -> ! {
    let (name, stats) = (vm.name(), vm.stats());
    defmt::info!("workload stopped after {=u64} exits", stats.exits);
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
