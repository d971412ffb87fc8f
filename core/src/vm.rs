//! One workload's VM: its memory, its second-level table, and the exit loop.

use crate::exit::{Access, Exit};
use crate::frame_ops::{FrameOps, SlotOps};
use crate::guest_tables::GuestTables;
use crate::host::Host;
use crate::measure::LaunchMeasurement;
use crate::memslot::{Backing, MAX_SLOTS, Memslot, SlotSpec};
use crate::mmu::{MmuError, PageSize, PteFormat, Scope, VendorError, VendorMmu};
use crate::stop::Stop;
use crate::vcpu::{Vcpu, vector};
use crate::watchdog::{Watchdog, WatchdogSetting};
use crate::{cpuid, hypercall};
use alloc::vec::Vec;
use cloister_abi::MemoryKind;
use cloister_abi::boot::NAME_LEN;
use cloister_abi::hypercall::CONSOLE_DRAIN_PER_EXIT;
use cloister_privmem::{PageState, PrivMemError, PrivateMemory, VmId};

/// Guest-physical address bits the second-level table translates.
const GPA_BITS: u32 = 48;
const PAGE: u64 = PageSize::Size4K.bytes();
const HUGE: u64 = PageSize::Size2M.bytes();

/// When private pages are prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// At the first touch (the point of Cloister): launch cost independent of size.
    Demand,
    /// All at launch: the baseline demand pinning is measured against.
    Upfront,
}

/// What a restarted instance's private memory is ([`Vm::into_restart_memory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartMemory {
    /// The same objects and their private contents; pages converted to shared go back
    /// to private, as at launch.
    Keep,
    /// Every prepared frame given back (scrubbed before any reuse): the next instance
    /// gets fresh objects.
    Fresh,
}

/// What the board tells core about the workload's VM.
pub struct VmSpec<'a> {
    pub name: &'a str,
    pub slots: &'a [SlotSpec],
    /// Bit i set: hypercall i is permitted.
    pub allowed_calls: u64,
    pub pinning: Pinning,
    /// This VM instance; a restart gets a new one.
    pub instance: u64,
}

/// Counters reported in the run summary and the memory line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub exits: u64,
    pub npf: u64,
    pub hypercalls: u64,
    pub io: u64,
    /// Private frames prepared before the first instruction (image, boot info, page
    /// tables; every private frame with upfront pinning).
    pub launch_prepared: u64,
    /// Private frames prepared at faults (first touches).
    pub fault_prepared: u64,
    /// Faults that mapped a private frame prepared earlier (before a zap or a restart,
    /// or up front), without preparing it again.
    pub refaults: u64,
    /// 2 MiB leaves installed.
    pub huge_maps: u64,
    /// Leaves removed by zaps.
    pub zapped: u64,
    /// Host ticks spent scrubbing frames (benchmarks subtract it from fault costs).
    pub scrub_ticks: u64,
    /// Faults retried in the hypervisor after contention (a frozen entry, a busy
    /// external table).
    pub fault_retries: u64,
}

pub struct Vm<F: PteFormat, V: VendorMmu> {
    pub(crate) name: heapless::String<NAME_LEN>,
    pub(crate) slots: heapless::Vec<Memslot, MAX_SLOTS>,
    tables: GuestTables<F>,
    vendor: V,
    /// Set when a mapping could not be removed: the VM stops at the next check.
    failure: Option<Stop>,
    /// Frames a fault prepared whose mapping then failed (contention): the retry
    /// finds them prepared, and must count them as first touches, not refaults.
    prepared_unmapped: u64,
    id: VmId,
    pinning: Pinning,
    pub(crate) allowed_calls: u64,
    pub(crate) stats: Stats,
    pub(crate) console_at_line_start: bool,
    pub(crate) measurement: LaunchMeasurement,
    /// Guest-physical ranges the hypervisor still reads after the call that named them.
    pub(crate) host_refs: HostRefs,
    pub(crate) console_pending: Option<hypercall::console::PendingWrite>,
    /// Answer the benchmark-only calls (`cloister_abi::hypercall::bench`).
    pub(crate) bench_hooks: bool,
    watchdog: Option<Watchdog>,
}

/// Shared ranges the hypervisor holds on to across exits (a console write still
/// draining). Converting such a range to private would let the hypervisor read private
/// memory, so it is refused with BUSY until the reference is dropped.
#[derive(Default)]
pub(crate) struct HostRefs {
    ranges: heapless::Vec<(u64, u64), 4>,
}

impl HostRefs {
    pub fn hold(&mut self, gpa: u64, len: u64) -> bool {
        self.ranges.push((gpa, len)).is_ok()
    }

    pub fn drop_ref(&mut self, gpa: u64, len: u64) {
        self.ranges.retain(|&r| r != (gpa, len));
    }

