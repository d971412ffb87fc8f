//! Unit tests of the model's parts; the SEAMCALL behaviour is tested through the
//! public API in `tdx/tests/model_*.rs`.

use super::cache::DirtyLines;
use super::epoch::Epoch;
use super::pamt::{PageType, Pamt};
use super::sept::{Entry, EntryState, Sept};
use crate::abi::Level;
use crate::status::Status;

const G: u64 = 0x4020_3000;

fn entry(state: EntryState, hpa: u64) -> Entry {
    Entry {
        state,
        hpa,
        bepoch: 0,
    }
}

/// A tree linking down to the 4K table covering `G`.
fn linked_to_4k() -> Sept {
    let mut sept = Sept::default();
    sept.set(G, Level::L512G, entry(EntryState::NlMapped, 0x1000));
    sept.set(G, Level::L1G, entry(EntryState::NlMapped, 0x2000));
    sept.set(G, Level::L2M, entry(EntryState::NlMapped, 0x3000));
    sept
}

#[test]
fn walk_reaches_a_free_entry_below_linked_tables() {
    let sept = linked_to_4k();
    assert_eq!(
        sept.reach(G, Level::L4K).map(|e| e.state),
        Ok(EntryState::Free)
    );
}

#[test]
fn walk_stops_at_a_missing_table() {
    let mut sept = linked_to_4k();
    sept.remove(G, Level::L1G);
    assert_eq!(sept.walk(G, Level::L4K).0, Level::L1G);
    assert_eq!(sept.reach(G, Level::L4K), Err(Status::EPT_WALK_FAILED));
}

#[test]
fn walk_stops_at_a_blocked_table_and_at_a_larger_leaf() {
    let mut sept = linked_to_4k();
    sept.set(G, Level::L2M, entry(EntryState::NlBlocked, 0x3000));
    assert_eq!(sept.reach(G, Level::L4K), Err(Status::EPT_WALK_FAILED));
    sept.set(G, Level::L2M, entry(EntryState::Mapped, 0x20_0000));
    let (level, leaf) = sept.walk(G, Level::L4K);
    assert_eq!((level, leaf.state), (Level::L2M, EntryState::Mapped));
}

#[test]
fn table_is_empty_looks_only_at_the_tables_own_entries() {
    let mut sept = linked_to_4k();
    assert!(sept.table_is_empty(G, Level::L2M));
    // A 4K entry in the next 2M table is not a child of this one.
    sept.set(
        G + Level::L2M.span(),
        Level::L4K,
        entry(EntryState::Pending, 0x9000),
    );
    assert!(sept.table_is_empty(G, Level::L2M));
    sept.set(G, Level::L4K, entry(EntryState::Pending, 0x8000));
    assert!(!sept.table_is_empty(G, Level::L2M));
    assert!(!sept.table_is_empty(G, Level::L1G));
}

#[test]
fn pamt_refuses_pages_overlapping_an_owned_range() {
    let mut pamt = Pamt::default();
    pamt.assign(0x20_0000, Level::L2M, PageType::Reg, 0x1000);
    assert_eq!(pamt.page_type(0x20_5000), PageType::Reg);
    assert_eq!(pamt.page_type(0x40_0000), PageType::Nda);
    let inside = pamt.check_free(0x20_5000, Level::L4K);
    assert_eq!(inside, Err(Status::PAGE_METADATA_INCORRECT));
    pamt.assign(0x60_1000, Level::L4K, PageType::Sept, 0x1000);
    let covering = pamt.check_free(0x60_0000, Level::L2M);
    assert_eq!(covering, Err(Status::PAGE_METADATA_INCORRECT));
    let unaligned = pamt.check_free(0x80_1000, Level::L2M);
    assert_eq!(unaligned, Err(Status::OPERAND_INVALID));
    assert_eq!(pamt.check_free(0x80_0000, Level::L2M), Ok(()));
}

#[test]
fn dirty_lines_cover_every_4k_page_of_a_large_page() {
    let mut dirty = DirtyLines::default();
    dirty.touch(0x20_0000, Level::L2M);
    assert!(dirty.is_dirty(0x20_0000) && dirty.is_dirty(0x3f_f123));
    assert!(!dirty.is_dirty(0x40_0000));
    dirty.clean(0x3f_f000);
    assert!(!dirty.is_dirty(0x3f_f000) && dirty.is_dirty(0x3f_e000));
}

#[test]
fn tdx_15_epoch_tracked_after_one_track_once_its_vcpus_left() {
    let mut epoch = Epoch::new();
    let blocked_in = epoch.current();
    let entered = epoch.enter();
    assert!(!epoch.is_tracked(blocked_in));
    epoch.advance().unwrap();
    assert!(
        !epoch.is_tracked(blocked_in),
        "a vCPU of the blocking epoch still runs"
    );
    epoch.exit(entered);
    assert!(epoch.is_tracked(blocked_in));
    assert!(!epoch.is_tracked(epoch.current()));
}

#[test]
fn tdx_15_epoch_cannot_advance_twice_past_a_running_vcpu() {
    let mut epoch = Epoch::new();
    let entered = epoch.enter();
    assert_eq!(epoch.advance(), Ok(()));
    assert_eq!(epoch.advance(), Err(Status::PREVIOUS_TLB_EPOCH_BUSY));
    epoch.exit(entered);
    assert_eq!(epoch.advance(), Ok(()));
    assert!(epoch.is_tracked(entered), "two epochs later");
}
