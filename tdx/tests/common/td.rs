//! A simulated TD: core's VM with the TDX hooks over the module model, and a guest that
//! plays a workload the way a TD does it (ACCEPT before use, MapGPA to convert, two
//! vCPUs entering and leaving the TD) while the tests check mirror against S-EPT.

use super::host::{Event, Journal, SimHost};
use super::recorder::Recorder;
use cloister_abi::MemoryKind;
use cloister_core::Exit;
use cloister_core::host::Host;
use cloister_core::hypercall::Request;
use cloister_core::memslot::SlotSpec;
use cloister_core::mmu::PageSize;
use cloister_core::vcpu::{ConvertReply, Regs, Vcpu};
use cloister_core::vm::{Pinning, Vm, VmSpec};
use cloister_core::{Access, Stop};
use cloister_tdx::abi::{SHARED_BIT_4_LEVEL, tdcall};
use cloister_tdx::model::{self, EntryState, TdConfig, TdxModel};
use cloister_tdx::{EptFormat, Level, TdxMmu, transport};
use std::collections::{BTreeMap, BTreeSet};

pub const PAGE: u64 = 4096;
/// Private memory: guest-physical 0 up, backed by a pool at this host address.
pub const POOL: u64 = 0x1_0000_0000;
pub const TDR: u64 = 0x6000_0000_0000;
pub const VCPUS: usize = 2;

pub type TdVm = Vm<EptFormat, TdxMmu<Recorder>>;

/// One vCPU's view of the exit it just took, and its TDVMCALL registers.
pub struct SimVcpu {
    regs: Regs,
    exit: Option<Exit>,
}

impl Vcpu for SimVcpu {
    fn run(&mut self) -> Exit {
        self.exit.take().expect("the harness sets the exit first")
    }
    fn regs(&self) -> &Regs {
        &self.regs
    }
    fn regs_mut(&mut self) -> &mut Regs {
        &mut self.regs
    }
    fn inject_exception(&mut self, vector: u8, _: Option<u32>) {
        panic!("exception {vector} injected into the simulated TD");
    }
    fn hypercall(&self) -> Request {
        transport::request(&self.regs)
    }
    fn complete_hypercall(&mut self, value: u64) {
        transport::complete_hypercall(&mut self.regs, value);
    }
    fn complete_convert(&mut self, reply: ConvertReply) {
        transport::complete_convert(&mut self.regs, reply);
    }
}