    pub fn overlaps(&self, gpa: u64, len: u64) -> bool {
        let end = gpa.saturating_add(len);
        self.ranges
            .iter()
            .any(|&(g, l)| g < end && gpa < g.saturating_add(l))
    }
}

/// A page backed and mapped by [`Vm::fault_in`].
pub(crate) struct Populated {
    /// The host frame of the faulting 4 KiB page.
    pub pa: u64,
    /// Private frames prepared for this fault (0 if they were prepared before).
    pub prepared: u64,
}

/// Why a GPA could not be backed.
#[derive(Debug)]
pub(crate) enum FaultError {
    Outside,
    Private(PrivMemError),
    Mmu(MmuError),
    /// A private access to shared memory (`private`), or a shared access to private
    /// memory.
    Mismatch {
        private: bool,
    },
    /// The vendor's ownership check refused the private leaf (the SEV-SNP model's RMP).
    Ownership(VendorError),
}

impl FaultError {
    pub(crate) fn into_stop(self, gpa: u64, access: Access, rip: u64) -> Stop {
        match self {
            Self::Outside => Stop::OutsideMemory { gpa, access, rip },
            Self::Private(error) => Stop::PrivateMemory { gpa, access, error },
            Self::Mmu(error) => Stop::Mmu { error, gpa },
            Self::Mismatch { private } => Stop::KindMismatch {
                gpa,
                access,
                private,
                rip,
            },
            Self::Ownership(error) => Stop::OwnershipFault { gpa, error, rip },
        }
    }
}

/// Which alias of a GPA an access used. Only vendors with a shared GPA bit tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent {
    Any,
    Private,
    Shared,
}

/// How a stop names an ownership fault the hardware reported (SEV-SNP: an RMP #NPF).
pub const HARDWARE_OWNERSHIP_FAULT: &str = "ownership fault reported by the hardware";

/// Local retries of a fault that met contention before the VM stops.
const FAULT_RETRIES: u32 = 16;

/// The vendor's refusal recorded in `failure`, if that is what it holds (teardown
/// reports only those).
fn external_refusal(failure: Option<Stop>) -> Result<(), VendorError> {
    match failure {
        Some(Stop::Mmu {
            error: MmuError::External(e),
            ..
        }) => Err(e),
        _ => Ok(()),
    }
}

fn is_contention(error: MmuError) -> bool {
    match error {
        MmuError::Frozen => true,
        MmuError::External(e) => e.busy,
        _ => false,
    }
}

/// Why a conversion was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertError {
    /// The range is not inside one private memory slot.
    NotConvertible,
    /// The hypervisor still holds a reference into the range (retry later).
    Busy,
    /// The private memory object refused (misaligned range, ...).
    Private(PrivMemError),
}

/// Why a VM could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    Mmu(MmuError),
    /// The private memory objects given do not match the private slots (count, pool
    /// range) or are still bound to another instance.
    MemoryMismatch,
}

impl<F: PteFormat, V: VendorMmu> Vm<F, V> {
    /// A VM with `spec`'s memslots over fresh private memory objects.
    pub fn new(spec: &VmSpec<'_>, vendor: V, host: &mut impl Host) -> Result<Self, CreateError> {
        Self::with_memory(spec, Vec::new(), vendor, host).map_err(|(e, _)| e)
    }

    /// A VM bound to existing private memory objects, one per private slot in slot
    /// order (what [`Vm::into_memory`] returned): nothing is prepared again. Objects
    /// that do not fit the slots come back with the error, so none is lost.
    pub fn with_memory(
        spec: &VmSpec<'_>,
        memory: Vec<PrivateMemory>,
        vendor: V,
        host: &mut impl Host,
    ) -> Result<Self, (CreateError, Vec<PrivateMemory>)> {
        let private: Vec<&SlotSpec> = spec
            .slots
            .iter()
            .take(MAX_SLOTS)
            .filter(|s| s.kind == cloister_abi::MemoryKind::Private)
            .collect();
        let fits = memory.is_empty()
            || (memory.len() == private.len()
                && memory.iter().zip(&private).all(|(m, s)| {
                    m.base() == s.host_base && m.size() == s.size && m.bound_to().is_none()
                }));
        if !fits {
            return Err((CreateError::MemoryMismatch, memory));
        }
        let tables = match GuestTables::new::<V>(host) {
            Ok(tables) => tables,
            Err(e) => return Err((CreateError::Mmu(e), memory)),
        };
        let id = VmId(spec.instance);
        let mut memory = memory.into_iter();
        let mut slots = heapless::Vec::new();
        for slot_spec in spec.slots.iter().take(MAX_SLOTS) {
            let reused = if slot_spec.kind == cloister_abi::MemoryKind::Private {
                memory.next()
            } else {
                None
            };
            let mut slot = Memslot::new(slot_spec, reused);
            if let Backing::Private(object) = &mut slot.backing {
                // Checked above: every object is unbound.
                let _ = object.bind(id);
            }
            let _ = slots.push(slot);
        }
        let mut name = heapless::String::new();
        for c in spec.name.chars() {
            if name.push(c).is_err() {
                break;
            }
        }
        Ok(Self {
            name,
            slots,
            tables,
            vendor,
            failure: None,
            prepared_unmapped: 0,
            id,
            pinning: spec.pinning,
            allowed_calls: spec.allowed_calls,
            stats: Stats::default(),
            console_at_line_start: true,
            measurement: LaunchMeasurement::new(spec),
            host_refs: HostRefs::default(),
            console_pending: None,
            bench_hooks: false,
            watchdog: None,
        })
    }

