//! Teardown (spec digest C.3, C.4.7 rule 5, TDX-13): the order VP.FLUSH, VPFLUSHDONE,
//! CACHE.WB, KEY.FREEID, RECLAIM with the TDR last, each step's refusals, and the
//! cache lines left behind.

mod model_support;

use cloister_tdx::model::{EntryState, Lifecycle, PageType, codes};
use cloister_tdx::{Level, Status, TdxModule};
use model_support::{CONTROL, G, K4, M2, TDR, Td};

/// A running TD with a 4K page, a 2M page and the tables above them; no vCPU in guest
/// or associated (vCPU 0 accepted the 4K page, then was flushed).
fn populated() -> Td {
    let mut td = Td::new(2);
    td.finalize();
    td.make(G, Level::L4K, EntryState::Mapped);
    td.make(G + M2, Level::L2M, EntryState::Pending);
    td.m.vp_flush(0).unwrap();
    td
}

/// Every page the TD owns except the TDR.
fn children(td: &Td) -> Vec<u64> {
    let owned = td.m.owned_pages();
    owned
        .filter(|&(_, ty, _)| ty != PageType::Tdr)
        .map(|(page, _, _)| page)
        .collect()
}

#[test]
fn tdx_13_teardown_in_order_reclaims_every_page_tdr_last() {
    let mut td = populated();
    td.m.vp_enter(0).unwrap();
    td.m.vp_exit(0);
    td.zap(G, Level::L4K);
    td.release_key();
    assert_eq!(td.m.lifecycle(), Lifecycle::Teardown);
    assert_eq!(td.m.entries().count(), 0, "the S-EPT is gone with its key");
    for page in children(&td) {
        assert_eq!(td.m.page_reclaim(page), Ok(()), "{page:#x}");
        assert_eq!(td.m.page_type(page), PageType::Nda);
        assert!(!td.m.has_dirty_td_lines(page), "written back by CACHE.WB");
    }
    assert_eq!(td.m.child_count(), 0);
    assert_eq!(td.m.page_reclaim(TDR), Ok(()));
    assert_eq!(td.m.owned_pages().count(), 0);
    assert!(
        td.m.has_dirty_td_lines(TDR),
        "the module wrote the TDR after CACHE.WB"
    );
    td.m.page_wbinvd(TDR).unwrap();
    assert!(!td.m.has_dirty_td_lines(TDR));
}

#[test]
fn pages_still_mapped_at_teardown_are_reclaimed_by_size() {
    let mut td = populated();
    let huge = td.m.entry(G + M2, Level::L2M).unwrap().hpa;
    td.release_key();
    let before = td.m.child_count();
    assert_eq!(td.m.page_reclaim(huge + K4), Err(Status::OPERAND_INVALID));
    assert_eq!(td.m.page_reclaim(huge), Ok(()));
    assert_eq!(td.m.child_count(), before - 512);
    assert_eq!(td.m.page_type(huge + 0x1f_f000), PageType::Nda);
}

#[test]
fn reclaim_before_key_freeid_is_lifecycle_state_incorrect() {
    let mut td = populated();
    let page = td.m.entry(G, Level::L4K).unwrap().hpa;
    let wrong = Err(Status::LIFECYCLE_STATE_INCORRECT);
    assert_eq!(td.m.page_reclaim(page), wrong);
    assert_eq!(td.m.page_reclaim(CONTROL[1]), wrong);
    assert_eq!(td.m.page_reclaim(TDR), wrong);
    td.m.vpflushdone().unwrap();
    assert_eq!(td.m.page_reclaim(page), wrong, "the key is not freed yet");
    assert_eq!(td.m.page_type(page), PageType::Reg);
}

