//! Second-level table operations against core's block model
//! (`cloister_core::reference_models::second_level_table`, the same model and checks as
//! the property test `mmu_second_level_table_matches_a_block_model`). Operations are
//! decoded as the property test generates them (same value tables, same weights), with
//! some values widened to any page in the 47-bit GPA space and any frame the entry
//! format can hold.

use crate::pick_or_raw;
use arbitrary::{Result, Unstructured};
use cloister_core::reference_models::second_level_table::{
    BLOCKS, FRAMES_2M, FRAMES_4K, LOOKUP_OFFSETS, MISALIGNED_FRAME_2M, MISALIGNED_FRAME_4K,
    MISALIGNED_OFFSETS, MmuOp, NewValue, PAGES, SCOPES, TableHarness, UNFREEZE_FRAMES, ZAP_LENGTHS,
    table_gpa,
};

const PAGE: u64 = 0x1000;
const HUGE: u64 = 0x20_0000;
/// Operations one input runs at most: a long sequence explores no more than several
/// short ones, and every operation allocates at most three of the harness's tables.
pub const MAX_OPS: usize = 64;
/// Raw GPAs stay below 2^47: far from the 48 bits the table translates even after the
/// offsets a lookup adds (the VM refuses wider GPAs before they reach the table).
const RAW_GPA_MASK: u64 = (1 << 47) - 1;
/// The address field of the test format's entries (bits 12..52); the bits above hold
/// PINNED and FROZEN, which no caller passes as part of a frame.
const FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut harness = TableHarness::new();
    for step in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = op(&mut u) else { break };
        if let Err(mismatch) = harness.step(op) {
            panic!("mmu_ops: step {step} {op:?}: {mismatch}");
        }
    }
}

/// A GPA of the property test's set (blocks and pages that spread over the table's
/// levels), or one time in eight any page-aligned GPA below 2^47.
fn gpa(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.ratio(1, 8)? {
        return Ok(u.arbitrary::<u64>()? & RAW_GPA_MASK & !(PAGE - 1));
    }
    Ok(table_gpa(*u.choose(&BLOCKS)?, *u.choose(&PAGES)?))
}

/// Mostly 0, sometimes an offset that misaligns the GPA.
fn sub_page(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.ratio(1, 7)? {
        u.choose(&MISALIGNED_OFFSETS).copied()
    } else {
        Ok(0)
    }
}

/// Mostly 2 MiB aligned, as the property test's huge GPAs.
fn huge_gpa(u: &mut Unstructured<'_>, huge: bool) -> Result<u64> {
    let gpa = gpa(u)?;
    Ok(if huge { gpa & !(HUGE - 1) } else { gpa })
}

fn frame(u: &mut Unstructured<'_>, huge: bool) -> Result<u64> {
    let (frames, misaligned, align): (&[u64], u64, u64) = if huge {
        (&FRAMES_2M, MISALIGNED_FRAME_2M, HUGE)
    } else {
        (&FRAMES_4K, MISALIGNED_FRAME_4K, PAGE)
    };
    Ok(match u.int_in_range(0..=9)? {
        0 => misaligned,
        1 => u.arbitrary::<u64>()? & FRAME_MASK & !(align - 1),
        _ => *u.choose(frames)?,
    })
}

fn op(u: &mut Unstructured<'_>) -> Result<MmuOp> {
    // The property test's weights: 6 map 4K, 3 map 2M, 3 lookup, 2 clear, 2 is_vacant,
    // 3 zap, 2 freeze, 2 unfreeze.
    Ok(match u.int_in_range(0..=22u8)? {
        0..=5 => MmuOp::Map {
            gpa: gpa(u)? + sub_page(u)?,
            pa: frame(u, false)?,
            huge: false,
            pinned: u.arbitrary()?,
        },
        6..=8 => {
            let aligned = !u.ratio(1, 5)?;
            MmuOp::Map {
                gpa: huge_gpa(u, aligned)?,
                pa: frame(u, true)?,
                huge: true,
                pinned: u.arbitrary()?,
            }
        }
        9..=11 => MmuOp::Lookup {
            gpa: gpa(u)? + u.choose(&LOOKUP_OFFSETS)?,
        },
        12..=13 => MmuOp::Clear {
            gpa: gpa(u)? + sub_page(u)?,
        },
        14..=15 => {
            let huge = u.arbitrary()?;
            MmuOp::IsVacant {
                gpa: huge_gpa(u, huge)?,
                huge,
            }
        }
        16..=18 => MmuOp::Zap {
            gpa: gpa(u)? + sub_page(u)?,
            len: pick_or_raw(u, &ZAP_LENGTHS, 8)?,
            scope: *u.choose(&SCOPES)?,
        },
        19..=20 => {
            let huge = u.arbitrary()?;
            MmuOp::Freeze {
                gpa: huge_gpa(u, huge)?,
                huge,
            }
        }
        _ => {
            let huge = u.arbitrary()?;
            let gpa = huge_gpa(u, huge)?;
            let value = match u.int_in_range(0..=4u8)? {
                0..=2 => NewValue::Restore,
                3 => NewValue::Zero,
                _ => NewValue::Leaf {
                    pa: if u.ratio(1, 4)? {
                        frame(u, huge)?
                    } else {
                        *u.choose(&UNFREEZE_FRAMES)?
                    },
                    pinned: u.arbitrary()?,
                },
            };
            MmuOp::Unfreeze { gpa, huge, value }
        }
    })
}
