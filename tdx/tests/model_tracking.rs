//! Removal in a running TD (BLOCK, TRACK, vCPUs out, then REMOVE; spec digest C.4.5,
//! TDX-05, TDX-15), the op-state gates, the walk, operand and PAMT checks.

mod model_support;

use cloister_tdx::abi::seamcall;
use cloister_tdx::model::{EntryState, KICK, OpState, PageType};
use cloister_tdx::{Level, Status, TdxModule};
use model_support::{CONTROL, G, K4, M2, TDR, Td};

/// A runnable TD with two vCPUs and a MAPPED 4K page at `G`.
fn running_with_mapped_page() -> (Td, u64) {
    let mut td = Td::new(2);
    td.finalize();
    let page = td.make(G, Level::L4K, EntryState::Mapped);
    (td, page)
}

#[test]
fn remove_without_block_is_gpa_range_not_blocked() {
    let (mut td, _) = running_with_mapped_page();
    let removed = td.m.page_remove(G, Level::L4K);
    assert_eq!(removed, Err(Status::GPA_RANGE_NOT_BLOCKED));
    assert_eq!(td.m.entry(G, Level::L4K).unwrap().state, EntryState::Mapped);
}

#[test]
fn remove_of_a_pending_page_without_block_is_gpa_range_not_blocked() {
    let mut td = Td::new(1);
    td.finalize();
    td.make(G, Level::L4K, EntryState::Pending);
    let removed = td.m.page_remove(G, Level::L4K);
    assert_eq!(removed, Err(Status::GPA_RANGE_NOT_BLOCKED));
}

#[test]
fn remove_after_block_before_track_is_tlb_tracking_not_done() {
    let (mut td, _) = running_with_mapped_page();
    td.m.range_block(G, Level::L4K).unwrap();
    let removed = td.m.page_remove(G, Level::L4K);
    assert_eq!(removed, Err(Status::TLB_TRACKING_NOT_DONE));
    assert_eq!(
        td.m.entry(G, Level::L4K).unwrap().state,
        EntryState::Blocked
    );
}

#[test]
fn remove_after_block_and_track_with_no_vcpu_running_returns_the_page() {
    let (mut td, page) = running_with_mapped_page();
    td.m.range_block(G, Level::L4K).unwrap();
    td.m.track().unwrap();
    assert_eq!(td.m.page_remove(G, Level::L4K), Ok(page));
    assert_eq!(td.m.entry(G, Level::L4K), None);
    assert_eq!(td.m.page_type(page), PageType::Nda);
}

#[test]
fn tdx_15_remove_waits_for_the_vcpus_that_entered_in_the_blocking_epoch() {
    let (mut td, page) = running_with_mapped_page();
    td.m.vp_enter(0).unwrap();
    td.m.range_block(G, Level::L4K).unwrap();
    td.m.track().unwrap();
    let removed = td.m.page_remove(G, Level::L4K);
    assert_eq!(removed, Err(Status::TLB_TRACKING_NOT_DONE));
    td.m.vp_exit(0);
    assert_eq!(td.m.page_remove(G, Level::L4K), Ok(page));
}

#[test]
fn tdx_15_a_vcpu_entering_after_track_does_not_hold_up_removal() {
    let (mut td, page) = running_with_mapped_page();
    td.m.range_block(G, Level::L4K).unwrap();
    td.m.track().unwrap();
    td.m.vp_enter(1).unwrap();
    assert_eq!(td.m.page_remove(G, Level::L4K), Ok(page));
}

#[test]
fn tdx_15_a_vcpu_entering_between_block_and_track_holds_up_removal() {
    let (mut td, _) = running_with_mapped_page();
    td.m.range_block(G, Level::L4K).unwrap();
    td.m.vp_enter(1).unwrap();
    td.m.track().unwrap();
    let removed = td.m.page_remove(G, Level::L4K);
    assert_eq!(removed, Err(Status::TLB_TRACKING_NOT_DONE));
}

#[test]
fn tdx_15_unblock_in_a_running_td_needs_tracking() {
    let (mut td, _) = running_with_mapped_page();
    td.m.range_block(G, Level::L4K).unwrap();
    let unblocked = td.m.range_unblock(G, Level::L4K);
    assert_eq!(unblocked, Err(Status::TLB_TRACKING_NOT_DONE));
    td.m.track().unwrap();
    assert_eq!(td.m.range_unblock(G, Level::L4K), Ok(()));
    assert_eq!(td.m.entry(G, Level::L4K).unwrap().state, EntryState::Mapped);
}

