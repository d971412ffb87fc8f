//! The VM against a page model: faults through `prefault` and through a scripted
//! vCPU, scoped zaps, punch-holes, restarts and refused prepares, with a vendor that
//! checks at every release that no leaf maps the frame. After every step: PIN-01/POOL-04
//! (no release while mapped), PIN-03 (same frame on refault), accounting (object,
//! vendor and model agree), POOL-06 (zeros on first touch, data kept until a
//! punch-hole), PIN-02 (restarts keep prepared frames), POOL-07 (release zaps all).

use super::{Mismatch, PAGE, intersects};
use crate::exit::{Access, Exit};
use crate::memslot::{Backing, SlotSpec};
use crate::mmu::{PageSize, PteFormat, Scope, VendorError, VendorMmu};
use crate::stop::Stop;
use crate::testing::{FakeHost, ScriptedVcpu, TableEntry, TestFormat, table_leaves};
use crate::vm::{Pinning, Vm, VmSpec};
use cloister_abi::MemoryKind;
use cloister_privmem::{PageState, PrivMemError, PrivateMemory};
use core::cell::RefCell;
use std::collections::BTreeSet;
use std::format;
use std::rc::Rc;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// Host-physical base of the private pool.
pub const POOL: u64 = 0x100_0000;
/// The shared slot: guest-physical base, host-physical base and size.
pub const SHARED_GPA: u64 = 0x4000_0000;
pub const SHARED_HOST: u64 = 0x800_0000;
pub const SHARED_SIZE: u64 = 0x20_0000;
/// The code the vendor refuses a prepare with (see [`VmOp::Fault`]).
pub const VENDOR_REFUSES: u64 = 0x77;
/// Where the private slot starts: at GPA 0, or at 4 MiB with a hole below.
pub const PRIVATE_GPAS: [u64; 2] = [0, 0x40_0000];
/// Private slot sizes in pages: 4, 6 and 8 MiB, the 6 MiB one with a 12 KiB tail too
/// short for a 2 MiB block.
pub const PRIVATE_PAGES: [u64; 3] = [1024, 1536 + 3, 2048];
/// Tables a harness may allocate (far more than any test sequence needs).
pub const TABLE_BUDGET: usize = 1 << 16;

/// A vendor hook call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Prepare(u64, u64),
    Invalidate(u64, u64),
    Zap(u64, u64),
    Unzap(u64, PageSize),
}

/// The vendor side of the pool, shared by every VM instance bound to it.
#[derive(Default, Debug)]
struct Ledger {
    /// Frames prepared and not invalidated since.
    live: BTreeSet<u64>,
    prepared_total: u64,
    invalidated_total: u64,
    /// This step's hook calls.
    events: Vec<Event>,
    /// Private leaves `(gpa, size, pa)` the nested table held at the start of the step,
    /// less those a vendor zap has since announced cleared: what the CPU may still use.
    shadow: Vec<(u64, u64, u64)>,
    violations: Vec<String>,
    refuse_next_prepare: bool,
}

/// A vendor that checks, when a frame is released (invalidated), that no leaf still
/// maps it, and keeps the pool's accounting.
struct CheckingVendor(Rc<RefCell<Ledger>>);

