//! Property tests: random sequences of operations against the reference models of
//! `reference_models`, with the invariants of ../shared/design/ARCHITECTURE.md
//! ("Invariants worth a test each") and the PIN-/POOL- items of
//! ../shared/specs/confidential-memory.md §H checked after every step.
//!
//! - `mmu_second_level_table_matches_a_block_model`: [`SecondLevelTable`] alone (map,
//!   lookup, clear, is_vacant, scoped zap, freeze/unfreeze) against a map of 2 MiB blocks.
//! - `pin_01_pool_04_pool_06_pin_02_pin_03_vm_memory_matches_a_page_model`: the VM
//!   (faults through `prefault` and through a scripted vCPU, scoped zaps, punch-holes,
//!   restarts, refused prepares) against a model of its private pages, with a vendor
//!   that checks at every release that no leaf maps the frame.
//!
//! The models, the interpreters and every check live in `reference_models`, which the
//! fuzz targets (fuzz/) drive too; this file only generates the operations.
//!
//! `PROPTEST_CASES=n` overrides the case counts.
//!
//! [`SecondLevelTable`]: crate::mmu::SecondLevelTable

use crate::mmu::Scope;
use crate::reference_models::second_level_table::{
    BLOCKS, FRAMES_2M, FRAMES_4K, LOOKUP_OFFSETS, MISALIGNED_FRAME_2M, MISALIGNED_FRAME_4K,
    MISALIGNED_OFFSETS, MmuOp, NewValue, PAGES, SCOPES, TableHarness, UNFREEZE_FRAMES, ZAP_LENGTHS,
    table_gpa as gpa_of,
};
use crate::reference_models::vm_memory::{
    Layout, PRIVATE_GPAS, PRIVATE_PAGES, SHARED_GPA, SHARED_SIZE, VmHarness, VmOp,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::format;

/// `PROPTEST_CASES` if set (for longer runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

const PAGE: u64 = 0x1000;
const HUGE: u64 = 0x20_0000;

// ---------------------------------------------------------------------------------------
// The second-level table against a block model.
// ---------------------------------------------------------------------------------------

/// GPAs spread over different tables at every level, so walks share and split tables.
fn table_gpa() -> impl Strategy<Value = u64> {
    (select(BLOCKS.to_vec()), select(PAGES.to_vec())).prop_map(|(b, p)| gpa_of(b, p))
}

/// Mostly aligned, sometimes not.
fn sub_page() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(0u64), 1 => select(MISALIGNED_OFFSETS.to_vec())]
}

fn scope() -> impl Strategy<Value = Scope> {
    select(SCOPES.to_vec())
}