    /// Tear the instance down, keeping its private memory: every mapping is zapped, each
    /// object unbound (prepared frames stay prepared for the next instance) and every
    /// second-level table page freed.
    ///
    /// With an external table (TDX), a mapping the vendor refuses to remove keeps its
    /// object bound (no later instance can take it) and the error comes back with the
    /// objects; external table pages the vendor does not give back are never reused.
    pub fn into_memory(
        mut self,
        host: &mut impl Host,
    ) -> (Vec<PrivateMemory>, Result<(), VendorError>) {
        let mut objects = Vec::new();
        let id = self.id;
        // What stopped the VM is reported elsewhere; teardown reports its own refusals.
        self.failure = None;
        for slot in self.slots.iter_mut() {
            let gpa = slot.gpa;
            if let Backing::Private(object) = &mut slot.backing {
                let mut ops = SlotOps::new(
                    &mut self.tables,
                    &mut *host,
                    &mut self.vendor,
                    &mut self.stats,
                    &mut self.failure,
                    gpa,
                );
                // Bound at creation; only this instance can have unbound it. A refused
                // unmap is recorded in `failure`.
                let _ = object.release(id, &mut ops);
            }
        }
        // Shared leaves are all that is left; then the tables themselves go.
        self.zap(0, u64::MAX, Scope::Both, host);
        let refused = external_refusal(self.failure);
        let retired = self.tables.destroy(host, &mut self.vendor);
        for slot in self.slots {
            if let Backing::Private(object) = slot.backing {
                objects.push(object);
            }
        }
        (objects, refused.and(retired))
    }