#[test]
fn tdx_15_sept_remove_in_a_running_td_needs_block_and_track() {
    let mut td = Td::new(1);
    td.finalize();
    let table = td.make(G, Level::L2M, EntryState::NlMapped);
    let removed = td.m.sept_remove(G, Level::L2M);
    assert_eq!(removed, Err(Status::GPA_RANGE_NOT_BLOCKED));
    td.m.range_block(G, Level::L2M).unwrap();
    let removed = td.m.sept_remove(G, Level::L2M);
    assert_eq!(removed, Err(Status::TLB_TRACKING_NOT_DONE));
    td.m.track().unwrap();
    assert_eq!(td.m.sept_remove(G, Level::L2M), Ok(table));
}

#[test]
fn track_with_a_vcpu_in_the_previous_epoch_is_previous_tlb_epoch_busy() {
    let (mut td, _) = running_with_mapped_page();
    td.m.vp_enter(0).unwrap();
    td.m.track().unwrap();
    let epoch = td.m.epoch();
    assert_eq!(td.m.track(), Err(Status::PREVIOUS_TLB_EPOCH_BUSY));
    assert_eq!(td.m.epoch(), epoch);
    td.m.vp_exit(0);
    assert_eq!(td.m.track(), Ok(()));
    assert_eq!(td.m.epoch(), epoch + 1);
}

#[test]
fn kick_after_track_lets_remove_proceed_in_kvm_order() {
    let (mut td, page) = running_with_mapped_page();
    td.m.vp_enter(0).unwrap();
    td.m.vp_enter(1).unwrap();
    td.m.clear_log();
    td.zap(G, Level::L4K);
    let leaves: Vec<_> = td.m.log().iter().map(|call| call.leaf).collect();
    let order = [
        seamcall::TDH_MEM_RANGE_BLOCK,
        seamcall::TDH_MEM_TRACK,
        KICK,
        seamcall::TDH_MEM_PAGE_REMOVE,
        seamcall::TDH_PHYMEM_PAGE_WBINVD,
    ];
    assert_eq!(leaves, order);
    assert!(!td.m.in_guest(0) && !td.m.in_guest(1));
    assert_eq!(td.m.kicks(), 1);
    assert!(!td.m.has_dirty_td_lines(page));
}

#[test]
fn removed_page_keeps_dirty_td_lines_until_wbinvd() {
    let (mut td, page) = running_with_mapped_page();
    td.m.range_block(G, Level::L4K).unwrap();
    td.m.track().unwrap();
    td.m.page_remove(G, Level::L4K).unwrap();
    assert!(td.m.has_dirty_td_lines(page));
    td.m.page_wbinvd(page).unwrap();
    assert!(!td.m.has_dirty_td_lines(page));
}

#[test]
fn page_wbinvd_of_a_page_the_td_owns_is_page_metadata_incorrect() {
    let (mut td, page) = running_with_mapped_page();
    let flushed = td.m.page_wbinvd(page);
    assert_eq!(flushed, Err(Status::PAGE_METADATA_INCORRECT));
    assert!(td.m.has_dirty_td_lines(page));
}

#[test]
fn pre_finalize_remove_needs_no_block_or_track() {
    let mut td = Td::new(1);
    let page = td.make(G, Level::L4K, EntryState::Mapped);
    assert_eq!(td.m.page_remove(G, Level::L4K), Ok(page));
    let table = td.m.entry(G, Level::L2M).unwrap().hpa;
    assert_eq!(td.m.sept_remove(G, Level::L2M), Ok(table));
    assert_eq!(td.m.count(seamcall::TDH_MEM_TRACK), 0);
}

#[test]
fn track_before_finalize_advances_the_epoch() {
    let mut td = Td::new(1);
    let epoch = td.m.epoch();
    assert_eq!(td.m.track(), Ok(()));
    assert_eq!(td.m.epoch(), epoch + 1);
}

#[test]
fn block_of_a_free_entry_is_ept_entry_state_incorrect_before_finalize() {
    // KVM reads this as "premapped but never PAGE.ADDed" (spec digest C.3).
    let mut td = Td::new(1);
    td.link(G, Level::L4K);
    let blocked = td.m.range_block(G, Level::L4K);
    assert_eq!(blocked, Err(Status::EPT_ENTRY_STATE_INCORRECT));
}

#[test]
fn sept_remove_with_a_live_child_is_ept_page_not_free() {
    for child in [EntryState::Pending, EntryState::Mapped, EntryState::Blocked] {
        let mut td = Td::new(1);
        td.make(G + 0x3000, Level::L4K, child);
        let removed = td.m.sept_remove(G, Level::L2M);
        assert_eq!(removed, Err(Status::EPT_PAGE_NOT_FREE), "{child:?}");
        assert_eq!(
            td.m.entry(G, Level::L2M).unwrap().state,
            EntryState::NlMapped
        );
    }
}