impl VendorMmu for CheckingVendor {
    fn prepare(&mut self, _gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError> {
        let mut ledger = self.0.borrow_mut();
        if core::mem::take(&mut ledger.refuse_next_prepare) {
            return Err(VendorError::failed(VENDOR_REFUSES, "refused"));
        }
        ledger.events.push(Event::Prepare(pa, frames));
        for frame in (0..frames).map(|i| pa + i * PAGE) {
            if !ledger.live.insert(frame) {
                ledger
                    .violations
                    .push(format!("frame {frame:#x} prepared twice without a release"));
            }
        }
        ledger.prepared_total += frames;
        Ok(())
    }

    fn invalidate(&mut self, pa: u64, frames: u64, _quarantine: &mut dyn FnMut(u64)) {
        let mut ledger = self.0.borrow_mut();
        ledger.events.push(Event::Invalidate(pa, frames));
        for frame in (0..frames).map(|i| pa + i * PAGE) {
            if !ledger.live.remove(&frame) {
                ledger
                    .violations
                    .push(format!("frame {frame:#x} released but not prepared"));
            }
        }
        ledger.invalidated_total += frames;
        let mapped: Vec<String> = ledger
            .shadow
            .iter()
            .filter(|&&(_, len, leaf_pa)| intersects(leaf_pa, len, pa, frames * PAGE))
            .map(|&(gpa, len, leaf_pa)| {
                format!(
                    "PIN-01/POOL-04: frames {pa:#x}+{frames} released while the leaf \
                     {gpa:#x}+{len:#x} -> {leaf_pa:#x} still maps them"
                )
            })
            .collect();
        ledger.violations.extend(mapped);
    }

    fn zap(&mut self, gpa: u64, size: u64) {
        let mut ledger = self.0.borrow_mut();
        ledger.events.push(Event::Zap(gpa, size));
        ledger
            .shadow
            .retain(|&(leaf_gpa, len, _)| !intersects(leaf_gpa, len, gpa, size));
    }

    fn unzap(&mut self, gpa: u64, size: PageSize) {
        self.0.borrow_mut().events.push(Event::Unzap(gpa, size));
    }
}

type CheckedVm = Vm<TestFormat, CheckingVendor>;

/// The VM's memory map: one private slot (see [`PRIVATE_GPAS`], [`PRIVATE_PAGES`]),
/// with or without 2 MiB mappings, and the shared slot.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub private_gpa: u64,
    pub pages: u64,
    pub huge: bool,
}

impl Layout {
    pub fn private_size(&self) -> u64 {
        self.pages * PAGE
    }

    pub fn slots(&self) -> [SlotSpec; 2] {
        [
            SlotSpec {
                gpa: self.private_gpa,
                size: self.private_size(),
                kind: MemoryKind::Private,
                host_base: POOL,
                huge: self.huge,
            },
            SlotSpec {
                gpa: SHARED_GPA,
                size: SHARED_SIZE,
                kind: MemoryKind::Shared,
                host_base: SHARED_HOST,
                huge: false,
            },
        ]
    }

    pub fn in_private(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.private_gpa && gpa.saturating_add(len) <= self.private_gpa + self.private_size()
    }

    pub fn in_shared(&self, gpa: u64, len: u64) -> bool {
        gpa >= SHARED_GPA && gpa.saturating_add(len) <= SHARED_GPA + SHARED_SIZE
    }

    /// Private page numbers at the edges: of the slot, of its first 2 MiB block, and
    /// of its last full block.
    pub fn edge_pages(&self) -> [u64; 7] {
        let n = self.pages;
        [0, 1, 511, 512, 513, n - 512, n - 1]
    }

    /// GPAs just outside both slots, and one above the 48 bits the table translates
    /// that aliases the slot's base.
    pub fn outside_gpas(&self) -> [u64; 5] {
        let base = self.private_gpa;
        let end = base + self.private_size();
        [
            end,
            end + 0x20_0000,
            if base == 0 { SHARED_GPA - PAGE } else { 0x1000 },
            SHARED_GPA + SHARED_SIZE,
            (1 << 48) | base,
        ]
    }
}

/// One operation on the VM.
#[derive(Clone, Copy, Debug)]
pub enum VmOp {
    /// Touch `gpa` through `Vm::prefault` or through a nested page fault exit;
    /// `refuse` makes the vendor refuse the next prepare.
    Fault {
        gpa: u64,
        vcpu: bool,
        refuse: bool,
    },
    Zap {
        gpa: u64,
        len: u64,
        scope: Scope,
    },
    PunchHole {
        gpa: u64,
        len: u64,
    },
    /// `into_memory` then `with_memory` with a new instance id.
    Restart,
}

/// What the model knows of a prepared private page.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    pa: u64,
    /// The last value the "workload" wrote at the start of the page; the rest is zero.
    marker: Option<u64>,
}

