//! A VM of core with the SEV-SNP (or legacy SEV) hooks over the platform model.

use super::host::SevHost;
use super::probe::Probe;
use cloister_abi::MemoryKind;
use cloister_core::Exit;
use cloister_core::hypercall::Request;
use cloister_core::memslot::SlotSpec;
use cloister_core::mmu::{PageSize, VendorMmu};
use cloister_core::vcpu::{EntryState, Regs, Vcpu};
use cloister_core::vm::{Pinning, Vm, VmSpec};
use cloister_core::{Access, Stop};
use cloister_privmem::{FrameHooks, PrivMemError, PrivateMemory, Unmapper};
use cloister_svm::NptFormat;
use cloister_svm::sev::firmware::{SevFirmware, SevFirmwareModel};
use cloister_svm::sev::platform_model::{ModelAccess, ModelPlatform, SevModel};
use cloister_svm::sev::rmp::RmpModel;
use cloister_svm::sev::rmp_record::RmpRecord;
use cloister_svm::sev::{SevMmu, SnpMmu};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

pub const PAGE: u64 = 4096;
pub const MIB: u64 = 1 << 20;
pub const HUGE: u64 = 2 * MIB;
/// The private pool: guest-physical 0 up is backed from here (2 MiB aligned).
pub const POOL: u64 = 0x1_0000_0000;
pub const MAX_ASID: u32 = 16;
pub const ASID: u32 = 5;
/// The SNP guest context page: a hypervisor page, not 2 MiB aligned (SNP-08).
pub const GCTX: u64 = 0x8000_3000;
/// Linux's default SNP policy (SMT allowed, bit 17 set).
pub const POLICY: u64 = 0x30000;
/// Where the one-page image is loaded and starts.
pub const IMAGE_GPA: u64 = 0x20_0000;

pub type Shared = Rc<RefCell<SevModel>>;
pub type Snp<A = Shared> = SnpMmu<ModelPlatform<A>>;
pub type Sev<A = Shared> = SevMmu<ModelPlatform<A>>;

/// The frame backing private `gpa` (the pool maps guest-physical 0 up one to one).
pub const fn frame(gpa: u64) -> u64 {
    POOL + gpa
}

/// A one-page image: a PT_LOAD of `data` at [`IMAGE_GPA`], entry there.
pub fn image(data: &[u8]) -> Vec<u8> {
    const PHDR: usize = 56;
    let mut b = vec![0u8; 64 + PHDR];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little endian
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    b[24..32].copy_from_slice(&IMAGE_GPA.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b[ph + 8..ph + 16].copy_from_slice(&((64 + PHDR) as u64).to_le_bytes());
    b[ph + 16..ph + 24].copy_from_slice(&IMAGE_GPA.to_le_bytes());
    b[ph + 24..ph + 32].copy_from_slice(&IMAGE_GPA.to_le_bytes());
    b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b[ph + 40..ph + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// The workload's one vCPU: each run returns the next scripted exit, HLT when none is
/// left.
#[derive(Default)]
pub struct ScriptVcpu {
    regs: Regs,
    exits: VecDeque<Exit>,
}

impl Vcpu for ScriptVcpu {
    fn run(&mut self) -> Exit {
        self.exits.pop_front().unwrap_or(Exit::Hlt)
    }
    fn regs(&self) -> &Regs {
        &self.regs
    }
    fn regs_mut(&mut self) -> &mut Regs {
        &mut self.regs
    }
    fn inject_exception(&mut self, vector: u8, _: Option<u32>) {
        panic!("exception {vector} injected");
    }
    fn hypercall(&self) -> Request {
        Request {
            number: self.regs.rax,
            args: [self.regs.rbx, self.regs.rcx, self.regs.rdx, self.regs.rsi],
        }
    }
    fn complete_hypercall(&mut self, value: u64) {
        self.regs.rax = value;
    }
}

/// The VM's shape.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Bytes of private memory at guest-physical 0.
    pub size: u64,
    /// The pool prefers 2 MiB mappings.
    pub huge: bool,
    pub pinning: Pinning,
    /// The CPU keeps caches coherent across keys (SME_COHERENT).
    pub coherent: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            size: 8 * MIB,
            huge: false,
            pinning: Pinning::Demand,
            coherent: false,
        }
    }
}