#[test]
fn sept_remove_with_a_child_table_is_ept_page_not_free() {
    let mut td = Td::new(1);
    td.link(G, Level::L4K);
    let removed = td.m.sept_remove(G, Level::L1G);
    assert_eq!(removed, Err(Status::EPT_PAGE_NOT_FREE));
}

#[test]
fn leaves_below_a_blocked_table_are_out_of_reach() {
    let mut td = Td::new(1);
    td.make(G, Level::L4K, EntryState::Pending);
    td.m.range_block(G, Level::L2M).unwrap();
    let walk_failed = Err(Status::EPT_WALK_FAILED);
    assert_eq!(td.m.page_remove(G, Level::L4K).map(drop), walk_failed);
    assert_eq!(td.m.range_block(G, Level::L4K), walk_failed);
    let page = td.page();
    assert_eq!(td.m.page_aug(G + K4, Level::L4K, page), walk_failed);
    assert_eq!(
        td.m.sept_remove(G, Level::L2M),
        Err(Status::EPT_PAGE_NOT_FREE)
    );
}

#[test]
fn aug_without_parent_is_ept_walk_failed() {
    let mut td = Td::new(1);
    td.finalize();
    let page = td.page();
    let augmented = td.m.page_aug(G, Level::L4K, page);
    assert_eq!(augmented, Err(Status::EPT_WALK_FAILED));
    td.link(G, Level::L2M);
    let augmented = td.m.page_aug(G, Level::L4K, page);
    assert_eq!(
        augmented,
        Err(Status::EPT_WALK_FAILED),
        "the 2M table is missing"
    );
    assert_eq!(td.m.page_type(page), PageType::Nda);
}

#[test]
fn page_add_without_parent_is_ept_walk_failed() {
    let mut td = Td::new(1);
    let (page, source) = (td.page(), td.page());
    let added = td.m.page_add(G, page, source);
    assert_eq!(added, Err(Status::EPT_WALK_FAILED));
}

#[test]
fn sept_add_without_parent_is_ept_walk_failed() {
    let mut td = Td::new(1);
    let page = td.page();
    let added = td.m.sept_add(G, Level::L2M, page);
    assert_eq!(added, Err(Status::EPT_WALK_FAILED));
}

#[test]
fn operations_below_a_2m_leaf_are_ept_walk_failed() {
    let mut td = Td::new(1);
    td.make(G, Level::L2M, EntryState::Pending);
    let page = td.page();
    let walk_failed = Err(Status::EPT_WALK_FAILED);
    assert_eq!(td.m.page_aug(G + K4, Level::L4K, page), walk_failed);
    assert_eq!(td.m.range_block(G, Level::L4K), walk_failed);
}

#[test]
fn page_add_after_finalize_is_op_state_incorrect() {
    let mut td = Td::new(1);
    td.link(G, Level::L4K);
    td.finalize();
    let (page, source) = (td.page(), td.page());
    let added = td.m.page_add(G, page, source);
    assert_eq!(added, Err(Status::OP_STATE_INCORRECT));
    assert_eq!(td.m.page_type(page), PageType::Nda);
}

#[test]
fn mr_extend_after_finalize_is_op_state_incorrect() {
    let mut td = Td::new(1);
    td.make(G, Level::L4K, EntryState::Mapped);
    assert_eq!(td.m.mr_extend(G + 0x100), Ok(()));
    assert_eq!(td.m.mrtd_extends(), 1);
    td.finalize();
    assert_eq!(td.m.mr_extend(G), Err(Status::OP_STATE_INCORRECT));
    assert_eq!(td.m.mrtd_extends(), 1);
}

#[test]
fn mr_extend_of_an_unaligned_chunk_is_operand_invalid() {
    let mut td = Td::new(1);
    td.make(G, Level::L4K, EntryState::Mapped);
    assert_eq!(td.m.mr_extend(G + 0x80), Err(Status::OPERAND_INVALID));
}

#[test]
fn mr_finalize_without_vcpus_is_no_vcpus() {
    let mut td = Td::new(0);
    assert_eq!(td.m.mr_finalize(), Err(Status::NO_VCPUS));
    assert_eq!(td.m.op_state(), OpState::Initialized);
}

#[test]
fn mr_finalize_twice_is_op_state_incorrect() {
    let mut td = Td::new(1);
    assert_eq!(td.m.mr_finalize(), Ok(()));
    assert_eq!(td.m.op_state(), OpState::Runnable);
    assert_eq!(td.m.mr_finalize(), Err(Status::OP_STATE_INCORRECT));
}

