//! The hypervisor's machine for the SEV tests: table pages, host frames, and the model
//! of the platform, consulted on every frame access the hypervisor makes.

use cloister_core::host::{CpuidResult, Host};
use cloister_core::mmu::{ENTRIES, TableMemory};
use cloister_svm::sev::platform_model::SevModel;
use cloister_svm::sev::rmp::RmpSize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Table pages are handed out from here up; pools and context pages lie below.
pub const TABLE_BASE: u64 = 0x7000_0000_0000;

/// A frame access the hardware would refuse, or one that would lose data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub pa: u64,
    pub what: String,
}

pub struct SevHost {
    tables: Vec<Box<[u64; ENTRIES]>>,
    free_tables: Vec<u64>,
    /// Frames holding anything but zeros.
    frames: BTreeMap<u64, Box<[u8; 4096]>>,
    model: Rc<RefCell<SevModel>>,
    /// Every frame `with_frame` was called on, in order.
    pub accesses: Vec<u64>,
    /// Accesses the RMP check or the cache check refused.
    pub violations: Vec<Violation>,
}

impl SevHost {
    pub fn new(model: Rc<RefCell<SevModel>>) -> Self {
        Self {
            tables: Vec::new(),
            free_tables: Vec::new(),
            frames: BTreeMap::new(),
            model,
            accesses: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// The frame's bytes, read by the test (no check, no access recorded).
    pub fn peek(&self, pa: u64) -> [u8; 4096] {
        self.frames.get(&pa).map_or([0; 4096], |f| **f)
    }

    pub fn frame_is_zero(&self, pa: u64) -> bool {
        !self.frames.contains_key(&pa)
    }

    /// Forget the accesses recorded so far.
    pub fn take_accesses(&mut self) -> Vec<u64> {
        core::mem::take(&mut self.accesses)
    }

    /// The hypervisor's access to `pa`, checked as the hardware and the caches would:
    /// a write through a 4 KiB mapping (the board maps a private frame only for the
    /// call, `Host::with_frame`) to a frame the RMP assigns faults; a frame whose lines
    /// are still dirty under a guest key must not be touched, because those lines
    /// would later be written back over what the hypervisor wrote (PIN-05). Every call
    /// counts as a write: `with_frame` hands out the frame mutably.
    fn check(&mut self, pa: u64) {
        let mut model = self.model.borrow_mut();
        let rmp = &mut model.firmware.rmp;
        if rmp.dirty_guest_lines(pa) {
            self.violations.push(Violation {
                pa,
                what: "hypervisor access to a frame with dirty guest-key lines".into(),
            });
        }
        if let Some(fault) = rmp.host_write(pa, RmpSize::Size4K).fault() {
            self.violations.push(Violation {
                pa,
                what: fault.to_string(),
            });
        }
    }
}

impl TableMemory for SevHost {
    fn alloc_table(&mut self) -> Option<u64> {
        if let Some(pa) = self.free_tables.pop() {
            return Some(pa);
        }
        self.tables.push(Box::new([0; ENTRIES]));
        Some(TABLE_BASE + (self.tables.len() as u64 - 1) * 4096)
    }

    fn free_table(&mut self, pa: u64) {
        assert!(
            self.table(pa).iter().all(|&e| e == 0),
            "table page {pa:#x} freed dirty"
        );
        assert!(
            !self.free_tables.contains(&pa),
            "table page {pa:#x} freed twice"
        );
        self.free_tables.push(pa);
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        &mut self.tables[((pa - TABLE_BASE) / 4096) as usize]
    }
}

impl Host for SevHost {
    fn with_frame<R>(&mut self, pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
        assert_eq!(pa % 4096, 0);
        assert!(pa < TABLE_BASE, "with_frame on a table page {pa:#x}");
        self.check(pa);
        self.accesses.push(pa);
        let mut frame = self
            .frames
            .remove(&pa)
            .unwrap_or_else(|| Box::new([0; 4096]));
        let result = f(&mut frame);
        if frame.iter().any(|&b| b != 0) {
            self.frames.insert(pa, frame);
        }
        result
    }

    fn console_write(&mut self, _bytes: &[u8]) {}

    fn cpuid(&self, _leaf: u32, _subleaf: u32) -> CpuidResult {
        CpuidResult::default()
    }

    fn ticks(&self) -> u64 {
        0
    }
}
