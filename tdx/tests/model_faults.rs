//! Injected contention (spec digest C.4.6, G.2, TDX-04): lock holders and injected
//! statuses refuse a call with no state change; the call log records every call.

mod model_support;

use cloister_tdx::abi::seamcall;
use cloister_tdx::model::{EntryState, LoggedCall, TdxModel};
use cloister_tdx::{Level, Status, TdxModule};
use model_support::{G, K4, M2, MEMORY_LEAVES, Td};

const BUSY: Result<(), Status> = Err(Status::OPERAND_BUSY);

/// What a call may change, for "nothing changed" checks.
fn snapshot(m: &TdxModel) -> impl PartialEq + std::fmt::Debug + use<> {
    let entries: Vec<_> = m.entries().collect();
    let pages: Vec<_> = m.owned_pages().collect();
    (
        entries,
        pages,
        m.epoch(),
        m.op_state(),
        m.child_count(),
        m.mrtd_extends(),
    )
}

/// A building TD with a MAPPED 4K page and a table at 2M over `G + M2` with nothing
/// under it, so every memory leaf has something it could act on.
fn building() -> Td {
    let mut td = Td::new(1);
    td.make(G, Level::L4K, EntryState::Mapped);
    td.make(G + M2, Level::L2M, EntryState::NlMapped);
    td
}

/// `building()`, with the table at `G + M2` blocked if `leaf` is UNBLOCK.
fn ready_for(leaf: u64) -> Td {
    let mut td = building();
    if leaf == seamcall::TDH_MEM_RANGE_UNBLOCK {
        td.m.range_block(G + M2, Level::L2M).unwrap();
    }
    td
}

/// One call of `leaf` that succeeds on `ready_for(leaf)`.
fn call(td: &mut Td, leaf: u64) -> Result<(), Status> {
    let page = td.page();
    match leaf {
        seamcall::TDH_MEM_SEPT_ADD => td.m.sept_add(G + 2 * M2, Level::L2M, page),
        seamcall::TDH_MEM_PAGE_ADD => td.m.page_add(G + K4, page, page + 0x1000),
        seamcall::TDH_MEM_PAGE_AUG => td.m.page_aug(G + 2 * K4, Level::L4K, page),
        seamcall::TDH_MEM_RANGE_BLOCK => td.m.range_block(G, Level::L4K),
        seamcall::TDH_MEM_RANGE_UNBLOCK => td.m.range_unblock(G + M2, Level::L2M),
        seamcall::TDH_MEM_TRACK => td.m.track(),
        seamcall::TDH_MEM_PAGE_REMOVE => td.m.page_remove(G, Level::L4K).map(drop),
        seamcall::TDH_MEM_SEPT_REMOVE => td.m.sept_remove(G + M2, Level::L2M).map(drop),
        seamcall::TDH_MR_EXTEND => td.m.mr_extend(G),
        seamcall::TDH_MR_FINALIZE => td.m.mr_finalize(),
        _ => unreachable!("leaf {leaf}"),
    }
}

#[test]
fn injected_busy_changes_nothing_and_the_retry_succeeds() {
    for leaf in MEMORY_LEAVES {
        let mut td = ready_for(leaf);
        td.m.inject(leaf, 1, Status::OPERAND_BUSY);
        let before = snapshot(&td.m);
        assert_eq!(call(&mut td, leaf), BUSY, "leaf {leaf}");
        assert_eq!(snapshot(&td.m), before, "leaf {leaf}");
        assert_eq!(call(&mut td, leaf), Ok(()), "leaf {leaf}: the retry");
        td.m.check_invariants().unwrap();
    }
}

#[test]
fn injected_busy_leaves_the_entry_as_it_was() {
    let mut td = building();
    td.m.inject(seamcall::TDH_MEM_RANGE_BLOCK, 1, Status::OPERAND_BUSY);
    assert_eq!(td.m.range_block(G, Level::L4K), BUSY);
    assert_eq!(td.m.entry(G, Level::L4K).unwrap().state, EntryState::Mapped);
    assert_eq!(td.m.range_block(G, Level::L4K), Ok(()));
}

#[test]
fn inject_fires_on_the_nth_call_of_its_leaf_only() {
    let mut td = building();
    td.m.inject(seamcall::TDH_MEM_TRACK, 3, Status::OPERAND_BUSY);
    assert_eq!(td.m.track(), Ok(()));
    let page = td.page();
    td.m.page_aug(G + K4, Level::L4K, page).unwrap();
    assert_eq!(td.m.track(), Ok(()));
    assert_eq!(td.m.track(), BUSY);
    assert_eq!(td.m.track(), Ok(()));
}

