//! Host-side doubles for core's traits: memory, entry format and a scripted vCPU.
//!
//! Built for core's own tests and, with the `testing` feature, for the fuzz targets in
//! fuzz/ (which drive the real VM over these doubles); never in the image.

use crate::exit::Exit;
use crate::host::{CpuidResult, Host};
use crate::mmu::{ENTRIES, PageSize, Perms, PteFormat, TableMemory, VendorError, VendorMmu};
use crate::vcpu::{Regs, Vcpu};
use std::boxed::Box;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

/// Table pages live at fake physical addresses from here up.
const TABLE_BASE: u64 = 0x7000_0000_0000;

pub struct FakeHost {
    tables: Vec<Box<[u64; ENTRIES]>>,
    table_budget: usize,
    frames: BTreeMap<u64, Box<[u8; 4096]>>,
    pub console: Vec<u8>,
    pub freed_tables: Vec<u64>,
}

impl FakeHost {
    pub fn new(table_budget: usize) -> Self {
        Self {
            tables: Vec::new(),
            table_budget,
            frames: BTreeMap::new(),
            console: Vec::new(),
            freed_tables: Vec::new(),
        }
    }

    pub fn tables_allocated(&self) -> usize {
        self.tables.len()
    }

    /// Direct access for assertions. Fresh frames hold garbage so tests see whether the
    /// VM scrubs them.
    pub fn frame(&mut self, pa: u64) -> &mut [u8; 4096] {
        assert_eq!(pa % 4096, 0);
        assert!(pa < TABLE_BASE, "table page used as a data frame");
        self.frames
            .entry(pa)
            .or_insert_with(|| Box::new([0xa5; 4096]))
    }

    pub fn console_text(&self) -> &str {
        std::str::from_utf8(&self.console).unwrap()
    }
}

impl TableMemory for FakeHost {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.tables.len() == self.table_budget {
            return None;
        }
        self.tables.push(Box::new([0; ENTRIES]));
        Some(TABLE_BASE + (self.tables.len() as u64 - 1) * 4096)
    }

    fn free_table(&mut self, pa: u64) {
        self.freed_tables.push(pa);
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        &mut self.tables[((pa - TABLE_BASE) / 4096) as usize]
    }
}

impl Host for FakeHost {
    fn with_frame<R>(&mut self, pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
        f(self.frame(pa))
    }

    fn console_write(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }

    fn ticks(&self) -> u64 {
        // A fixed cost per call: deterministic, and visible in sums.
        self.console.len() as u64 + self.tables.len() as u64
    }

    fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
        CpuidResult {
            eax: leaf,
            ebx: !0,
            ecx: !0,
            edx: !0,
        }
    }
}

/// A plain format: bit 0 present, bit 7 huge, bits 12..52 the address.
pub struct TestFormat;

impl PteFormat for TestFormat {
    const PINNED: u64 = 1 << 62;
    const FROZEN: u64 = 1 << 61;
    fn table(pa: u64) -> u64 {
        pa | 1
    }
    fn leaf(pa: u64, size: PageSize, _perms: Perms) -> u64 {
        pa | 1 | if size == PageSize::Size2M { 1 << 7 } else { 0 }
    }
    fn is_present(pte: u64) -> bool {
        pte & 1 != 0
    }
    fn is_huge(pte: u64) -> bool {
        pte & (1 << 7) != 0
    }
    fn address(pte: u64) -> u64 {
        pte & 0x000f_ffff_ffff_f000
    }
}

type Step = Box<dyn FnMut(&mut Regs) -> Exit>;

/// A vCPU that plays a script: each `run` performs the next step on the registers.
#[derive(Default)]
pub struct ScriptedVcpu {
    pub regs: Regs,
    steps: VecDeque<Step>,
    pub injected: Vec<(u8, Option<u32>)>,
}

impl ScriptedVcpu {
    pub fn step(mut self, f: impl FnMut(&mut Regs) -> Exit + 'static) -> Self {
        self.steps.push_back(Box::new(f));
        self
    }
}

impl Vcpu for ScriptedVcpu {
    fn run(&mut self) -> Exit {
        let mut step = self
            .steps
            .pop_front()
            .expect("the VM ran past the end of the script");
        step(&mut self.regs)
    }
    fn regs(&self) -> &Regs {
        &self.regs
    }
    fn regs_mut(&mut self) -> &mut Regs {
        &mut self.regs
    }
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        self.injected.push((vector, error_code));
    }
    /// The VMMCALL convention, as on SVM.
    fn hypercall(&self) -> crate::hypercall::Request {
        let r = &self.regs;
        crate::hypercall::Request {
            number: r.rax,
            args: [r.rbx, r.rcx, r.rdx, r.rsi],
        }
    }
    fn complete_hypercall(&mut self, value: u64) {
        self.regs.rax = value;
        self.regs.rip += 3;
    }
}