/// A one-page image: a PT_LOAD of `data` at 2 MiB.
pub fn image(data: &[u8]) -> Vec<u8> {
    const PHDR: usize = 56;
    let mut b = vec![0u8; 64 + PHDR];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
    b[ph + 8..ph + 16].copy_from_slice(&((64 + PHDR) as u64).to_le_bytes());
    b[ph + 16..ph + 24].copy_from_slice(&0x20_0000u64.to_le_bytes());
    b[ph + 24..ph + 32].copy_from_slice(&0x20_0000u64.to_le_bytes());
    b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b[ph + 40..ph + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b.extend_from_slice(data);
    b
}

pub struct SimTd {
    pub vm: TdVm,
    pub host: SimHost,
    pub journal: Journal,
    vcpu: SimVcpu,
    pub private_size: u64,
    /// What the guest believes: pages it converted to shared.
    pub shared: BTreeSet<u64>,
    /// What the guest believes: private pages it accepted since they were last mapped.
    pub accepted: BTreeSet<u64>,
    /// Pages the guest wrote a marker into, and the marker (private pages keep their
    /// contents while mapped).
    pub markers: BTreeMap<u64, u8>,
}

impl SimTd {
    /// A TD over `private_size` bytes of private memory (4 KiB mappings), launched with a
    /// one-page image and finalized.
    pub fn launched(private_size: u64) -> Self {
        let mut td = Self::built(private_size, VCPUS);
        let launched = td.vm.launch(&image(b"\xf4 cloister"), &mut td.host);
        assert!(launched.is_ok(), "launch: {launched:?}");
        // Launch pages were added whole: usable without ACCEPT, holding launch data.
        for (gpa, _, pa) in td.vm.private_leaves(&mut td.host) {
            td.accepted.insert(gpa);
            let first = td.host.with_frame(pa, |f| f[0]);
            td.markers.insert(gpa, first);
        }
        td
    }

    /// A TD built and not launched: the module is in its INITIALIZED state.
    pub fn built(private_size: u64, vcpus: usize) -> Self {
        let journal = Journal::default();
        let mut control = heapless::Vec::new();
        for i in 0..3 {
            control.push(TDR + (i + 1) * PAGE).unwrap();
        }
        let model = TdxModel::new(TdConfig {
            tdr: TDR,
            control,
            vcpus,
            hkid: 7,
        });
        let mut host = SimHost::new(journal.clone());
        let slots = [SlotSpec {
            gpa: 0,
            size: private_size,
            kind: MemoryKind::Private,
            host_base: POOL,
            huge: false,
        }];
        let spec = VmSpec {
            name: "td",
            slots: &slots,
            allowed_calls: !0,
            pinning: Pinning::Demand,
            instance: 1,
        };
        let vendor = TdxMmu::new(Recorder::new(model, journal.clone()));
        let vm = Vm::new(&spec, vendor, &mut host).expect("VM");
        Self {
            vm,
            host,
            journal,
            vcpu: SimVcpu {
                regs: Regs::default(),
                exit: None,
            },
            private_size,
            shared: BTreeSet::new(),
            accepted: BTreeSet::new(),
            markers: BTreeMap::new(),
        }
    }

    pub fn model(&self) -> &TdxModel {
        &self.vm.vendor().module().model
    }

    pub fn model_mut(&mut self) -> &mut TdxModel {
        &mut self.vm.vendor_mut().module_mut().model
    }

    /// SEAMCALLs (and kicks) journaled since the journal was last taken.
    pub fn take_journal(&mut self) -> Vec<Event> {
        std::mem::take(&mut *self.journal.borrow_mut())
    }

    pub fn seamcalls(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Module(name, _) if *name != "kick" => Some(*name),
                _ => None,
            })
            .collect()
    }

    /// vCPU `v` enters the TD if it is not in it.
    pub fn enter(&mut self, v: usize) {
        if !self.model().in_guest(v) {
            self.model_mut().vp_enter(v).expect("TDH.VP.ENTER");
        }
    }

    /// vCPU `v` leaves the TD (an interrupt, a halt).
    pub fn leave(&mut self, v: usize) {
        if self.model().in_guest(v) {
            self.model_mut().vp_exit(v);
        }
    }

    /// vCPU `v` exits to the hypervisor with `exit`, which handles it.
    pub fn exit_to_vmm(&mut self, v: usize, exit: Exit) -> Option<Stop> {
        self.leave(v);
        self.vcpu.exit = Some(exit);
        self.vm.step(&mut self.vcpu, &mut self.host)
    }

    /// The guest on vCPU `v` uses the page at `gpa` and writes `marker` into it, the
    /// way a TD does: a private page is accepted first (an ACCEPT of a page not yet
    /// mapped exits to the hypervisor, which AUGs it), a shared one is used through its
    /// shared alias. Checks the page reads what the guest last wrote (zeros when fresh).
    pub fn touch(&mut self, v: usize, gpa: u64, marker: u8) -> Result<(), Stop> {
        self.enter(v);
        let page = gpa & !(PAGE - 1);
        if self.shared.contains(&page) {
            if self.vm.leaf(page, &mut self.host).is_none() {
                let exit = Exit::NestedPageFault {
                    gpa: page | SHARED_BIT_4_LEVEL,
                    access: Access::Write,
                    present: false,
                };
                if let Some(stop) = self.exit_to_vmm(v, exit) {
                    return Err(stop);
                }
            }
        } else {
            self.accept(v, page)?;
            self.enter(v);
            match self.model_mut().guest_access(v, page) {
                model::Access::Mapped { hpa } => assert_eq!(hpa, POOL + page, "PIN-03: same frame"),
                other => panic!("accepted page {page:#x} not usable: {other:?}"),
            }
        }
        let frame = POOL + page;
        let expected = self.markers.get(&page).copied().unwrap_or(0);
        let seen = self.host.with_frame(frame, |f| f[0]);
        assert_eq!(seen, expected, "page {page:#x} lost its contents");
        self.host.write_frame(frame, marker);
        self.markers.insert(page, marker);
        Ok(())
    }

    /// TDG.MEM.PAGE.ACCEPT of the private page at `page`, going through the hypervisor
    /// when it is not mapped yet.
    pub fn accept(&mut self, v: usize, page: u64) -> Result<(), Stop> {
        for _ in 0..2 {
            self.enter(v);
            match self.model_mut().accept(v, page, Level::L4K) {
                model::Accept::Accepted => {
                    assert!(
                        !self.accepted.contains(&page),
                        "page {page:#x} accepted twice while mapped"
                    );
                    self.accepted.insert(page);
                    self.markers.remove(&page);
                    return Ok(());
                }
                model::Accept::AlreadyAccepted => {
                    assert!(self.accepted.contains(&page));
                    return Ok(());
                }
                model::Accept::EptViolation => {
                    let exit = Exit::NestedPageFault {
                        gpa: page,
                        access: Access::Write,
                        present: false,
                    };
                    if let Some(stop) = self.exit_to_vmm(v, exit) {
                        return Err(stop);
                    }
                }
                other => panic!("ACCEPT of {page:#x}: {other:?}"),
            }
        }
        panic!("page {page:#x} still not mapped after the hypervisor handled its fault")
    }

    /// A Cloister call by the vendor-specific TDVMCALL on vCPU `v`; returns R10.
    pub fn call(&mut self, v: usize, number: u64, args: [u64; 4]) -> Result<u64, Stop> {
        self.enter(v);
        let regs = &mut self.vcpu.regs;
        (regs.r10, regs.r11, regs.r12, regs.r13, regs.r14) =
            (number, args[0], args[1], args[2], args[3]);
        let exit = transport::decode_vmcall(&self.vcpu.regs).expect("a call");
        match self.exit_to_vmm(v, exit) {
            Some(stop) => Err(stop),
            None => Ok(self.vcpu.regs.r10),
        }
    }

    /// MapGPA `[gpa, gpa + len)` to `to`, re-issued from where the hypervisor says while
    /// it answers RETRY. Returns the final TDVMCALL status.
    pub fn map_gpa(&mut self, v: usize, gpa: u64, len: u64, to: MemoryKind) -> u64 {
        let side = if to == MemoryKind::Shared {
            SHARED_BIT_4_LEVEL
        } else {
            0
        };
        let end = gpa + len;
        let mut at = gpa | side;
        let mut exits = 0;
        loop {
            self.enter(v);
            self.vcpu.regs.r10 = 0;
            self.vcpu.regs.r11 = tdcall::MAP_GPA;
            self.vcpu.regs.r12 = at;
            self.vcpu.regs.r13 = end - (at & !SHARED_BIT_4_LEVEL);
            let exit = match transport::decode_vmcall(&self.vcpu.regs) {
                Ok(exit) => exit,
                Err(reply) => {
                    transport::complete_convert(&mut self.vcpu.regs, reply);
                    return self.vcpu.regs.r10;
                }
            };
            let stop = self.exit_to_vmm(v, exit);
            assert_eq!(stop, None, "MapGPA stopped the TD");
            exits += 1;
            assert!(exits <= 1 + len / PAGE, "MapGPA makes no progress");
            if self.vcpu.regs.r10 != tdcall::VMCALL_RETRY {
                break;
            }
            at = self.vcpu.regs.r11;
        }
        if self.vcpu.regs.r10 == tdcall::VMCALL_SUCCESS {
            // Only pages that change sides lose their contents (scrubbed on the way);
            // a page converted to the side it is on keeps everything.
            for page in (gpa..end).step_by(PAGE as usize) {
                let changed = match to {
                    MemoryKind::Shared => self.shared.insert(page),
                    MemoryKind::Private => self.shared.remove(&page),
                };
                if changed {
                    self.accepted.remove(&page);
                    self.markers.remove(&page);
                }
            }
        }
        self.vcpu.regs.r10
    }

    /// TDX-01 and the guest's view: every private mirror leaf has the identical S-EPT
    /// leaf and the other way round, every mirror table its S-EPT table, nothing is
    /// blocked or frozen between operations, and the frames are the pool's own.
    pub fn check(&mut self) {
        let mirror: BTreeSet<(u64, u8, u64)> = self
            .vm
            .private_leaves(&mut self.host)
            .into_iter()
            .map(|(gpa, size, pa)| {
                let level = if size == PageSize::Size4K { 0 } else { 1 };
                (gpa, level, pa)
            })
            .collect();
        let links: BTreeSet<(u64, u8)> = self
            .vm
            .private_table_links(&mut self.host)
            .into_iter()
            .map(|(gpa, level)| (gpa, level as u8))
            .collect();
        let mut external = BTreeSet::new();
        let mut external_links = BTreeSet::new();
        for entry in self.model().entries() {
            match entry.state {
                EntryState::Mapped | EntryState::Pending => {
                    external.insert((entry.gpa, entry.level.get(), entry.hpa));
                }
                EntryState::NlMapped => {
                    external_links.insert((entry.gpa, entry.level.get()));
                }
                other => panic!("S-EPT entry {entry:?} left {other:?} between operations"),
            }
        }
        assert_eq!(
            self.vm.frozen_entries(&mut self.host),
            0,
            "TDX-03: entry left frozen"
        );
        assert_eq!(mirror, external, "TDX-01: mirror and S-EPT leaves differ");
        assert_eq!(
            links, external_links,
            "TDX-01: mirror and S-EPT tables differ"
        );
        for &(gpa, _, pa) in &mirror {
            assert_eq!(
                pa,
                POOL + gpa,
                "PIN-03: a private GPA moved to another frame"
            );
            assert!(
                !self.shared.contains(&gpa),
                "a shared page {gpa:#x} is mapped private"
            );
        }
        for &page in &self.accepted {
            assert!(
                mirror.contains(&(page, 0, POOL + page)),
                "accepted page {page:#x} is not mapped"
            );
        }
    }
}
