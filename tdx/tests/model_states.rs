//! The allowed-state table (spec digest C.4.4): every leaf against every entry state,
//! with the resulting state, or the refusal and no change. Built before MR.FINALIZE
//! where possible, so the tracking rule (tested in `model_tracking.rs`) stays out.

mod model_support;

use cloister_tdx::model::EntryState::{self, *};
use cloister_tdx::model::{Accept, Access};
use cloister_tdx::{Level, Status, TdxModule};
use model_support::{G, Td};

type Outcome = Result<EntryState, Status>;

/// Leaf states sit at 4K, table links at 2M (the only levels both can be compared at).
fn level_for(state: EntryState) -> Level {
    match state {
        NlMapped | NlBlocked => Level::L2M,
        _ => Level::L4K,
    }
}

/// For each (state, expected): an entry in `state`, then `call`; on success the entry
/// is in the expected state (FREE: gone), on refusal it and the TD are unchanged. Rows
/// of 4K-only leaves leave out the table-link states, which cannot exist at 4K.
fn row(
    at: impl Fn(EntryState) -> Level,
    call: impl Fn(&mut Td, u64, Level) -> Result<(), Status>,
    expected: &[(EntryState, Outcome)],
) {
    for &(state, outcome) in expected {
        let level = at(state);
        let mut td = Td::new(1);
        let hpa = td.make(G, level, state);
        let before: Vec<_> = td.m.entries().collect();
        let result = call(&mut td, G, level);
        let after = td.m.entry(G, level);
        match outcome {
            Ok(next) => {
                assert_eq!(result, Ok(()), "{state:?}");
                assert_eq!(after.map_or(Free, |e| e.state), next, "{state:?}");
                if next != Free && state != Free {
                    assert_eq!(after.unwrap().hpa, hpa, "{state:?} keeps its page");
                }
            }
            Err(status) => {
                assert_eq!(result, Err(status), "{state:?}");
                assert_eq!(td.m.entries().collect::<Vec<_>>(), before, "{state:?}");
            }
        }
        td.m.check_invariants().unwrap();
    }
}

const INCORRECT: Status = Status::EPT_ENTRY_STATE_INCORRECT;

#[test]
fn page_add_is_allowed_only_on_free() {
    let call = |td: &mut Td, gpa, _| {
        let (page, source) = (td.page(), td.page());
        td.m.page_add(gpa, page, source)
    };
    row(
        level_for,
        call,
        &[
            (Free, Ok(Mapped)),
            (Mapped, Err(INCORRECT)),
            (Blocked, Err(INCORRECT)),
            (Pending, Err(INCORRECT)),
            (PendingBlocked, Err(INCORRECT)),
        ],
    );
}

#[test]
fn sept_add_is_allowed_only_on_free() {
    let call = |td: &mut Td, gpa, level| {
        let page = td.page();
        td.m.sept_add(gpa, level, page)
    };
    row(
        |_| Level::L2M,
        call,
        &[
            (Free, Ok(NlMapped)),
            (NlMapped, Err(INCORRECT)),
            (NlBlocked, Err(INCORRECT)),
            (Mapped, Err(INCORRECT)),
            (Blocked, Err(INCORRECT)),
            (Pending, Err(INCORRECT)),
            (PendingBlocked, Err(INCORRECT)),
        ],
    );
}

#[test]
fn page_aug_is_allowed_only_on_free_and_leaves_pending() {
    let call = |td: &mut Td, gpa, level| {
        let page = td.page_of(level);
        td.m.page_aug(gpa, level, page)
    };
    row(
        level_for,
        call,
        &[
            (Free, Ok(Pending)),
            (NlMapped, Err(INCORRECT)),
            (NlBlocked, Err(INCORRECT)),
            (Mapped, Err(INCORRECT)),
            (Blocked, Err(INCORRECT)),
            (Pending, Err(INCORRECT)),
            (PendingBlocked, Err(INCORRECT)),
        ],
    );
}

#[test]
fn range_block_blocks_present_entries_and_reports_already_blocked() {
    let already = Err(Status::GPA_RANGE_ALREADY_BLOCKED);
    row(
        level_for,
        |td, gpa, level| td.m.range_block(gpa, level),
        &[
            (Free, Err(INCORRECT)),
            (NlMapped, Ok(NlBlocked)),
            (NlBlocked, already),
            (Mapped, Ok(Blocked)),
            (Blocked, already),
            (Pending, Ok(PendingBlocked)),
            (PendingBlocked, already),
        ],
    );
}

#[test]
fn range_unblock_is_allowed_only_on_blocked_states() {
    row(
        level_for,
        |td, gpa, level| td.m.range_unblock(gpa, level),
        &[
            (Free, Err(INCORRECT)),
            (NlMapped, Err(INCORRECT)),
            (NlBlocked, Ok(NlMapped)),
            (Mapped, Err(INCORRECT)),
            (Blocked, Ok(Mapped)),
            (Pending, Err(INCORRECT)),
            (PendingBlocked, Ok(Pending)),
        ],
    );
}

#[test]
fn page_remove_frees_leaves_only() {
    row(
        level_for,
        |td, gpa, level| td.m.page_remove(gpa, level).map(drop),
        &[
            (Free, Err(INCORRECT)),
            (NlMapped, Err(INCORRECT)),
            (NlBlocked, Err(INCORRECT)),
            (Mapped, Ok(Free)),
            (Blocked, Ok(Free)),
            (Pending, Ok(Free)),
            (PendingBlocked, Ok(Free)),
        ],
    );
}