/// A vendor that records every hook call.
#[derive(Default, Debug)]
pub struct TestVendor {
    pub prepared: Vec<(u64, u64)>,
    /// The guest-physical address each prepared run starts at, with its frame.
    pub prepared_at: Vec<(u64, u64)>,
    pub invalidated: Vec<(u64, u64)>,
    pub zaps: u64,
    pub unzaps: u64,
    /// Frames whose private leaves may be no larger than 4 KiB.
    pub small_leaves: Vec<u64>,
    /// `small_leaves` apply only once the frame is prepared (a 2 MiB ownership entry
    /// that could not be made).
    pub cap_after_prepare: bool,
    /// Refuse every private leaf with this error (an ownership check that fails).
    pub refuse_leaves: Option<VendorError>,
    /// Frames passed to `split_private`.
    pub splits: Vec<u64>,
}

impl VendorMmu for TestVendor {
    fn max_private_leaf(&self, pa: u64) -> PageSize {
        let prepared = self.prepared.iter().any(|&(start, _)| start == pa);
        if self.small_leaves.contains(&pa) && (prepared || !self.cap_after_prepare) {
            PageSize::Size4K
        } else {
            PageSize::Size2M
        }
    }
    fn check_private_leaf(
        &mut self,
        _gpa: u64,
        _size: PageSize,
        _pa: u64,
    ) -> Result<(), VendorError> {
        self.refuse_leaves.map_or(Ok(()), Err)
    }
    fn split_private(&mut self, pa: u64) -> Result<(), VendorError> {
        self.splits.push(pa);
        Ok(())
    }
    fn prepare(&mut self, gpa: u64, pa: u64, frames: u64) -> Result<(), VendorError> {
        self.prepared.push((pa, frames));
        self.prepared_at.push((gpa, pa));
        Ok(())
    }
    fn invalidate(&mut self, pa: u64, frames: u64, _quarantine: &mut dyn FnMut(u64)) {
        self.invalidated.push((pa, frames));
    }
    fn zap(&mut self, _gpa: u64, _size: u64) {
        self.zaps += 1;
    }
    fn unzap(&mut self, _gpa: u64, _size: PageSize) {
        self.unzaps += 1;
    }
}

/// A non-zero entry of a second-level table found by [`table_entries`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    pub gpa: u64,
    /// 1 = the last level (4 KiB leaves), 2 = the level of 2 MiB leaves.
    pub level: usize,
    pub pte: u64,
}

impl TableEntry {
    /// A present entry mapping memory (not a link, not frozen).
    pub fn is_leaf<F: PteFormat>(&self) -> bool {
        F::is_present(self.pte) && (self.level == 1 || F::is_huge(self.pte))
    }

    pub fn size(&self) -> u64 {
        1 << (12 + 9 * (self.level - 1))
    }
}

/// Every non-zero entry of the table rooted at `root` except the links above level 2, in
/// GPA order: leaves, frozen entries and links to last-level tables. A reference walk
/// written apart from `SecondLevelTable`'s, for property tests to compare against.
pub fn table_entries<F: PteFormat>(mem: &mut impl TableMemory, root: u64) -> Vec<TableEntry> {
    fn walk<F: PteFormat>(
        mem: &mut impl TableMemory,
        table: u64,
        level: usize,
        base: u64,
        out: &mut Vec<TableEntry>,
    ) {
        let span = 1u64 << (12 + 9 * (level - 1));
        let entries = *mem.table(table);
        for (i, &pte) in entries.iter().enumerate() {
            if pte == 0 {
                continue;
            }
            let gpa = base + i as u64 * span;
            let link = level > 1 && F::is_present(pte) && !F::is_huge(pte);
            if level <= 2 || !link {
                out.push(TableEntry { gpa, level, pte });
            }
            if link {
                walk::<F>(mem, F::address(pte), level - 1, gpa, out);
            }
        }
    }
    let mut out = Vec::new();
    walk::<F>(mem, root, 4, 0, &mut out);
    out
}

/// The present leaves of the table rooted at `root`, in GPA order.
pub fn table_leaves<F: PteFormat>(mem: &mut impl TableMemory, root: u64) -> Vec<TableEntry> {
    let mut entries = table_entries::<F>(mem, root);
    entries.retain(TableEntry::is_leaf::<F>);
    entries
}