/// A VM over a checking vendor on a fake host, beside the model of its private pages.
pub struct VmHarness {
    layout: Layout,
    host: FakeHost,
    /// Always `Some` between steps.
    vm: Option<CheckedVm>,
    ledger: Rc<RefCell<Ledger>>,
    instance: u64,
    /// Private pages by slot page index: `Some` while prepared.
    pages: Vec<Option<Prepared>>,
    next_marker: u64,
}

fn spec(slots: &[SlotSpec], instance: u64) -> VmSpec<'_> {
    VmSpec {
        name: "prop",
        slots,
        allowed_calls: !0,
        pinning: Pinning::Demand,
        instance,
    }
}

fn object(vm: &CheckedVm) -> &PrivateMemory {
    vm.slots
        .iter()
        .find_map(|s| match &s.backing {
            Backing::Private(object) => Some(object),
            Backing::Shared { .. } => None,
        })
        .unwrap()
}

impl VmHarness {
    pub fn new(layout: Layout) -> Self {
        let mut host = FakeHost::new(TABLE_BUDGET);
        let ledger = Rc::new(RefCell::new(Ledger::default()));
        let vm = Vm::new(
            &spec(&layout.slots(), 1),
            CheckingVendor(ledger.clone()),
            &mut host,
        )
        .unwrap();
        Self {
            layout,
            host,
            vm: Some(vm),
            ledger,
            instance: 1,
            pages: vec![None; layout.pages as usize],
            next_marker: 1,
        }
    }

    fn vm(&mut self) -> &mut CheckedVm {
        self.vm.as_mut().unwrap()
    }

    fn leaves(&mut self) -> Vec<TableEntry> {
        let root = self.vm().npt_root();
        table_leaves::<TestFormat>(&mut self.host, root)
    }

    fn prepared(&self) -> u64 {
        self.pages.iter().filter(|p| p.is_some()).count() as u64
    }

    fn page_index(&self, gpa: u64) -> usize {
        ((gpa - self.layout.private_gpa) / PAGE) as usize
    }

    /// The frame must read as zeros after `marker` at its start (if any).
    fn check_content(&mut self, pa: u64, marker: Option<u64>) -> Result<(), Mismatch> {
        let frame = self.host.frame(pa);
        let head = u64::from_le_bytes(frame[..8].try_into().unwrap());
        let rest_zero = frame[8..].iter().all(|&b| b == 0);
        ensure!(
            head == marker.unwrap_or(0) && rest_zero,
            "frame {:#x}: expected marker {:?} then zeros, found {:#x} (rest zero: {})",
            pa,
            marker,
            head,
            rest_zero
        );
        Ok(())
    }

    /// Run `op` on the VM, check its results against the model, update the model, then
    /// check every invariant.
    pub fn step(&mut self, op: VmOp) -> Result<(), Mismatch> {
        let before = self.leaves();
        {
            let mut ledger = self.ledger.borrow_mut();
            ledger.events.clear();
            ledger.shadow = before
                .iter()
                .filter(|l| TestFormat::is_pinned(l.pte))
                .map(|l| (l.gpa, l.size(), TestFormat::address(l.pte)))
                .collect();
        }
        let restart = matches!(op, VmOp::Restart);
        match op {
            VmOp::Fault { gpa, vcpu, refuse } => self.fault(gpa, vcpu, refuse)?,
            VmOp::Zap { gpa, len, scope } => {
                let cleared = self
                    .vm
                    .as_mut()
                    .unwrap()
                    .zap(gpa, len, scope, &mut self.host);
                let (gone, kept): (Vec<TableEntry>, Vec<TableEntry>) =
                    before.iter().copied().partition(|l| {
                        intersects(l.gpa, l.size(), gpa, len) && scope.covers::<TestFormat>(l.pte)
                    });
                ensure_eq!(cleared, gone.len() as u64);
                let after = self.leaves();
                ensure_eq!(after, kept);
                ensure!(self.frame_events().is_empty(), "a zap changed ownership");
            }
            VmOp::PunchHole { gpa, len } => self.punch_hole(gpa, len, &before)?,
            VmOp::Restart => self.restart()?,
        }
        self.ledger.borrow_mut().refuse_next_prepare = false;
        self.check_invariants(&before, restart)
    }