#[test]
fn sept_remove_frees_empty_table_links_only() {
    row(
        |_| Level::L2M,
        |td, gpa, level| td.m.sept_remove(gpa, level).map(drop),
        &[
            (Free, Err(INCORRECT)),
            (NlMapped, Ok(Free)),
            (NlBlocked, Ok(Free)),
            (Mapped, Err(INCORRECT)),
            (Blocked, Err(INCORRECT)),
            (Pending, Err(INCORRECT)),
            (PendingBlocked, Err(INCORRECT)),
        ],
    );
}

#[test]
fn mr_extend_measures_only_mapped_pages() {
    let absent = Err(Status::EPT_ENTRY_NOT_PRESENT);
    row(
        level_for,
        |td, gpa, _| td.m.mr_extend(gpa),
        &[
            (Free, absent),
            (Mapped, Ok(Mapped)),
            (Blocked, absent),
            (Pending, absent),
            (PendingBlocked, absent),
        ],
    );
}

/// ACCEPT needs a running vCPU: every state is built, then the TD finalized.
fn accept_in(state: EntryState, level: Level) -> (Td, Accept) {
    let mut td = Td::new(1);
    td.make(G, level, state);
    if td.m.op_state() == cloister_tdx::model::OpState::Initialized {
        td.finalize();
    }
    td.m.vp_enter(0).unwrap();
    let outcome = td.m.accept(0, G, level);
    (td, outcome)
}

#[test]
fn accept_outcome_for_every_state() {
    let expected = [
        (Free, Accept::EptViolation),
        (NlMapped, Accept::SizeMismatch),
        (NlBlocked, Accept::SizeMismatch),
        (Mapped, Accept::AlreadyAccepted),
        (Blocked, Accept::EptViolation),
        (Pending, Accept::Accepted),
        (PendingBlocked, Accept::EptViolation),
    ];
    for (state, outcome) in expected {
        let level = level_for(state);
        let (td, got) = accept_in(state, level);
        assert_eq!(got, outcome, "{state:?}");
        let now = td.m.entry(G, level).map_or(Free, |e| e.state);
        let next = if state == Pending { Mapped } else { state };
        assert_eq!(now, next, "{state:?}");
    }
}

#[test]
fn accept_of_2m_pending_maps_all_of_it_and_zeroes_it() {
    let (td, outcome) = accept_in(Pending, Level::L2M);
    assert_eq!(outcome, Accept::Accepted);
    let hpa = td.m.entry(G, Level::L2M).unwrap().hpa;
    assert!(td.m.has_dirty_td_lines(hpa) && td.m.has_dirty_td_lines(hpa + 0x1f_f000));
}

#[test]
fn accept_of_4k_inside_a_mapped_2m_page_is_already_accepted() {
    let (mut td, _) = accept_in(Mapped, Level::L2M);
    assert_eq!(
        td.m.accept(0, G + 0x5000, Level::L4K),
        Accept::AlreadyAccepted
    );
}

#[test]
fn accept_of_4k_inside_a_pending_2m_page_is_an_ept_violation() {
    let (mut td, _) = accept_in(Free, Level::L4K);
    let page = td.huge();
    td.m.page_aug(G + 0x20_0000, Level::L2M, page).unwrap();
    assert_eq!(
        td.m.accept(0, G + 0x20_5000, Level::L4K),
        Accept::EptViolation
    );
}

#[test]
fn accept_without_a_parent_table_is_an_ept_violation() {
    let mut td = Td::new(1);
    td.finalize();
    td.m.vp_enter(0).unwrap();
    assert_eq!(td.m.accept(0, G, Level::L4K), Accept::EptViolation);
}

#[test]
fn accept_below_a_blocked_table_is_an_ept_violation() {
    let (mut td, _) = accept_in(NlBlocked, Level::L2M);
    assert_eq!(td.m.accept(0, G, Level::L4K), Accept::EptViolation);
}

#[test]
fn guest_access_translates_mapped_pages_to_their_4k_host_page() {
    let (mut td, _) = accept_in(Mapped, Level::L2M);
    let base = td.m.entry(G, Level::L2M).unwrap().hpa;
    let hpa = base + 0x7000;
    assert_eq!(td.m.guest_access(0, G + 0x7abc), Access::Mapped { hpa });
}

#[test]
fn guest_access_outcome_for_every_leaf_state() {
    let expected = [
        (Free, Access::EptViolation),
        (Blocked, Access::EptViolation),
        (Pending, Access::Pending),
        (PendingBlocked, Access::EptViolation),
    ];
    for (state, outcome) in expected {
        let mut td = Td::new(1);
        td.make(G, Level::L4K, state);
        if td.m.op_state() == cloister_tdx::model::OpState::Initialized {
            td.finalize();
        }
        td.m.vp_enter(0).unwrap();
        assert_eq!(td.m.guest_access(0, G), outcome, "{state:?}");
    }
}

#[test]
fn guest_access_below_a_blocked_table_is_an_ept_violation() {
    let (mut td, _) = accept_in(NlBlocked, Level::L2M);
    assert_eq!(td.m.guest_access(0, G), Access::EptViolation);
}
