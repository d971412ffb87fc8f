//! `backend = "sev"` and `"sev-snp"` on this board.
//!
//! QEMU emulates no SEV: its CPUs report none in CPUID 0x8000_001F, and there is no PSP.
//! There the workload runs in model mode: a plain SVM guest, with the software model of
//! the PSP firmware, the RMP and the caches (`cloister_svm::sev::platform_model`)
//! plugged into the same vendor hooks real hardware would use. Every nested mapping and
//! every hypervisor write to guest memory is checked against the model's RMP; SEV-SNP
//! calls travel through the GHCB (MSR protocol and GHCB page, Page State Change). The
//! guest's PVALIDATE, which QEMU's CPU lacks, is played by the model.
//!
//! On a CPU that has SEV this board stops: running a real SEV guest needs the PSP found
//! on PCI and an SEV-ES vCPU (an encrypted VMSA), which it does not build yet.

use crate::board_host::BoardHost;
use crate::debug_exit::{self, Outcome};
use crate::{BACKEND, Backend, WORKLOAD_ASID};
use alloc::alloc::{Layout, alloc_zeroed};
use cloister_svm::sev::platform_model::{ModelAccess, ModelPlatform, SevModel};
use cloister_svm::sev::rmp::RmpSize;
use cloister_svm::sev::{SevMmu, SnpMmu};
use cloister_x86::println;
use core::arch::x86_64::__cpuid_count;
use spinning_top::Spinlock;

/// The platform model; `Some` in model mode.
static MODEL: Spinlock<Option<SevModel>> = Spinlock::new(None);

/// ASIDs the model's firmware hands out.
const MODEL_ASIDS: u32 = 16;
/// The guest policy, as QEMU's default: SMT allowed (bit 16), the must-be-one bit 17,
/// ABI version 0.0, debugging off.
const SNP_POLICY: u64 = 0x3_0000;
const SEV_POLICY: u32 = 0;

/// CPUID 0x8000_001F EAX: SEV (bit 1), SEV-SNP (bit 4). QEMU's EPYC model reports SEV
/// here without having it, so the firmware's enable bits in SYSCFG decide as well.
const CPUID_SEV: u32 = 1 << 1;
const CPUID_SEV_SNP: u32 = 1 << 4;
/// SYSCFG (MSR 0xC001_0010): MemEncryptionModEn (bit 23), SecureNestedPagingEn (24).
const SYSCFG: u32 = 0xc001_0010;
const SYSCFG_MEM_ENCRYPT: u64 = 1 << 23;
const SYSCFG_SNP_EN: u64 = 1 << 24;

pub type SnpModelMmu = SnpMmu<ModelPlatform<BoardModel>>;
pub type SevModelMmu = SevMmu<ModelPlatform<BoardModel>>;

/// The board's handle on [`MODEL`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BoardModel;

impl ModelAccess for BoardModel {
    fn with<R>(&self, f: impl FnOnce(&mut SevModel) -> R) -> R {
        let mut model = MODEL.lock();
        f(model.get_or_insert_with(|| SevModel::initialised(MODEL_ASIDS)))
    }

    fn read_frame(&self, pa: u64, out: &mut [u8; 4096]) {
        BoardHost::frame(pa, |frame| out.copy_from_slice(frame));
    }
}