impl Config {
    pub fn huge() -> Self {
        Self {
            huge: true,
            ..Self::default()
        }
    }

    pub fn slots(&self) -> [SlotSpec; 1] {
        [SlotSpec {
            gpa: 0,
            size: self.size,
            kind: MemoryKind::Private,
            host_base: POOL,
            huge: self.huge,
        }]
    }
}

pub fn spec<'a>(slots: &'a [SlotSpec], pinning: Pinning, instance: u64) -> VmSpec<'a> {
    VmSpec {
        name: "sev",
        slots,
        allowed_calls: !0,
        pinning,
        instance,
    }
}

/// An SNP platform after SNP_INIT and INIT, as the board brings it up.
pub fn snp_model(coherent: bool) -> Shared {
    let mut model = SevModel::initialised(MAX_ASID);
    model.coherent = coherent;
    Rc::new(RefCell::new(model))
}

/// A legacy SEV platform: INIT, WBINVD, DF_FLUSH, and no SNP_INIT (with SNP
/// initialized, the firmware takes LAUNCH_UPDATE_DATA only on Firmware pages).
pub fn sev_model(coherent: bool) -> Shared {
    let mut firmware = SevFirmwareModel::new(MAX_ASID);
    firmware.init().unwrap();
    firmware.wbinvd();
    firmware.df_flush().unwrap();
    Rc::new(RefCell::new(SevModel {
        firmware,
        coherent,
        guest_validates: false,
    }))
}

pub struct Rig<V: VendorMmu> {
    pub vm: Vm<NptFormat, V>,
    pub host: SevHost,
    pub model: Shared,
    pub vcpu: ScriptVcpu,
    pub config: Config,
}

impl<A: ModelAccess> Rig<Snp<A>> {
    /// An SNP guest started on [`ASID`] with [`GCTX`] (LAUNCH_START done, nothing
    /// populated), reaching the model through `access`.
    pub fn snp_with(config: Config, model: Shared, access: A) -> Self {
        let vendor = SnpMmu::launch(ModelPlatform(access), ASID, GCTX, POLICY).expect("SNP start");
        Self::build(config, model, vendor)
    }

    /// The RMP entries the hooks recorded as 2 MiB (for attaching another instance).
    /// The RMP entries the instance made, for the next instance to attach with.
    pub fn rmp_entries(&self) -> RmpRecord {
        self.vm.vendor().entries().clone()
    }
}

impl Rig<Snp> {
    pub fn snp(config: Config) -> Self {
        let model = snp_model(config.coherent);
        Self::snp_with(config, model.clone(), model)
    }

    /// An SNP guest launched with the one-page image.
    pub fn snp_launched(config: Config) -> Self {
        let mut rig = Self::snp(config);
        rig.launch().expect("launch");
        rig
    }
}

impl Rig<Snp<Probe>> {
    pub fn snp_probed(config: Config) -> (Self, Probe) {
        let model = snp_model(config.coherent);
        let probe = Probe::new(model.clone());
        (Self::snp_with(config, model, probe.clone()), probe)
    }
}

impl<A: ModelAccess> Rig<Sev<A>> {
    /// A legacy SEV guest: LAUNCH_START and ACTIVATE on [`ASID`].
    pub fn sev_with(config: Config, model: Shared, access: A) -> Self {
        let vendor = SevMmu::launch(ModelPlatform(access), ASID, 0).expect("SEV start");
        Self::build(config, model, vendor)
    }
}

impl Rig<Sev> {
    pub fn sev(config: Config) -> Self {
        let model = sev_model(config.coherent);
        Self::sev_with(config, model.clone(), model)
    }
}

impl Rig<Sev<Probe>> {
    pub fn sev_probed(config: Config) -> (Self, Probe) {
        let model = sev_model(config.coherent);
        let probe = Probe::new(model.clone());
        (Self::sev_with(config, model, probe.clone()), probe)
    }
}

impl<V: VendorMmu> Rig<V> {
    pub fn build(config: Config, model: Shared, vendor: V) -> Self {
        let mut host = SevHost::new(model.clone());
        let slots = config.slots();
        let vm = Vm::new(&spec(&slots, config.pinning, 1), vendor, &mut host).expect("VM");
        Self {
            vm,
            host,
            model,
            vcpu: ScriptVcpu::default(),
            config,
        }
    }