#[test]
fn reclaim_of_the_tdr_before_the_other_pages_is_td_associated_pages_exist() {
    let mut td = populated();
    td.release_key();
    let exist = Err(Status::TD_ASSOCIATED_PAGES_EXIST);
    assert_eq!(td.m.page_reclaim(TDR), exist);
    let mut pages = children(&td);
    let last = pages.pop().unwrap();
    for page in pages {
        td.m.page_reclaim(page).unwrap();
    }
    assert_eq!(td.m.page_reclaim(TDR), exist, "{last:#x} is left");
    td.m.page_reclaim(last).unwrap();
    assert_eq!(td.m.page_reclaim(TDR), Ok(()));
}

#[test]
fn reclaim_of_a_page_the_module_does_not_own_is_page_metadata_incorrect() {
    let mut td = populated();
    td.release_key();
    let free = td.page();
    let incorrect = Err(Status::PAGE_METADATA_INCORRECT);
    assert_eq!(td.m.page_reclaim(free), incorrect);
    td.m.page_reclaim(CONTROL[0]).unwrap();
    assert_eq!(td.m.page_reclaim(CONTROL[0]), incorrect, "reclaimed twice");
    assert_eq!(td.m.page_reclaim(free + 0x10), Err(Status::OPERAND_INVALID));
}

#[test]
fn vpflushdone_before_vp_flush_is_flushvp_not_done() {
    let mut td = populated();
    td.m.vp_enter(1).unwrap();
    td.m.vp_exit(1);
    assert_eq!(td.m.vpflushdone(), Err(Status::FLUSHVP_NOT_DONE));
    assert_eq!(td.m.lifecycle(), Lifecycle::KeysConfigured);
    assert_eq!(td.m.vp_flush(1), Ok(()));
    assert_eq!(td.m.vpflushdone(), Ok(()));
    assert_eq!(td.m.lifecycle(), Lifecycle::Blocked);
}

#[test]
fn vp_flush_of_a_vcpu_that_never_entered_is_vcpu_not_associated() {
    let mut td = populated();
    assert_eq!(td.m.vp_flush(0), Err(Status::VCPU_NOT_ASSOCIATED));
    td.m.vp_enter(0).unwrap();
    td.m.vp_exit(0);
    assert_eq!(td.m.vp_flush(0), Ok(()));
    assert_eq!(
        td.m.vp_flush(0),
        Err(Status::VCPU_NOT_ASSOCIATED),
        "flushed already"
    );
    assert_eq!(
        td.m.vp_flush(2),
        Err(Status::OPERAND_INVALID),
        "no such vCPU"
    );
}

#[test]
fn vp_flush_of_a_vcpu_in_guest_mode_is_operand_busy() {
    let mut td = populated();
    td.m.vp_enter(0).unwrap();
    assert_eq!(td.m.vp_flush(0), Err(Status::OPERAND_BUSY));
    assert_eq!(td.m.vpflushdone(), Err(Status::FLUSHVP_NOT_DONE));
    td.m.kick_vcpus();
    assert_eq!(td.m.vp_flush(0), Ok(()));
}

#[test]
fn key_freeid_before_vpflushdone_is_lifecycle_state_incorrect() {
    let mut td = populated();
    assert_eq!(td.m.key_freeid(), Err(Status::LIFECYCLE_STATE_INCORRECT));
}

#[test]
fn key_freeid_before_cache_wb_is_wbcache_not_complete() {
    let mut td = populated();
    td.m.vpflushdone().unwrap();
    assert_eq!(td.m.key_freeid(), Err(codes::WBCACHE_NOT_COMPLETE));
    assert_eq!(td.m.cache_wb(false), Err(Status::INTERRUPTED_RESUMABLE));
    assert_eq!(
        td.m.key_freeid(),
        Err(codes::WBCACHE_NOT_COMPLETE),
        "interrupted"
    );
    assert_eq!(td.m.cache_wb(true), Ok(()));
    assert_eq!(td.m.key_freeid(), Ok(()));
    assert_eq!(td.m.lifecycle(), Lifecycle::Teardown);
    assert_eq!(td.m.key_freeid(), Err(Status::LIFECYCLE_STATE_INCORRECT));
}