#[test]
fn inject_any_status_on_any_leaf_including_vp_enter() {
    let mut td = building();
    td.finalize();
    td.m.inject(seamcall::TDH_VP_ENTER, 1, Status::OPERAND_BUSY);
    td.m.inject(seamcall::TDH_MEM_PAGE_AUG, 1, Status::RND_NO_ENTROPY);
    assert_eq!(td.m.vp_enter(0), BUSY);
    assert!(!td.m.in_guest(0));
    assert_eq!(td.m.vp_enter(0), Ok(()));
    let page = td.page();
    let augmented = td.m.page_aug(G + K4, Level::L4K, page);
    assert_eq!(augmented, Err(Status::RND_NO_ENTROPY));
}

#[test]
fn shared_tree_lock_holder_blocks_only_exclusive_users() {
    let mut td = building();
    td.m.hold_tree_lock(false);
    let before = snapshot(&td.m);
    assert_eq!(td.m.range_block(G, Level::L4K), BUSY);
    assert_eq!(td.m.sept_remove(G + M2, Level::L2M).map(drop), BUSY);
    let (page, source) = (td.page(), td.page());
    assert_eq!(td.m.page_add(G + K4, page, source), BUSY, "TDR exclusive");
    assert_eq!(td.m.mr_extend(G), BUSY, "TDR exclusive");
    assert_eq!(td.m.mr_finalize(), BUSY, "TDR exclusive");
    assert_eq!(snapshot(&td.m), before);
    // Shared users and TRACK go ahead.
    assert_eq!(td.m.page_aug(G + K4, Level::L4K, page), Ok(()));
    let table = td.page();
    assert_eq!(td.m.sept_add(G + 2 * M2, Level::L2M, table), Ok(()));
    assert_eq!(td.m.page_remove(G, Level::L4K).map(drop), Ok(()));
    assert_eq!(td.m.track(), Ok(()));
    td.m.release_tree_lock();
    assert_eq!(td.m.range_block(G + K4, Level::L4K), Ok(()));
}

#[test]
fn exclusive_tree_lock_holder_blocks_every_tree_user() {
    let mut td = building();
    td.m.hold_tree_lock(true);
    let before = snapshot(&td.m);
    let page = td.page();
    assert_eq!(td.m.page_aug(G + K4, Level::L4K, page), BUSY);
    assert_eq!(td.m.sept_add(G + 2 * M2, Level::L2M, page), BUSY);
    assert_eq!(td.m.page_remove(G, Level::L4K).map(drop), BUSY);
    assert_eq!(td.m.range_block(G, Level::L4K), BUSY);
    assert_eq!(td.m.range_unblock(G, Level::L4K), BUSY);
    assert_eq!(snapshot(&td.m), before);
    assert_eq!(
        td.m.track(),
        Ok(()),
        "TRACK takes the epoch lock, not the tree"
    );
}

#[test]
fn checks_before_the_tree_lock_still_answer_first() {
    // The module checks operands before it takes the tree lock.
    let mut td = building();
    td.m.hold_tree_lock(true);
    let invalid = td.m.range_block(G + 8, Level::L4K);
    assert_eq!(invalid, Err(Status::OPERAND_INVALID));
}

#[test]
fn epoch_lock_holder_makes_track_busy() {
    let mut td = building();
    td.finalize();
    td.m.hold_epoch_lock(false);
    let epoch = td.m.epoch();
    assert_eq!(td.m.track(), BUSY);
    assert_eq!(td.m.epoch(), epoch);
    assert_eq!(td.m.vp_enter(0), Ok(()), "VP.ENTER shares the epoch lock");
    td.m.vp_exit(0);
    td.m.hold_epoch_lock(true);
    assert_eq!(td.m.vp_enter(0), BUSY);
    td.m.release_epoch_lock();
    assert_eq!(td.m.track(), Ok(()));
}

#[test]
fn the_log_records_every_call_with_its_status() {
    let mut td = building();
    td.m.clear_log();
    let page = td.page();
    td.m.page_aug(G + K4, Level::L4K, page).unwrap();
    let twice = td.m.page_aug(G + K4, Level::L4K, page);
    assert_eq!(twice, Err(Status::EPT_ENTRY_STATE_INCORRECT));
    td.m.track().unwrap();
    td.m.page_wbinvd(page + M2).unwrap();
    let aug = |status| LoggedCall {
        leaf: seamcall::TDH_MEM_PAGE_AUG,
        gpa: G + K4,
        level: Some(Level::L4K),
        status,
    };
    let expected = [
        aug(Status::SUCCESS),
        aug(Status::EPT_ENTRY_STATE_INCORRECT),
        LoggedCall {
            leaf: seamcall::TDH_MEM_TRACK,
            gpa: 0,
            level: None,
            status: Status::SUCCESS,
        },
        LoggedCall {
            leaf: seamcall::TDH_PHYMEM_PAGE_WBINVD,
            gpa: page + M2,
            level: None,
            status: Status::SUCCESS,
        },
    ];
    assert_eq!(td.m.log(), expected);
    assert_eq!(td.m.count(seamcall::TDH_MEM_PAGE_AUG), 2);
    td.m.clear_log();
    assert!(td.m.log().is_empty());
}