    fn frame_events(&self) -> Vec<Event> {
        self.ledger
            .borrow()
            .events
            .iter()
            .copied()
            .filter(|e| matches!(e, Event::Prepare(..) | Event::Invalidate(..)))
            .collect()
    }

    fn fault(&mut self, gpa: u64, vcpu: bool, refuse: bool) -> Result<(), Mismatch> {
        self.ledger.borrow_mut().refuse_next_prepare = refuse;
        let page = gpa & !(PAGE - 1);
        let private = gpa >> 48 == 0 && self.layout.in_private(page, PAGE);
        let shared = gpa >> 48 == 0 && self.layout.in_shared(page, PAGE);
        let known = if private {
            self.pages[self.page_index(page)]
        } else {
            None
        };
        let result = if vcpu {
            let mut cpu = ScriptedVcpu::default()
                .step(move |_| Exit::NestedPageFault {
                    gpa,
                    access: Access::Write,
                    present: false,
                })
                .step(|_| Exit::Shutdown);
            match self.vm.as_mut().unwrap().run(&mut cpu, &mut self.host) {
                Stop::TripleFault { rip: 0 } => {
                    // Mapped now: the lookup path hands back the frame without changes.
                    let pa = self.vm.as_mut().unwrap().prefault(gpa, &mut self.host);
                    ensure!(pa.is_ok(), "mapped page refused: {:?}", pa);
                    pa
                }
                stop => Err(stop),
            }
        } else {
            self.vm.as_mut().unwrap().prefault(gpa, &mut self.host)
        };
        if !private && !shared {
            ensure_eq!(
                result,
                Err(Stop::OutsideMemory {
                    gpa,
                    access: Access::Write,
                    rip: 0
                })
            );
            ensure!(self.ledger.borrow().events.is_empty());
            return Ok(());
        }
        if shared {
            ensure_eq!(result, Ok(SHARED_HOST + (page - SHARED_GPA)));
            ensure!(
                self.frame_events().is_empty(),
                "shared fault changed ownership"
            );
            return self.check_mapped(page, SHARED_HOST + (page - SHARED_GPA), false);
        }
        let index = self.page_index(page);
        let prepares: Vec<(u64, u64)> = self
            .frame_events()
            .into_iter()
            .map(|e| match e {
                Event::Prepare(pa, n) => Ok((pa, n)),
                other => Err(other),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("a fault released a frame: {e:?}"))?;
        if let Some(known) = known {
            // PIN-03: the same frame, neither scrubbed nor prepared again.
            ensure_eq!(result, Ok(known.pa), "PIN-03: refault maps another frame");
            ensure!(
                prepares.is_empty(),
                "PIN-03: prepared again: {:?}",
                prepares
            );
            self.check_content(known.pa, known.marker)?;
        } else if refuse {
            ensure_eq!(
                result,
                Err(Stop::PrivateMemory {
                    gpa,
                    access: Access::Write,
                    error: PrivMemError::Vendor {
                        code: VENDOR_REFUSES
                    }
                })
            );
            ensure!(prepares.is_empty());
            return Ok(());
        } else {
            let pa = result.map_err(|stop| format!("fault: {stop}"))?;
            let pool_end = POOL + self.layout.private_size();
            ensure!(
                (POOL..pool_end).contains(&pa),
                "frame {:#x} outside the pool",
                pa
            );
            match prepares[..] {
                [(prepared, 1)] => {
                    ensure_eq!(prepared, pa);
                    self.pages[index] = Some(Prepared { pa, marker: None });
                }
                [(block_pa, 512)] => {
                    ensure!(self.layout.huge, "2 MiB prepared for a 4 KiB slot");
                    let first = index & !511;
                    ensure!(first + 512 <= self.pages.len());
                    ensure!(
                        self.pages[first..first + 512].iter().all(Option::is_none),
                        "a 2 MiB prepare over already prepared pages"
                    );
                    ensure_eq!(block_pa + (index - first) as u64 * PAGE, pa);
                    for i in 0..512 {
                        self.pages[first + i] = Some(Prepared {
                            pa: block_pa + i as u64 * PAGE,
                            marker: None,
                        });
                    }
                }
                _ => ensure!(false, "first touch prepared {:?}", prepares),
            }
            // POOL-06: garbage in the pool, zeros in the workload's first view.
            self.check_content(pa, None)?;
        }
        let pa = self.pages[index].unwrap().pa;
        self.check_mapped(page, pa, true)?;
        let marker = self.next_marker;
        self.next_marker += 1;
        self.host.frame(pa)[..8].copy_from_slice(&marker.to_le_bytes());
        self.pages[index].as_mut().unwrap().marker = Some(marker);
        Ok(())
    }

    /// A leaf maps `page` to `pa` (checked with a walk of the test's own).
    fn check_mapped(&mut self, page: u64, pa: u64, pinned: bool) -> Result<(), Mismatch> {
        let leaf = self
            .leaves()
            .into_iter()
            .find(|l| (l.gpa..l.gpa + l.size()).contains(&page));
        let found = leaf.map(|l| {
            (
                TestFormat::address(l.pte) + (page - l.gpa),
                TestFormat::is_pinned(l.pte),
            )
        });
        ensure_eq!(found, Some((pa, pinned)), "leaf for {:#x}", page);
        Ok(())
    }

    fn punch_hole(&mut self, gpa: u64, len: u64, before: &[TableEntry]) -> Result<(), Mismatch> {
        let result = self
            .vm
            .as_mut()
            .unwrap()
            .punch_hole(gpa, len, &mut self.host);
        let base = self.layout.private_gpa;
        let expected = if self.layout.in_private(gpa, len) {
            let offset = gpa - base;
            if !offset.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
                Err(PrivMemError::OutOfRange { offset })
            } else {
                Ok(())
            }
        } else if self.layout.in_shared(gpa, len) {
            Err(PrivMemError::NotPrivate {
                offset: gpa - SHARED_GPA,
            })
        } else {
            Err(PrivMemError::OutOfRange { offset: gpa })
        };
        if let Err(error) = expected {
            ensure_eq!(result, Err(error));
            ensure!(self.ledger.borrow().events.is_empty());
            ensure_eq!(&self.leaves()[..], before);
            return Ok(());
        }
        let range = self.page_index(gpa)..self.page_index(gpa + len);
        let released: BTreeSet<u64> = self.pages[range.clone()]
            .iter()
            .flatten()
            .map(|p| p.pa)
            .collect();
        ensure_eq!(result, Ok(released.len() as u64));
        let mut invalidated = BTreeSet::new();
        for event in self.frame_events() {
            match event {
                Event::Invalidate(pa, n) => invalidated.extend((0..n).map(|i| pa + i * PAGE)),
                other => ensure!(false, "punch-hole prepared: {:?}", other),
            }
        }
        ensure_eq!(invalidated, released);
        // Private leaves touching the range went first; everything else stays.
        let kept: Vec<TableEntry> = before
            .iter()
            .copied()
            .filter(|l| !(TestFormat::is_pinned(l.pte) && intersects(l.gpa, l.size(), gpa, len)))
            .collect();
        ensure_eq!(self.leaves(), kept);
        self.pages[range].fill(None);
        Ok(())
    }

