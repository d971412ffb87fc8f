//! The hypervisor's side of the simulated TD's machine: table pages and host frames,
//! with a journal shared with the module recorder so tests see the order of events.

use cloister_core::host::{CpuidResult, Host};
use cloister_core::mmu::{ENTRIES, TableMemory};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Table pages are handed out from here up; frames of pools lie below.
pub const TABLE_BASE: u64 = 0x7000_0000_0000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A SEAMCALL (or a kick) by name, with the GPA or page it named.
    Module(&'static str, u64),
    /// The hypervisor overwrote a frame with zeros.
    Cleared(u64),
}

pub type Journal = Rc<RefCell<Vec<Event>>>;

pub struct SimHost {
    tables: Vec<Box<[u64; ENTRIES]>>,
    free_tables: Vec<u64>,
    /// Frames that hold anything but zeros (all others read as zeros), so a GiB of
    /// private memory costs only what the workload wrote.
    frames: BTreeMap<u64, Box<[u8; 4096]>>,
    pub journal: Journal,
}

impl SimHost {
    pub fn new(journal: Journal) -> Self {
        Self {
            tables: Vec::new(),
            free_tables: Vec::new(),
            frames: BTreeMap::new(),
            journal,
        }
    }

    /// Table pages handed out and not given back.
    pub fn tables_in_use(&self) -> usize {
        self.tables.len() - self.free_tables.len()
    }

    pub fn frame_is_zero(&self, pa: u64) -> bool {
        !self.frames.contains_key(&pa)
    }

    pub fn write_frame(&mut self, pa: u64, byte: u8) {
        self.with_frame(pa, |frame| frame.fill(byte));
    }
}

impl TableMemory for SimHost {
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

impl Host for SimHost {
    fn with_frame<R>(&mut self, pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R {
        assert_eq!(pa % 4096, 0);
        let mut frame = self
            .frames
            .remove(&pa)
            .unwrap_or_else(|| Box::new([0; 4096]));
        let was_zero = frame.iter().all(|&b| b == 0);
        let result = f(&mut frame);
        if frame.iter().any(|&b| b != 0) {
            self.frames.insert(pa, frame);
        } else if !was_zero {
            self.journal.borrow_mut().push(Event::Cleared(pa));
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