fn mmu_op() -> impl Strategy<Value = MmuOp> {
    let pa_4k = prop_oneof![
        8 => select(FRAMES_4K.to_vec()),
        1 => Just(MISALIGNED_FRAME_4K),
    ];
    let pa_2m = prop_oneof![
        8 => select(FRAMES_2M.to_vec()),
        1 => Just(MISALIGNED_FRAME_2M),
    ];
    let huge_gpa = || {
        (table_gpa(), prop::bool::weighted(0.8))
            .prop_map(|(gpa, aligned)| if aligned { gpa & !(HUGE - 1) } else { gpa })
    };
    let len = select(ZAP_LENGTHS.to_vec());
    let value = prop_oneof![
        3 => Just(NewValue::Restore),
        1 => Just(NewValue::Zero),
        1 => (select(UNFREEZE_FRAMES.to_vec()), any::<bool>())
            .prop_map(|(pa, pinned)| NewValue::Leaf { pa, pinned }),
    ];
    prop_oneof![
        6 => (table_gpa(), sub_page(), pa_4k, any::<bool>())
            .prop_map(|(gpa, off, pa, pinned)| MmuOp::Map { gpa: gpa + off, pa, huge: false, pinned }),
        3 => (huge_gpa(), pa_2m, any::<bool>())
            .prop_map(|(gpa, pa, pinned)| MmuOp::Map { gpa, pa, huge: true, pinned }),
        3 => (table_gpa(), select(LOOKUP_OFFSETS.to_vec()))
            .prop_map(|(gpa, off)| MmuOp::Lookup { gpa: gpa + off }),
        2 => (table_gpa(), sub_page()).prop_map(|(gpa, off)| MmuOp::Clear { gpa: gpa + off }),
        2 => (table_gpa(), any::<bool>()).prop_map(|(gpa, huge)| MmuOp::IsVacant {
            gpa: if huge { gpa & !(HUGE - 1) } else { gpa },
            huge
        }),
        3 => (table_gpa(), sub_page(), len, scope())
            .prop_map(|(gpa, off, len, scope)| MmuOp::Zap { gpa: gpa + off, len, scope }),
        2 => (table_gpa(), any::<bool>()).prop_map(|(gpa, huge)| MmuOp::Freeze {
            gpa: if huge { gpa & !(HUGE - 1) } else { gpa },
            huge
        }),
        2 => (table_gpa(), any::<bool>(), value).prop_map(|(gpa, huge, value)| {
            MmuOp::Unfreeze { gpa: if huge { gpa & !(HUGE - 1) } else { gpa }, huge, value }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Every result of every call equals the model's, and after every step the table
    /// holds exactly the model's entries (found by a walk of its own).
    #[test]
    fn mmu_second_level_table_matches_a_block_model(
        ops in prop::collection::vec(mmu_op(), 1..60)
    ) {
        let mut harness = TableHarness::new();
        for (step, op) in ops.into_iter().enumerate() {
            harness
                .step(op)
                .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The VM against a page model.
// ---------------------------------------------------------------------------------------

/// 4, 6 and 8 MiB private slots (the 6 MiB one with a 12 KiB tail too short for a 2 MiB
/// block), at GPA 0 or at 4 MiB (with a hole below), with and without 2 MiB mappings.
fn layout() -> impl Strategy<Value = Layout> {
    (
        select(PRIVATE_GPAS.to_vec()),
        select(PRIVATE_PAGES.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(private_gpa, pages, huge)| Layout {
            private_gpa,
            pages,
            huge,
        })
}

fn private_page(layout: Layout) -> impl Strategy<Value = u64> {
    prop_oneof![select(layout.edge_pages().to_vec()), 0..layout.pages,]
}

fn vm_op(layout: Layout) -> impl Strategy<Value = VmOp> {
    let base = layout.private_gpa;
    let gpa = prop_oneof![
        6 => (private_page(layout), 0..PAGE).prop_map(move |(p, off)| base + p * PAGE + off),
        2 => (0..SHARED_SIZE).prop_map(|off| SHARED_GPA + off),
        1 => select(layout.outside_gpas().to_vec()),
    ];
    let page_count = prop_oneof![
        4 => 1..8u64,
        2 => 1..600u64,
        1 => Just(512u64),
        1 => Just(layout.pages),
    ];
    let zap_start = prop_oneof![
        4 => private_page(layout).prop_map(move |p| base + p * PAGE),
        1 => (0..512u64).prop_map(|p| SHARED_GPA + p * PAGE),
        1 => Just(0u64),
    ];
    let zap_len = prop_oneof![
        4 => page_count.clone().prop_map(|n| n * PAGE),
        1 => Just(u64::MAX),
    ];
    let punch = prop_oneof![
        8 => (private_page(layout), page_count.clone())
            .prop_map(move |(p, n)| (base + p * PAGE, n * PAGE)),
        1 => (private_page(layout), 1..PAGE, 1..4u64)
            .prop_map(move |(p, off, n)| (base + p * PAGE + off, n * PAGE)),
        1 => (0..512u64, 1..4u64).prop_map(|(p, n)| (SHARED_GPA + p * PAGE, n * PAGE)),
    ];
    prop_oneof![
        8 => (gpa, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(gpa, vcpu, refuse)| VmOp::Fault { gpa, vcpu, refuse }),
        3 => (zap_start, zap_len, scope()).prop_map(|(gpa, len, scope)| VmOp::Zap { gpa, len, scope }),
        2 => punch.prop_map(|(gpa, len)| VmOp::PunchHole { gpa, len }),
        1 => Just(VmOp::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// PIN-01/POOL-04 (no release while mapped, checked at the release), PIN-03 (same
    /// frame on refault), accounting, POOL-06 (zeros on first touch, data kept until a
    /// punch-hole), PIN-02 (restarts keep prepared frames), POOL-07 (release zaps all).
    #[test]
    fn pin_01_pool_04_pool_06_pin_02_pin_03_vm_memory_matches_a_page_model(
        (layout, ops) in layout().prop_flat_map(|l| (Just(l), prop::collection::vec(vm_op(l), 1..48)))
    ) {
        let mut harness = VmHarness::new(layout);
        for (step, op) in ops.into_iter().enumerate() {
            harness
                .step(op)
                .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        }
    }
}