#[test]
fn cache_wb_is_interrupted_the_configured_number_of_times() {
    for interruptions in [0, 1, 3] {
        let mut td = populated();
        td.m.set_cache_wb_interruptions(interruptions);
        td.m.vpflushdone().unwrap();
        let mut result = td.m.cache_wb(false);
        let mut interrupted = 0;
        while result == Err(Status::INTERRUPTED_RESUMABLE) {
            interrupted += 1;
            result = td.m.cache_wb(true);
        }
        assert_eq!((result, interrupted), (Ok(()), interruptions));
    }
}

#[test]
fn cache_wb_started_again_starts_over() {
    let mut td = populated();
    td.m.set_cache_wb_interruptions(2);
    td.m.vpflushdone().unwrap();
    assert_eq!(td.m.cache_wb(false), Err(Status::INTERRUPTED_RESUMABLE));
    assert_eq!(td.m.cache_wb(false), Err(Status::INTERRUPTED_RESUMABLE));
    assert_eq!(td.m.cache_wb(true), Err(Status::INTERRUPTED_RESUMABLE));
    assert_eq!(td.m.cache_wb(true), Ok(()));
}

#[test]
fn cache_wb_resume_without_an_interrupted_write_back_is_wbcache_resume_error() {
    let mut td = populated();
    td.m.vpflushdone().unwrap();
    assert_eq!(td.m.cache_wb(true), Err(codes::WBCACHE_RESUME_ERROR));
}

#[test]
fn cache_wb_with_no_key_to_write_back_is_no_hkid_ready() {
    let mut td = populated();
    assert_eq!(td.m.cache_wb(false), Err(codes::NO_HKID_READY_TO_WBCACHE));
    assert!(td.m.has_dirty_td_lines(CONTROL[0]), "nothing written back");
    td.release_key();
    assert_eq!(td.m.cache_wb(false), Err(codes::NO_HKID_READY_TO_WBCACHE));
}

#[test]
fn completed_cache_wb_cleans_every_td_page() {
    let mut td = populated();
    let page = td.m.entry(G, Level::L4K).unwrap().hpa;
    assert!(td.m.has_dirty_td_lines(page) && td.m.has_dirty_td_lines(CONTROL[2]));
    td.m.vpflushdone().unwrap();
    td.m.set_cache_wb_interruptions(0);
    td.m.cache_wb(false).unwrap();
    assert!(!td.m.has_dirty_td_lines(page) && !td.m.has_dirty_td_lines(CONTROL[2]));
}

#[test]
fn memory_calls_after_vpflushdone_are_td_keys_not_configured() {
    let mut td = populated();
    td.m.vpflushdone().unwrap();
    let page = td.page();
    let refused = Err(codes::TD_KEYS_NOT_CONFIGURED);
    assert_eq!(td.m.range_block(G, Level::L4K), refused);
    assert_eq!(td.m.page_remove(G, Level::L4K).map(drop), refused);
    assert_eq!(td.m.page_aug(G + K4, Level::L4K, page), refused);
    assert_eq!(td.m.sept_add(G + 2 * M2, Level::L2M, page), refused);
    assert_eq!(td.m.track(), refused);
    assert_eq!(td.m.vp_enter(0), refused);
    assert_eq!(td.m.vp_flush(0), refused);
    assert_eq!(td.m.vpflushdone(), Err(Status::LIFECYCLE_STATE_INCORRECT));
}

#[test]
fn calls_after_the_tdr_is_reclaimed_find_no_td() {
    let mut td = populated();
    td.release_key();
    for page in children(&td) {
        td.m.page_reclaim(page).unwrap();
    }
    td.m.page_reclaim(TDR).unwrap();
    let gone = Err(Status::PAGE_METADATA_INCORRECT);
    assert_eq!(td.m.track(), gone);
    assert_eq!(td.m.key_freeid(), gone);
    assert_eq!(td.m.page_reclaim(TDR), gone);
    td.m.check_invariants().unwrap();
}