    /// PIN-02: a new instance over the same objects keeps every prepared frame.
    fn restart(&mut self) -> Result<(), Mismatch> {
        let vm = self.vm.take().unwrap();
        let old_root = vm.npt_root();
        let (memory, teardown) = vm.into_memory(&mut self.host);
        ensure_eq!(teardown, Ok(()));
        // POOL-07: releasing the instance zaps everything and frees nothing.
        ensure!(table_leaves::<TestFormat>(&mut self.host, old_root).is_empty());
        ensure!(
            self.frame_events().is_empty(),
            "a restart changed ownership"
        );
        ensure_eq!(memory.len(), 1);
        ensure_eq!(memory[0].bound_to(), None);
        ensure_eq!(memory[0].prepared_frames(), self.prepared());
        self.instance += 1;
        let vm = Vm::with_memory(
            &spec(&self.layout.slots(), self.instance),
            memory,
            CheckingVendor(self.ledger.clone()),
            &mut self.host,
        );
        self.vm = Some(vm.unwrap());
        ensure!(self.leaves().is_empty(), "a fresh table maps nothing");
        Ok(())
    }

    fn check_invariants(&mut self, before: &[TableEntry], restart: bool) -> Result<(), Mismatch> {
        let ledger = self.ledger.borrow();
        ensure!(ledger.violations.is_empty(), "{:?}", ledger.violations);
        // The CPU is told about every cleared leaf (TLB flush) before the step ends.
        let zaps: Vec<(u64, u64)> = ledger
            .events
            .iter()
            .filter_map(|e| match *e {
                Event::Zap(gpa, len) => Some((gpa, len)),
                _ => None,
            })
            .collect();
        drop(ledger);
        let after = self.leaves();
        for gone in before.iter().filter(|l| !after.contains(l)) {
            if restart && !TestFormat::is_pinned(gone.pte) {
                continue; // The whole table goes with the instance.
            }
            ensure!(
                zaps.iter()
                    .any(|&(gpa, len)| intersects(gone.gpa, gone.size(), gpa, len)),
                "leaf {:?} cleared without telling the vendor",
                gone
            );
        }
        // PIN-01: every leaf maps what the model says; private ones only prepared frames.
        for l in &after {
            let pa = TestFormat::address(l.pte);
            if TestFormat::is_pinned(l.pte) {
                ensure!(
                    self.layout.in_private(l.gpa, l.size()),
                    "pinned leaf {:?}",
                    l
                );
                let first = self.page_index(l.gpa);
                for i in 0..(l.size() / PAGE) as usize {
                    let page = self.pages[first + i];
                    ensure_eq!(
                        page.map(|p| p.pa),
                        Some(pa + i as u64 * PAGE),
                        "leaf {:?} maps a frame that is not the page's prepared frame",
                        l
                    );
                }
            } else {
                ensure!(
                    self.layout.in_shared(l.gpa, l.size()),
                    "shared leaf {:?}",
                    l
                );
                ensure_eq!(pa, SHARED_HOST + (l.gpa - SHARED_GPA));
            }
        }
        // Accounting: the object, the vendor and the model agree.
        let prepared = self.prepared();
        let vm = self.vm.as_ref().unwrap();
        ensure_eq!(vm.prepared_frames(), prepared);
        let object = object(vm);
        ensure_eq!(object.prepared_frames(), prepared);
        for (i, page) in self.pages.iter().enumerate() {
            let state = object.state(i as u64 * PAGE);
            let expected = if page.is_some() {
                PageState::Prepared
            } else {
                PageState::Free
            };
            ensure_eq!(state, expected, "page {}", i);
        }
        let ledger = self.ledger.borrow();
        ensure_eq!(ledger.prepared_total - ledger.invalidated_total, prepared);
        let model: BTreeSet<u64> = self.pages.iter().flatten().map(|p| p.pa).collect();
        ensure_eq!(&ledger.live, &model);
        drop(ledger);
        // What the workload wrote survives zaps, refaults and restarts.
        let marked: Vec<Prepared> = self.pages.iter().flatten().copied().collect();
        for page in marked.into_iter().filter(|p| p.marker.is_some()) {
            let head = u64::from_le_bytes(self.host.frame(page.pa)[..8].try_into().unwrap());
            ensure_eq!(
                Some(head),
                page.marker,
                "frame {:#x} lost its data",
                page.pa
            );
        }
        Ok(())
    }
}