    pub fn launch(&mut self) -> Result<EntryState, Stop> {
        self.vm.launch(&image(b"\xf4 cloister"), &mut self.host)
    }

    /// Run the workload to the exit `exit` and handle it.
    pub fn exit(&mut self, exit: Exit) -> Option<Stop> {
        self.vcpu.exits.push_back(exit);
        self.vm.step(&mut self.vcpu, &mut self.host)
    }

    /// The workload writes private `gpa` for the first time since it was mapped: a
    /// not-present nested page fault.
    pub fn touch(&mut self, gpa: u64) -> Option<Stop> {
        self.exit(Exit::NestedPageFault {
            gpa,
            access: Access::Write,
            present: false,
        })
    }

    pub fn rmp<R>(&self, f: impl FnOnce(&mut RmpModel) -> R) -> R {
        f(&mut self.model.borrow_mut().firmware.rmp)
    }

    pub fn fw<R>(&self, f: impl FnOnce(&mut SevFirmwareModel) -> R) -> R {
        f(&mut self.model.borrow_mut().firmware)
    }

    /// Every private leaf as (gpa, size, frame).
    pub fn leaves(&mut self) -> Vec<(u64, PageSize, u64)> {
        self.vm.private_leaves(&mut self.host)
    }

    /// The private leaf covering `gpa`, if one does.
    pub fn leaf_of(&mut self, gpa: u64) -> Option<(u64, PageSize, u64)> {
        self.leaves()
            .into_iter()
            .find(|&(at, size, _)| at <= gpa && gpa < at + size.bytes())
    }

    /// Take the vendor out of the VM, leaving `stand_in` (core's VM keeps its vendor
    /// until dropped, and `Vm::into_memory` drops it).
    pub fn take_vendor(&mut self, stand_in: V) -> V {
        core::mem::replace(self.vm.vendor_mut(), stand_in)
    }

    /// Tear the instance down: every mapping goes, the private memory objects stay.
    pub fn into_memory(self) -> (Vec<PrivateMemory>, SevHost, Shared) {
        let Self {
            vm,
            mut host,
            model,
            ..
        } = self;
        let (memory, teardown) = vm.into_memory(&mut host);
        assert_eq!(teardown, Ok(()));
        (memory, host, model)
    }
}

/// What `PrivateMemory::destroy` needs, from a vendor and the host, the way core's own
/// frame operations do it (`core/src/frame_ops.rs`): scrub through the host, prepare
/// and invalidate through the vendor. Nothing is mapped any more after
/// `Vm::into_memory`, so unmapping has nothing to do.
pub struct Teardown<'a, V: VendorMmu> {
    pub vendor: &'a mut V,
    pub host: &'a mut SevHost,
    /// Frames the vendor quarantined.
    pub quarantined: Vec<u64>,
}

impl<V: VendorMmu> Unmapper for Teardown<'_, V> {
    fn unmap(&mut self, _offset: u64, _len: u64) -> Result<(), PrivMemError> {
        Ok(())
    }
}

impl<V: VendorMmu> FrameHooks for Teardown<'_, V> {
    fn scrub(&mut self, pa: u64, frames: u64) {
        use cloister_core::host::Host;
        for i in 0..frames {
            self.host.with_frame(pa + i * PAGE, |f| f.fill(0));
        }
    }

    fn prepare(&mut self, offset: u64, pa: u64, frames: u64) -> Result<(), PrivMemError> {
        self.vendor
            .prepare(offset, pa, frames)
            .map_err(|e| PrivMemError::Vendor { code: e.code })
    }

    fn invalidate(&mut self, pa: u64, frames: u64, quarantine: &mut dyn FnMut(u64)) {
        let quarantined = &mut self.quarantined;
        self.vendor.invalidate(pa, frames, &mut |frame| {
            quarantined.push(frame);
            quarantine(frame);
        });
    }
}

/// Destroy `memory` with `vendor`'s hooks; returns the frames released and those
/// quarantined.
pub fn destroy<V: VendorMmu>(
    memory: Vec<PrivateMemory>,
    vendor: &mut V,
    host: &mut SevHost,
) -> (u64, Vec<u64>) {
    let mut ops = Teardown {
        vendor,
        host,
        quarantined: Vec::new(),
    };
    let mut released = 0;
    for object in memory {
        released += object.destroy(&mut ops).expect("destroy");
    }
    (released, ops.quarantined)
}