    /// Tear a crashed instance down for a restart: the private memory objects the next
    /// instance binds (none with [`RestartMemory::Fresh`]: it creates its own), and
    /// whether the vendor refused a removal (see [`Vm::into_memory`]). Whatever the
    /// instance still held (a console write in progress) is dropped with it.
    pub fn into_restart_memory(
        mut self,
        memory: RestartMemory,
        host: &mut impl Host,
    ) -> (Vec<PrivateMemory>, Result<(), VendorError>) {
        self.console_pending = None;
        self.host_refs = HostRefs::default();
        let private: heapless::Vec<(u64, u64), MAX_SLOTS> = self
            .slots
            .iter()
            .filter(|s| matches!(s.backing, Backing::Private(_)))
            .map(|s| (s.gpa, s.size))
            .collect();
        for (gpa, size) in private {
            // Whole slots of this instance's own objects: neither can be refused, and
            // a vendor refusal to unmap is recorded in `failure`.
            let _ = match memory {
                RestartMemory::Keep => self.convert(gpa, size, MemoryKind::Private, host),
                RestartMemory::Fresh => self
                    .punch_hole(gpa, size, host)
                    .map_err(ConvertError::Private),
            };
        }
        let unmap_refused = external_refusal(self.failure.take());
        let (objects, refused) = self.into_memory(host);
        let refused = unmap_refused.and(refused);
        match memory {
            RestartMemory::Keep => (objects, refused),
            RestartMemory::Fresh => (Vec::new(), refused),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Physical address of the second-level root the vCPU must use (the private mirror
    /// when the vendor keeps an external table).
    pub fn npt_root(&self) -> u64 {
        self.tables.private_root()
    }

    /// The direct table for shared GPAs, for vendors with a shared GPA bit.
    pub fn shared_root(&self) -> Option<u64> {
        self.tables.shared_root()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The SHA-384 launch measurement (zero until launch finished).
    pub fn measurement(&self) -> &[u8; crate::measure::DIGEST_SIZE] {
        self.measurement.digest()
    }

    /// Private frames prepared now, over all private memory objects.
    pub fn prepared_frames(&self) -> u64 {
        self.private_objects()
            .map(PrivateMemory::prepared_frames)
            .sum()
    }

    /// Answer the benchmark-only calls; only for images built for `cargo xtask bench`.
    /// Stop the workload as [`Stop::Unresponsive`] once it has made no hypercall for
    /// `setting.limit_ms`, counted in the board's preemption ticks (interrupt exits).
    pub fn set_watchdog(&mut self, setting: WatchdogSetting) {
        self.watchdog = Some(Watchdog::new(setting));
    }

    pub fn enable_bench_hooks(&mut self) {
        self.bench_hooks = true;
    }

    /// Second-level table pages held (external table pages included).
    pub fn table_pages(&self) -> u64 {
        self.tables.table_pages()
    }

    /// Bytes of per-page private memory metadata.
    pub fn metadata_bytes(&self) -> usize {
        self.private_objects()
            .map(PrivateMemory::metadata_bytes)
            .sum()
    }

    fn private_objects(&self) -> impl Iterator<Item = &PrivateMemory> {
        self.slots.iter().filter_map(|s| match &s.backing {
            Backing::Private(object) => Some(object),
            Backing::Shared { .. } => None,
        })
    }

    /// Run the workload until it stops.
    pub fn run(&mut self, vcpu: &mut impl Vcpu, host: &mut impl Host) -> Stop {
        loop {
            if let Some(stop) = self.step(vcpu, host) {
                return stop;
            }
        }
    }

    /// Run the workload to its next exit and handle it; `Some` when it stopped.
    #[inline]
    pub fn step(&mut self, vcpu: &mut impl Vcpu, host: &mut impl Host) -> Option<Stop> {
        let exit = vcpu.run();
        self.stats.exits += 1;
        let mut stop = self.handle(exit, vcpu, host);
        // Only an external table refuses a removal.
        if V::SHARED_GPA_BIT != 0 && stop.is_none() {
            stop = self.failure.take();
        }
        if let Some(stop) = stop {
            // Whatever the workload wrote is shown, even when it stopped mid-write.
            hypercall::console::drain(self, host, u64::MAX);
            return Some(stop);
        }
        if self.console_pending.is_some() {
            hypercall::console::drain(self, host, CONSOLE_DRAIN_PER_EXIT);
        }
        None
    }

    fn handle(&mut self, exit: Exit, vcpu: &mut impl Vcpu, host: &mut impl Host) -> Option<Stop> {
        let rip = vcpu.regs().rip;
        match exit {
            Exit::NestedPageFault {
                gpa,
                access,
                present,
            } => {
                self.stats.npf += 1;
                if present {
                    // Everything is mapped with full rights, so this is a bug, not a
                    // workload choice: stop rather than spin on the same fault.
                    return Some(Stop::Unsupported {
                        what: "permission fault on a mapped page",
                        rip,
                    });
                }
                let (gpa, intent) = self.intent(gpa);
                self.fault(gpa, intent, host)
                    .err()
                    .map(|e| e.into_stop(gpa, access, rip))
            }
            Exit::UnacceptedAccess { gpa } => Some(Stop::Unaccepted { gpa, rip }),
            Exit::OwnershipFault {
                gpa,
                size_mismatch: true,
                ..
            } => self
                .split_ownership(gpa, host)
                .err()
                .map(|error| Stop::OwnershipFault { gpa, error, rip }),
            Exit::OwnershipFault { gpa, code, .. } => Some(Stop::OwnershipFault {
                gpa,
                error: VendorError::failed(code, HARDWARE_OWNERSHIP_FAULT),
                rip,
            }),
            Exit::PageRequest { gpa } => {
                self.stats.hypercalls += 1;
                hypercall::page_request::serve(self, gpa, vcpu, host)
            }
            Exit::TerminationRequest { reason } => Some(Stop::TerminationRequest { reason }),
            Exit::Hypercall => {
                self.stats.hypercalls += 1;
                let request = vcpu.hypercall();
                match hypercall::dispatch(self, request, host) {
                    hypercall::Outcome::Return(value) => {
                        vcpu.complete_hypercall(value);
                        None
                    }
                    hypercall::Outcome::Stop(stop) => Some(stop),
                }
            }
            Exit::ConvertRequest {
                gpa,
                len,
                to_private,
            } => {
                self.stats.hypercalls += 1;
                let reply = hypercall::convert::request(self, gpa, len, to_private, host);
                vcpu.complete_convert(reply);
                None
            }
            Exit::Io { string: true, .. } => Some(Stop::Unsupported {
                what: "string port I/O",
                rip,
            }),
            Exit::Io {
                size,
                write,
                next_rip,
                ..
            } => {
                // No device is attached to any port: reads float high, writes vanish.
                self.stats.io += 1;
                let regs = vcpu.regs_mut();
                if !write {
                    regs.rax = match size {
                        4 => 0xffff_ffff,
                        2 => regs.rax | 0xffff,
                        _ => regs.rax | 0xff,
                    };
                }
                regs.rip = next_rip;
                None
            }
            Exit::Hlt => Some(Stop::Halted { rip }),
            Exit::Shutdown => Some(Stop::TripleFault { rip }),
            Exit::Cpuid { insn_len } => {
                let regs = vcpu.regs_mut();
                let (leaf, subleaf) = (regs.rax as u32, regs.rcx as u32);
                let out = cpuid::filter(leaf, subleaf, host.cpuid(leaf, subleaf));
                regs.rax = out.eax.into();
                regs.rbx = out.ebx.into();
                regs.rcx = out.ecx.into();
                regs.rdx = out.edx.into();
                regs.rip = regs.rip.wrapping_add(insn_len);
                None
            }
            Exit::Msr { .. } => {
                // No MSR is emulated: the architectural answer to an unknown MSR is #GP.
                vcpu.inject_exception(vector::GP, Some(0));
                None
            }
            Exit::Interrupt => {
                let hypercalls = self.stats.hypercalls;
                let dog = self.watchdog.as_mut()?;
                dog.tick(hypercalls).then(|| Stop::Unresponsive {
                    limit_ms: dog.limit_ms(),
                    rip,
                })
            }
            Exit::Nmi => None,
            Exit::VmrunFailed { code } => Some(Stop::VmrunFailed { code }),
            Exit::Unknown { code, info1, info2 } => Some(Stop::UnknownExit {
                code,
                info1,
                info2,
                rip,
            }),
        }
    }

    /// Pre-fault: back and map the private 4 KiB page at `gpa` without running the
    /// workload (the launch path loads and measures the image through this). Returns the
    /// frame.
    pub fn prefault(&mut self, gpa: u64, host: &mut impl Host) -> Result<u64, Stop> {
        let populated = self
            .fault_in(gpa, host)
            .map_err(|e| e.into_stop(gpa, Access::Write, 0))?;
        self.stats.launch_prepared += populated.prepared;
        Ok(populated.pa)
    }

    /// The GPA a fault names without its shared bit, and what the access asked for.
    fn intent(&self, gpa: u64) -> (u64, Intent) {
        match V::SHARED_GPA_BIT {
            0 => (gpa, Intent::Any),
            bit if gpa & bit != 0 => (gpa & !bit, Intent::Shared),
            _ => (gpa, Intent::Private),
        }
    }

    /// Handle a not-present fault at `gpa`. Contention (a frozen entry, a busy external
    /// table) is retried here, a bounded number of times, rather than by re-entering the
    /// workload: a TD re-entered without progress trips the TDX module's zero-step
    /// mitigation, which makes the contention worse.
    #[inline]
    fn fault(&mut self, gpa: u64, intent: Intent, host: &mut impl Host) -> Result<(), FaultError> {
        let mut attempt = 0;
        loop {
            let result = self.back_and_map(gpa, intent, host);
            // Only an external table makes contention.
            if V::SHARED_GPA_BIT == 0 {
                return match result {
                    Ok(populated) => {
                        self.stats.fault_prepared += populated.prepared;
                        Ok(())
                    }
                    Err(FaultError::Mmu(MmuError::AlreadyMapped { .. })) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            match result {
                Ok(populated) => {
                    self.stats.fault_prepared += populated.prepared;
                    return Ok(());
                }
                // A spurious fault: the page is mapped (nothing to do but resume).
                Err(FaultError::Mmu(MmuError::AlreadyMapped { .. })) => return Ok(()),
                Err(FaultError::Mmu(e)) if is_contention(e) && attempt < FAULT_RETRIES => {
                    attempt += 1;
                    self.stats.fault_retries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The host frame backing the private 4 KiB page at `gpa`, mapping it if it is not
    /// mapped.
    pub(crate) fn fault_in(
        &mut self,
        gpa: u64,
        host: &mut impl Host,
    ) -> Result<Populated, FaultError> {
        if gpa >> GPA_BITS == 0
            && let Some(mapping) = self.tables.lookup(host, gpa, true)
        {
            return Ok(Populated {
                pa: mapping.pa & !(PAGE - 1),
                prepared: 0,
            });
        }
        let intent = match V::SHARED_GPA_BIT {
            0 => Intent::Any,
            _ => Intent::Private,
        };
        self.back_and_map(gpa, intent, host)
    }

    /// Back and map the 4 KiB page at `gpa`, which is not mapped (a not-present nested
    /// fault says so; other callers look it up first). Private
    /// pages come from the slot's private memory object (prepared on first touch,
    /// the same frame after a zap); shared memory is mapped one-to-one. 2 MiB leaves
    /// are used where the slot prefers them, the block lies inside the slot and, for
    /// private memory, the object's block is uniformly free or prepared. An access whose
    /// intent (private or shared GPA) does not match the page maps nothing.
    #[inline]
    fn back_and_map(
        &mut self,
        gpa: u64,
        intent: Intent,
        host: &mut impl Host,
    ) -> Result<Populated, FaultError> {
        // The 4-level table translates 48 bits; a wider GPA would alias a low mapping.
        if gpa >> GPA_BITS != 0 || gpa & V::SHARED_GPA_BIT != 0 {
            return Err(FaultError::Outside);
        }
        let page = gpa & !(PAGE - 1);
        let slot = self.slots.iter_mut().find(|s| s.contains(page, PAGE));
        let slot = slot.ok_or(FaultError::Outside)?;
        let block = page & !(HUGE - 1);
        let private_slot = matches!(slot.backing, Backing::Private(_));
        // Which table a leaf goes in, and whether the access used the right alias, only
        // matter with split tables; plain SVM skips the lookup on its fault path.
        let private_page = match (&slot.backing, intent) {
            (_, Intent::Any) => private_slot,
            (Backing::Private(object), _) => !object.is_shared(page - slot.gpa, PAGE),
            (Backing::Shared { .. }, _) => false,
        };
        match intent {
            Intent::Private if !private_page => return Err(FaultError::Mismatch { private: true }),
            Intent::Shared if private_page => return Err(FaultError::Mismatch { private: false }),
            _ => {}
        }
        // Only slots that can take 2 MiB leaves pay for the vacancy walk.
        let huge_candidate = slot.huge || !private_slot;
        let huge_fits = huge_candidate
            && slot.contains(block, HUGE)
            && (block - slot.gpa).is_multiple_of(HUGE)
            && self
                .tables
                .is_vacant(host, block, PageSize::Size2M, private_page);
        // Frames prepared with the one mapped, beyond those it covers.
        let mut also_prepared = 0;
        let (map_gpa, pa, size, pinned, fresh) = match &mut slot.backing {
            Backing::Private(object) => {
                let mut ops = FrameOps {
                    host: &mut *host,
                    vendor: &mut self.vendor,
                    slot_gpa: slot.gpa,
                    scrub_ticks: &mut self.stats.scrub_ticks,
                };
                // Split tables keep private leaves at 4 KiB, as KVM's TDX does: launch
                // adds pages 4 KiB at a time, and the workload accepts what is mapped.
                // Elsewhere the vendor may cap a block's leaf at its ownership entry
                // (SEV-SNP: the RMP entry size).
                let huge = if slot.huge
                    && huge_fits
                    && V::SHARED_GPA_BIT == 0
                    && ops
                        .vendor
                        .max_private_leaf(object.base() + (block - slot.gpa))
                        == PageSize::Size2M
                {
                    object
                        .get_huge(self.id, block - slot.gpa, &mut ops)
                        .map_err(FaultError::Private)?
                } else {
                    None
                };
                match huge {
                    Some(frame) if ops.vendor.max_private_leaf(frame.pa) == PageSize::Size2M => {
                        (block, frame.pa, PageSize::Size2M, true, frame.fresh)
                    }
                    // The vendor could not give the block one ownership entry after all
                    // (SEV-SNP: the 2 MiB RMPUPDATE failed): map the page at 4 KiB.
                    Some(frame) => {
                        if frame.fresh {
                            also_prepared = HUGE / PAGE - 1;
                        }
                        let pa = frame.pa + (page - block);
                        (page, pa, PageSize::Size4K, true, frame.fresh)
                    }
                    None => match object.get_pfn(self.id, page - slot.gpa, &mut ops) {
                        Ok(frame) => (page, frame.pa, PageSize::Size4K, true, frame.fresh),
                        // Converted to shared: the same frame, mapped as shared memory.
                        Err(PrivMemError::NotPrivate { .. }) => {
                            let pa = object
                                .shared_frame(self.id, page - slot.gpa)
                                .map_err(FaultError::Private)?;
                            (page, pa, PageSize::Size4K, false, false)
                        }
                        Err(error) => return Err(FaultError::Private(error)),
                    },
                }
            }
            Backing::Shared { host_base } => {
                let huge_pa = *host_base + block.wrapping_sub(slot.gpa);
                if huge_fits && huge_pa.is_multiple_of(HUGE) {
                    (block, huge_pa, PageSize::Size2M, false, false)
                } else {
                    (
                        page,
                        *host_base + (page - slot.gpa),
                        PageSize::Size4K,
                        false,
                        false,
                    )
                }
            }
        };
        if pinned {
            self.vendor
                .check_private_leaf(map_gpa, size, pa)
                .map_err(FaultError::Ownership)?;
        }
        // A failed map leaves a prepared frame prepared: its state lives in the object.
        if let Err(e) = self
            .tables
            .map(host, &mut self.vendor, map_gpa, pa, size, pinned)
        {
            if V::SHARED_GPA_BIT != 0 && fresh {
                self.prepared_unmapped += size.bytes() / PAGE;
            }
            return Err(FaultError::Mmu(e));
        }
        let carried = if V::SHARED_GPA_BIT != 0 {
            core::mem::take(&mut self.prepared_unmapped)
        } else {
            0
        };
        if pinned && !fresh && carried == 0 {
            self.stats.refaults += 1;
            self.vendor.unzap(map_gpa, size);
        }
        if size == PageSize::Size2M {
            self.stats.huge_maps += 1;
        }
        let prepared = if fresh {
            size.bytes() / PAGE + also_prepared
        } else {
            carried
        };
        Ok(Populated {
            pa: pa + (page - map_gpa),
            prepared,
        })
    }

    /// Remove the mappings in `scope` that intersect `[gpa, gpa + len)`. The frames stay
    /// where they are: a private page refaults to the same, already prepared frame
    /// (with an external table (TDX), a private leaf's contents go with it). A mapping
    /// the external table refuses to give up stays, and the VM stops at the next check.
    pub fn zap(&mut self, gpa: u64, len: u64, scope: Scope, host: &mut impl Host) -> u64 {
        let zapped = self.tables.zap(host, &mut self.vendor, gpa, len, scope);
        self.stats.zapped += zapped.cleared;
        if let Some((gpa, error)) = zapped.refused {
            self.failure.get_or_insert(Stop::Mmu {
                error: MmuError::External(error),
                gpa,
            });
        }
        zapped.cleared
    }

    /// The hardware refused a 4 KiB access inside a 2 MiB ownership entry (SNP-05): the
    /// vendor splits the entry and the covering 2 MiB range is zapped, so it refaults at
    /// 4 KiB. Only prepared private memory has ownership entries to split.
    fn split_ownership(&mut self, gpa: u64, host: &mut impl Host) -> Result<(), VendorError> {
        const NOT_PREPARED: VendorError =
            VendorError::failed(0, "ownership fault outside prepared private memory");
        let slot = self.slot_containing(gpa, PAGE).ok_or(NOT_PREPARED)?;
        let Backing::Private(object) = &slot.backing else {
            return Err(NOT_PREPARED);
        };
        let offset = (gpa & !(PAGE - 1)) - slot.gpa;
        if object.state(offset) != PageState::Prepared {
            return Err(NOT_PREPARED);
        }
        let pa = (object.base() + offset) & !(HUGE - 1);
        self.vendor.split_private(pa)?;
        self.zap(gpa & !(HUGE - 1), HUGE, Scope::Private, host);
        Ok(())
    }

    /// Free the private backing of `[gpa, gpa + len)` (inside one private slot): its
    /// mappings go first, then its frames return to the pool. Returns frames released.
    pub fn punch_hole(
        &mut self,
        gpa: u64,
        len: u64,
        host: &mut impl Host,
    ) -> Result<u64, PrivMemError> {
        let index = self.slots.iter().position(|s| s.contains(gpa, len));
        let Some(slot) = index.map(|i| &mut self.slots[i]) else {
            return Err(PrivMemError::OutOfRange { offset: gpa });
        };
        let slot_gpa = slot.gpa;
        let Backing::Private(object) = &mut slot.backing else {
            return Err(PrivMemError::NotPrivate {
                offset: gpa - slot_gpa,
            });
        };
        let mut ops = SlotOps::new(
            &mut self.tables,
            &mut *host,
            &mut self.vendor,
            &mut self.stats,
            &mut self.failure,
            slot_gpa,
        );
        object.punch_hole(self.id, gpa - slot_gpa, len, &mut ops)
    }

    /// The leaf mapping `gpa`, if any (for tests and diagnostics): the private one, or
    /// the shared one for a page that is shared memory.
    pub fn leaf(&self, gpa: u64, host: &mut impl Host) -> Option<u64> {
        let private = !self.is_shared_page(gpa)
            && self
                .slot_containing(gpa, PAGE)
                .is_some_and(|s| s.kind() == MemoryKind::Private);
        self.tables.lookup(host, gpa, private).map(|m| m.pte)
    }

    /// Every private leaf as (gpa, size, frame), in address order (diagnostics, and the
    /// checks that a vendor's external table agrees with the mirror).
    pub fn private_leaves(&self, host: &mut impl Host) -> Vec<(u64, PageSize, u64)> {
        self.tables.private_leaves(host)
    }

    /// Entries left frozen in the second-level tables (diagnostics: none between exits).
    pub fn frozen_entries(&self, host: &mut impl Host) -> usize {
        self.tables.frozen_entries(host)
    }

    /// Every table the private (mirror) table links, as (gpa, level; 1 = last level).
    pub fn private_table_links(&self, host: &mut impl Host) -> Vec<(u64, usize)> {
        self.tables.private_table_links(host)
    }

    /// Whether the page at `gpa` is private memory converted to shared.
    pub fn is_shared_page(&self, gpa: u64) -> bool {
        self.slot_containing(gpa, PAGE)
            .is_some_and(|s| match &s.backing {
                Backing::Private(object) => object.is_shared(gpa - s.gpa, PAGE),
                Backing::Shared { .. } => false,
            })
    }

    pub fn vendor(&self) -> &V {
        &self.vendor
    }

    pub fn vendor_mut(&mut self) -> &mut V {
        &mut self.vendor
    }

    /// Whether `[gpa, gpa + len)` lies inside one private slot.
    pub(crate) fn is_private_range(&self, gpa: u64, len: u64) -> bool {
        self.slot_containing(gpa, len)
            .is_some_and(|s| matches!(s.backing, Backing::Private(_)))
    }

    /// Convert `[gpa, gpa + len)`, inside one private slot, to shared or back to
    /// private. To shared: the private mappings go and the frames are scrubbed before
    /// the hypervisor can see them. To private: refused with `Busy` while the hypervisor
    /// still holds a reference into the range; otherwise the shared mappings go and each
    /// page is scrubbed and prepared again on its next touch. Returns the pages whose
    /// attribute changed hands (for to-shared, the prepared frames released).
    pub fn convert(
        &mut self,
        gpa: u64,
        len: u64,
        to: MemoryKind,
        host: &mut impl Host,
    ) -> Result<u64, ConvertError> {
        if !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) || len == 0 {
            return Err(ConvertError::Private(PrivMemError::OutOfRange {
                offset: gpa,
            }));
        }
        let index = self
            .slots
            .iter()
            .position(|s| s.contains(gpa, len))
            .ok_or(ConvertError::NotConvertible)?;
        let slot_gpa = self.slots[index].gpa;
        if !matches!(self.slots[index].backing, Backing::Private(_)) {
            return Err(ConvertError::NotConvertible);
        }
        if to == MemoryKind::Private {
            if self.host_refs.overlaps(gpa, len) {
                return Err(ConvertError::Busy);
            }
            self.zap(gpa, len, Scope::Shared, host);
        }
        let Backing::Private(object) = &mut self.slots[index].backing else {
            return Err(ConvertError::NotConvertible);
        };
        let offset = gpa - slot_gpa;
        let result = match to {
            MemoryKind::Shared => {
                let mut ops = SlotOps::new(
                    &mut self.tables,
                    &mut *host,
                    &mut self.vendor,
                    &mut self.stats,
                    &mut self.failure,
                    slot_gpa,
                );
                object.convert_to_shared(self.id, offset, len, &mut ops)
            }
            MemoryKind::Private => object
                .convert_to_private(self.id, offset, len)
                .map(|()| len / PAGE),
        };
        result.map_err(ConvertError::Private)
    }

    /// Prepare every private page now (upfront pinning), in 2 MiB blocks where the pool
    /// prefers them.
    pub(crate) fn prepare_all(&mut self, host: &mut impl Host) -> Result<(), Stop> {
        let id = self.id;
        for slot in self.slots.iter_mut() {
            let Backing::Private(object) = &mut slot.backing else {
                continue;
            };
            let mut ops = FrameOps {
                host: &mut *host,
                vendor: &mut self.vendor,
                slot_gpa: slot.gpa,
                scrub_ticks: &mut self.stats.scrub_ticks,
            };
            let mut offset = 0;
            while offset < slot.size {
                let fresh =
                    if slot.huge && offset.is_multiple_of(HUGE) && offset + HUGE <= slot.size {
                        object
                            .get_huge(id, offset, &mut ops)
                            .map(|f| f.map(|f| (f.fresh, HUGE / PAGE)))
                    } else {
                        Ok(None)
                    };
                let stop = |error| Stop::PrivateMemory {
                    gpa: slot.gpa + offset,
                    access: Access::Write,
                    error,
                };
                let (fresh, frames) = match fresh.map_err(stop)? {
                    Some(done) => done,
                    None => (object.get_pfn(id, offset, &mut ops).map_err(stop)?.fresh, 1),
                };
                if fresh {
                    self.stats.launch_prepared += frames;
                }
                offset += frames * PAGE;
            }
        }
        Ok(())
    }

    /// Private 4 KiB pages mapped now, with their frames, in address order.
    pub(crate) fn private_pages(&self, host: &mut impl Host) -> Vec<(u64, u64)> {
        self.tables.private_pages(host)
    }

    pub(crate) fn pinning(&self) -> Pinning {
        self.pinning
    }

    /// The slot holding all of `[gpa, gpa + len)`, if one does.
    pub(crate) fn slot_containing(&self, gpa: u64, len: u64) -> Option<&Memslot> {
        self.slots.iter().find(|s| s.contains(gpa, len))
    }
}