#[test]
fn vp_enter_before_finalize_is_op_state_incorrect() {
    let mut td = Td::new(1);
    assert_eq!(td.m.vp_enter(0), Err(Status::OP_STATE_INCORRECT));
    assert!(!td.m.in_guest(0));
}

#[test]
fn aug_before_finalize_is_allowed_and_pending() {
    let mut td = Td::new(1);
    td.make(G, Level::L4K, EntryState::Pending);
    assert_eq!(td.m.op_state(), OpState::Initialized);
}

#[test]
fn bad_levels_and_alignment_are_operand_invalid() {
    let mut td = Td::new(1);
    td.link(G, Level::L4K);
    let page = td.page();
    let huge = td.huge();
    let invalid = Err(Status::OPERAND_INVALID);
    assert_eq!(
        td.m.page_aug(G, Level::L1G, huge),
        invalid,
        "AUG is 4K or 2M"
    );
    assert_eq!(
        td.m.page_aug(G + K4, Level::L2M, huge),
        invalid,
        "unaligned GPA"
    );
    assert_eq!(
        td.m.page_aug(G, Level::L4K, page + 8),
        invalid,
        "unaligned page"
    );
    assert_eq!(
        td.m.sept_add(G, Level::L4K, page),
        invalid,
        "tables link from 2M up"
    );
    assert_eq!(
        td.m.page_remove(G, Level::L512G).map(drop),
        invalid,
        "leaves are 1G at most"
    );
    assert_eq!(td.m.sept_remove(G, Level::L4K).map(drop), invalid);
    assert_eq!(td.m.range_block(G + 0x800, Level::L4K), invalid);
    let (add, source) = (td.page(), td.page());
    assert_eq!(td.m.page_add(G + 0x10, add, source), invalid);
    assert_eq!(
        td.m.page_add(G, add, source + 0x10),
        invalid,
        "unaligned source"
    );
    assert!(td.m.entries().all(|e| e.state == EntryState::NlMapped));
}

#[test]
fn aug_2m_of_a_page_not_2m_aligned_is_operand_invalid() {
    let mut td = Td::new(1);
    td.link(G, Level::L2M);
    let page = td.huge() + K4;
    let augmented = td.m.page_aug(G, Level::L2M, page);
    assert_eq!(augmented, Err(Status::OPERAND_INVALID));
}

#[test]
fn shared_gpas_are_operand_invalid() {
    let shared = G | (1 << 47);
    let mut td = Td::new(1);
    td.link(G, Level::L4K);
    let page = td.page();
    let invalid = Err(Status::OPERAND_INVALID);
    assert_eq!(td.m.page_aug(shared, Level::L4K, page), invalid);
    assert_eq!(td.m.sept_add(shared, Level::L2M, page), invalid);
    assert_eq!(td.m.range_block(shared, Level::L4K), invalid);
    assert_eq!(td.m.page_remove(shared, Level::L4K).map(drop), invalid);
    assert_eq!(td.m.mr_extend(shared), invalid);
}

#[test]
fn giving_the_module_a_page_it_owns_is_page_metadata_incorrect() {
    let mut td = Td::new(1);
    let mapped = td.make(G, Level::L4K, EntryState::Mapped);
    let table = td.m.entry(G, Level::L2M).unwrap().hpa;
    let huge = td.make(G + M2, Level::L2M, EntryState::Pending);
    let incorrect = Err(Status::PAGE_METADATA_INCORRECT);
    for owned in [mapped, table, TDR, CONTROL[0], huge, huge + 0x5000] {
        assert_eq!(
            td.m.page_aug(G + K4, Level::L4K, owned),
            incorrect,
            "{owned:#x}"
        );
        let source = td.page();
        assert_eq!(
            td.m.page_add(G + K4, owned, source),
            incorrect,
            "{owned:#x}"
        );
        assert_eq!(
            td.m.sept_add(G + 2 * M2, Level::L2M, owned),
            incorrect,
            "{owned:#x}"
        );
    }
    // A 2M page over one owned 4K page.
    let around = mapped & !(M2 - 1);
    assert_eq!(td.m.page_aug(G + 3 * M2, Level::L2M, around), incorrect);
    td.m.check_invariants().unwrap();
}

#[test]
fn vcpu_side_refusals_change_nothing_in_the_epoch() {
    let (mut td, _) = running_with_mapped_page();
    td.m.vp_enter(0).unwrap();
    let epoch = td.m.epoch();
    td.m.vp_exit(0);
    td.m.track().unwrap();
    td.m.track().unwrap();
    assert_eq!(td.m.epoch(), epoch + 2);
    td.m.check_invariants().unwrap();
}
