//! VM memory operations (faults through `prefault` and through a nested page fault
//! exit, scoped zaps, punch-holes, restarts, refused prepares) against core's page model
//! (`cloister_core::reference_models::vm_memory`, the same model and checks as the
//! property test `pin_01_pool_04_pool_06_pin_02_pin_03_vm_memory_matches_a_page_model`).
//! Operations are decoded with the property test's value sets and weights, widened now
//! and then to any GPA or length.

use crate::pick_or_raw;
use arbitrary::{Result, Unstructured};
use cloister_core::mmu::Scope;
use cloister_core::reference_models::vm_memory::{
    Layout, PRIVATE_GPAS, PRIVATE_PAGES, SHARED_GPA, SHARED_SIZE, VmHarness, VmOp,
};

const PAGE: u64 = 0x1000;
/// Operations one input runs at most. A fault may prepare and scrub a 2 MiB block, so
/// a step can be slow; longer sequences explore no more than several short ones.
pub const MAX_OPS: usize = 64;
const SCOPES: [Scope; 3] = [Scope::Private, Scope::Shared, Scope::Both];

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(layout) = layout(&mut u) else { return };
    let mut harness = VmHarness::new(layout);
    for step in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = op(&mut u, layout) else { break };
        if let Err(mismatch) = harness.step(op) {
            panic!("privmem_ops: {layout:?} step {step} {op:?}: {mismatch}");
        }
    }
}

fn layout(u: &mut Unstructured<'_>) -> Result<Layout> {
    Ok(Layout {
        private_gpa: *u.choose(&PRIVATE_GPAS)?,
        pages: *u.choose(&PRIVATE_PAGES)?,
        huge: u.arbitrary()?,
    })
}

/// A page of the private slot: one at its edges or any.
fn private_page(u: &mut Unstructured<'_>, layout: Layout) -> Result<u64> {
    if u.arbitrary()? {
        u.choose(&layout.edge_pages()).copied()
    } else {
        u.int_in_range(0..=layout.pages - 1)
    }
}

fn page_count(u: &mut Unstructured<'_>, layout: Layout) -> Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=3 => u.int_in_range(1..=7)?,
        4..=5 => u.int_in_range(1..=599)?,
        6 => 512,
        _ => layout.pages,
    })
}

fn op(u: &mut Unstructured<'_>, layout: Layout) -> Result<VmOp> {
    let base = layout.private_gpa;
    // The property test's weights: 8 fault, 3 zap, 2 punch-hole, 1 restart.
    Ok(match u.int_in_range(0..=13u8)? {
        0..=7 => {
            let gpa = match u.int_in_range(0..=9u8)? {
                0..=5 => base + private_page(u, layout)? * PAGE + u.int_in_range(0..=PAGE - 1)?,
                6..=7 => SHARED_GPA + u.int_in_range(0..=SHARED_SIZE - 1)?,
                8 => *u.choose(&layout.outside_gpas())?,
                _ => u.arbitrary()?,
            };
            VmOp::Fault {
                gpa,
                vcpu: u.arbitrary()?,
                refuse: u.ratio(1, 10)?,
            }
        }
        8..=10 => {
            let gpa = match u.int_in_range(0..=6u8)? {
                0..=3 => base + private_page(u, layout)? * PAGE,
                4 => SHARED_GPA + u.int_in_range(0..=511)? * PAGE,
                5 => 0,
                _ => u.arbitrary()?,
            };
            let len = match u.int_in_range(0..=5u8)? {
                0..=3 => page_count(u, layout)? * PAGE,
                4 => u64::MAX,
                _ => u.arbitrary()?,
            };
            VmOp::Zap {
                gpa,
                len,
                scope: *u.choose(&SCOPES)?,
            }
        }
        11..=12 => {
            let (gpa, len) = match u.int_in_range(0..=10u8)? {
                0..=7 => (
                    base + private_page(u, layout)? * PAGE,
                    page_count(u, layout)? * PAGE,
                ),
                8 => (
                    base + private_page(u, layout)? * PAGE + u.int_in_range(1..=PAGE - 1)?,
                    u.int_in_range(1..=3)? * PAGE,
                ),
                9 => (
                    SHARED_GPA + u.int_in_range(0..=511)? * PAGE,
                    u.int_in_range(1..=3)? * PAGE,
                ),
                _ => (
                    pick_or_raw(u, &[base, SHARED_GPA], 2)?,
                    pick_or_raw(u, &[0, 1, PAGE - 1, u64::MAX], 2)?,
                ),
            };
            VmOp::PunchHole { gpa, len }
        }
        _ => VmOp::Restart,
    })
}