/// Say what this image's SEV backend runs on, and stop if the CPU has it enabled: the
/// real path cannot run yet.
pub fn enter_model_mode() {
    let cpu = __cpuid_count(0x8000_001f, 0).eax;
    // SAFETY: SYSCFG exists on every AMD64 CPU (QEMU's included) and reading it has no
    // side effect.
    let syscfg = unsafe { x86::msr::rdmsr(SYSCFG) };
    let (cpuid_bit, enabled_bit) = if BACKEND == Backend::SevSnp {
        (CPUID_SEV_SNP, SYSCFG_SNP_EN)
    } else {
        (CPUID_SEV, SYSCFG_MEM_ENCRYPT)
    };
    defmt::info!(
        "CPUID 0x8000001F eax={=u32:#x}, SYSCFG={=u64:#x}",
        cpu,
        syscfg
    );
    let name = backend_name();
    if cpu & cpuid_bit != 0 && syscfg & enabled_bit != 0 {
        println!(
            "cloister: backend \"{name}\" cannot run here yet: this CPU has it, but this \
             board cannot reach the PSP or build SEV-ES vCPUs"
        );
        debug_exit::exit(Outcome::BackendUnavailable);
    }
    let mut model = if BACKEND == Backend::SevSnp {
        SevModel::initialised(MODEL_ASIDS)
    } else {
        SevModel::legacy(MODEL_ASIDS)
    };
    model.guest_validates = BACKEND == Backend::SevSnp;
    model.firmware.stop_logging();
    *MODEL.lock() = Some(model);
    println!(
        "cloister: backend \"{name}\" in MODEL MODE: QEMU has no {name}; the PSP firmware, \
         the RMP and the caches are software models in the hypervisor (nothing here is \
         hardware-tested)"
    );
}

fn backend_name() -> &'static str {
    if BACKEND == Backend::SevSnp {
        "sev-snp"
    } else {
        "sev"
    }
}

/// The SEV-SNP hooks over the model, the guest launched on the workload's ASID.
pub fn snp_mmu() -> SnpModelMmu {
    SnpMmu::launch(
        ModelPlatform(BoardModel),
        WORKLOAD_ASID,
        context_page(),
        SNP_POLICY,
    )
    .unwrap_or_else(|e| failed("SNP launch start", e.name, e.code))
}

/// The legacy SEV hooks over the model.
pub fn sev_mmu() -> SevModelMmu {
    SevMmu::launch(ModelPlatform(BoardModel), WORKLOAD_ASID, SEV_POLICY)
        .unwrap_or_else(|e| failed("SEV launch start", e.name, e.code))
}

fn failed(what: &str, name: &str, code: u64) -> ! {
    println!("cloister: {what} refused by the firmware model: {name} ({code:#x})");
    debug_exit::exit(Outcome::HypervisorFailed)
}

/// A 4 KiB heap page for the firmware's guest context, never 2 MiB aligned (SNP-08:
/// a 2 MiB-aligned firmware page can collide with a 2 MiB RMP entry). The page is the
/// firmware's for the life of the guest, so it is never freed.
fn context_page() -> u64 {
    let layout = Layout::from_size_align(4096, 4096).expect("page layout");
    loop {
        // SAFETY: the layout has a non-zero size.
        let page = unsafe { alloc_zeroed(layout) } as u64;
        if page == 0 {
            failed("allocating the SNP context page", "out of memory", 0);
        }
        // An aligned page stays allocated, so the next one differs.
        if !page.is_multiple_of(2 << 20) {
            return page;
        }
    }
}

/// Model mode: a hypervisor write to `pa` goes through the RMP check first. On
/// hardware a write to a guest-assigned page is an RMP #PF in the host, a crash; the
/// model stops the machine the same way, saying why.
pub fn check_host_write(pa: u64) {
    let fault = match MODEL.lock().as_ref() {
        Some(model) => model
            .firmware
            .rmp
            .check_host_write(pa, RmpSize::Size4K)
            .fault(),
        None => return,
    };
    if let Some(fault) = fault {
        println!("cloister: hypervisor RMP fault (model): {fault}");
        debug_exit::exit(Outcome::HypervisorFailed);
    }
}

/// One line of the model's counters, after the workload stopped.
pub fn report(rmpupdates: u64, psmashes: u64, launch_pages: u64, quarantined: u64) {
    let (assigned, checks) = MODEL.lock().as_ref().map_or((0, 0), |model| {
        let rmp = &model.firmware.rmp;
        (rmp.assigned_frames().count(), rmp.counts().pvalidates)
    });
    println!(
        "cloister: {} model: rmpupdates={rmpupdates} psmashes={psmashes} \
         launch_pages={launch_pages} quarantined={quarantined} assigned_frames={assigned} \
         pvalidates={checks}",
        backend_name()
    );
}
