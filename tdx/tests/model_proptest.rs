//! Property test: random sequences of host, vCPU and guest calls on the model never
//! panic, keep its invariants (TDR.CHLDCNT = pages associated with the TD, weighted by
//! size; no entry without its parent table; entries and PAMT pages one to one), and
//! every refused call leaves the model as it was.
//!
//! `PROPTEST_CASES=n` overrides the case count.

mod model_support;

use cloister_tdx::model::{Access, OpState, PageType, TdxModel};
use cloister_tdx::{Level, Status, TdxModule};
use model_support::{CONTROL, G, M2, MEMORY_LEAVES, TDR, config};
use proptest::prelude::*;
use proptest::sample::select;

/// `PROPTEST_CASES` if set (for longer runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

const VCPUS: usize = 2;
/// 4K host pages for data and tables.
const PAGES: u64 = 0x100_0000;
/// Host pages `Op::Link` takes tables from.
const TABLES: u64 = 0x180_0000;
/// 2M host pages.
const HUGE: u64 = 0x4000_0000;

/// Where a GPA-addressed call goes.
#[derive(Clone, Copy, Debug)]
enum At {
    Gpa(u64, Level),
    /// The nth existing entry (modulo their number), so calls often hit something.
    Entry(usize),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// SEPT.ADD of every missing table above the 4K entry of the GPA, top-down, with
    /// the first free page of the table pool (what a host's fault path does).
    Link(u64),
    /// What a host's fault path does: `Link`, then PAGE.ADD (building) or PAGE.AUG of
    /// the first free 4K page or, if `huge`, 2M page.
    Fault(u64, bool),
    SeptAdd(u64, Level, u64),
    PageAdd(u64, u64),
    Aug(u64, Level, u64),
    Block(At),
    Unblock(At),
    Track,
    Remove(At),
    SeptRemove(At),
    Extend(At),
    Finalize,
    Wbinvd(u64),
    Reclaim(u64),
    /// RECLAIM of the nth page the TD owns (modulo their number), the TDR once it is
    /// the last.
    ReclaimOwned(usize),
    VpFlush(usize),
    VpFlushDone,
    CacheWb(bool),
    FreeId,
    Kick,
    Enter(usize),
    Exit(usize),
    Accept(usize, At),
    Access(usize, At),
    HoldTree(bool),
    ReleaseTree,
    HoldEpoch(bool),
    ReleaseEpoch,
    Inject(u64, u32),
}

/// GPAs over two 1G ranges, a few 2M and 4K apart, so tables are shared and nested.
fn gpa() -> impl Strategy<Value = u64> {
    (0..2u64, 0..2u64, 0..3u64)
        .prop_map(|(g, m, k)| G + g * Level::L1G.span() + m * M2 + k * 0x1000)
}

/// Mostly the levels leaves live at, sometimes the levels only tables have.
fn level() -> impl Strategy<Value = Level> {
    prop_oneof![4 => 0..2u8, 1 => 2..4u8].prop_map(|l| Level::new(l).unwrap())
}

/// A GPA aligned to a level, as a host following the rules would pass it.
fn gpa_at() -> impl Strategy<Value = (u64, Level)> {
    (gpa(), level()).prop_map(|(gpa, level)| (level.align(gpa), level))
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        1 => gpa_at().prop_map(|(gpa, level)| At::Gpa(gpa, level)),
        2 => any::<usize>().prop_map(At::Entry),
    ]
}

/// Host pages: 4K pages, 2M-aligned pages and pages inside them, and the TD's own.
fn page() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0..12u64).prop_map(|i| PAGES + i * 0x1000),
        1 => (0..12u64).prop_map(|i| TABLES + i * 0x1000),
        2 => (0..3u64).prop_map(|i| HUGE + i * M2),
        1 => (0..3u64, 1..3u64).prop_map(|(i, k)| HUGE + i * M2 + k * 0x1000),
        1 => select(vec![TDR, CONTROL[0], CONTROL[2]]),
    ]
}

fn vcpu() -> impl Strategy<Value = usize> {
    0..VCPUS
}

/// Calls while the TD is built and runs.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => gpa().prop_map(Op::Link),
        4 => (gpa(), prop::bool::weighted(0.25)).prop_map(|(g, huge)| Op::Fault(g, huge)),
        1 => (gpa_at(), page()).prop_map(|((g, l), p)| Op::SeptAdd(g, l, p)),
        1 => (gpa(), page()).prop_map(|(g, p)| Op::PageAdd(g, p)),
        2 => (gpa_at(), page()).prop_map(|((g, l), p)| Op::Aug(g, l, p)),
        3 => at().prop_map(Op::Block),
        1 => at().prop_map(Op::Unblock),
        3 => Just(Op::Track),
        3 => at().prop_map(Op::Remove),
        1 => at().prop_map(Op::SeptRemove),
        1 => at().prop_map(Op::Extend),
        1 => Just(Op::Finalize),
        1 => page().prop_map(Op::Wbinvd),
        1 => vcpu().prop_map(Op::VpFlush),
        2 => Just(Op::Kick),
        3 => vcpu().prop_map(Op::Enter),
        1 => vcpu().prop_map(Op::Exit),
        3 => (vcpu(), at()).prop_map(|(v, at)| Op::Accept(v, at)),
        2 => (vcpu(), at()).prop_map(|(v, at)| Op::Access(v, at)),
        1 => any::<bool>().prop_map(Op::HoldTree),
        3 => Just(Op::ReleaseTree),
        1 => any::<bool>().prop_map(Op::HoldEpoch),
        3 => Just(Op::ReleaseEpoch),
        1 => (select(MEMORY_LEAVES.to_vec()), 1..3u32).prop_map(|(l, n)| Op::Inject(l, n)),
    ]
}

/// The calls above and the teardown steps.
fn op_or_teardown() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => op(),
        1 => page().prop_map(Op::Reclaim),
        3 => any::<usize>().prop_map(Op::ReclaimOwned),
        2 => vcpu().prop_map(Op::VpFlush),
        1 => Just(Op::VpFlushDone),
        2 => any::<bool>().prop_map(Op::CacheWb),
        1 => Just(Op::FreeId),
    ]
}

/// A run, then teardown steps among more calls, so the TD is built and run first.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let run = prop::collection::vec(op(), 1..80);
    let teardown = prop::collection::vec(op_or_teardown(), 0..60);
    (run, teardown).prop_map(|(mut run, teardown)| {
        run.extend(teardown);
        run
    })
}

/// Everything observable that a refused call must not change.
fn observe(m: &TdxModel) -> impl PartialEq + std::fmt::Debug + use<> {
    let entries: Vec<_> = m.entries().collect();
    let pages: Vec<_> = m.owned_pages().collect();
    let vcpus: Vec<_> = (0..VCPUS).map(|v| m.in_guest(v)).collect();
    let huge_pages = (0..3u64).map(|i| HUGE + i * M2);
    let dirty: Vec<_> = (0..12u64)
        .flat_map(|i| [PAGES + i * 0x1000, TABLES + i * 0x1000])
        .chain(huge_pages.flat_map(|huge| [0, 0x1000, 0x2000, M2 - 0x1000].map(|o| huge + o)))
        .chain([TDR, CONTROL[0]])
        .filter(|&page| m.has_dirty_td_lines(page))
        .collect();
    let state = (m.op_state(), m.lifecycle(), m.epoch(), m.child_count());
    (entries, pages, vcpus, dirty, state, m.mrtd_extends())
}

/// Which entries `At::Entry` picks from.
#[derive(Clone, Copy)]
enum Kind {
    Leaf,
    Table,
    Any,
}

fn resolve(m: &TdxModel, at: At, kind: Kind) -> (u64, Level) {
    match at {
        At::Gpa(gpa, level) => (gpa, level),
        At::Entry(n) => {
            let entries: Vec<_> = m
                .entries()
                .filter(|entry| match kind {
                    Kind::Leaf => entry.state.is_leaf(),
                    Kind::Table => !entry.state.is_leaf(),
                    Kind::Any => true,
                })
                .collect();
            entries
                .get(n % entries.len().max(1))
                .map_or((G, Level::L4K), |entry| (entry.gpa, entry.level))
        }
    }
}

/// `Op::Link`: the first refusal ends it.
fn link(m: &mut TdxModel, gpa: u64) -> Result<(), Status> {
    for level in [Level::L512G, Level::L1G, Level::L2M] {
        if m.entry(gpa, level).is_none() {
            let mut pool = (0..12).map(|i| TABLES + i * 0x1000);
            let page = pool
                .find(|&page| m.page_type(page) == PageType::Nda)
                .unwrap_or(TABLES);
            m.sept_add(level.align(gpa), level, page)?;
        }
    }
    Ok(())
}

/// `Op::Fault`.
fn fault(m: &mut TdxModel, gpa: u64, huge: bool) -> Result<(), Status> {
    link(m, gpa)?;
    let (level, mut pool) = if huge {
        (
            Level::L2M,
            (0..3).map(|i| HUGE + i * M2).collect::<Vec<_>>(),
        )
    } else {
        (Level::L4K, (0..12).map(|i| PAGES + i * 0x1000).collect())
    };
    pool.retain(|&page| m.page_type(page) == PageType::Nda);
    let page = pool.first().copied().unwrap_or(PAGES);
    let gpa = level.align(gpa);
    if m.op_state() == OpState::Initialized && !huge {
        m.page_add(gpa, page, 0x200_0000)
    } else {
        m.page_aug(gpa, level, page)
    }
}

/// Runs one op; returns the status of a host call (None for vCPU and harness ops).
fn run(m: &mut TdxModel, op: Op) -> Option<Result<(), Status>> {
    let result = match op {
        Op::Link(g) => link(m, g),
        Op::Fault(g, huge) => fault(m, g, huge),
        Op::SeptAdd(g, l, p) => m.sept_add(g, l, p),
        Op::PageAdd(g, p) => m.page_add(g, p, 0x200_0000),
        Op::Aug(g, l, p) => m.page_aug(g, l, p),
        Op::Block(at) => {
            let (g, l) = resolve(m, at, Kind::Any);
            m.range_block(g, l)
        }
        Op::Unblock(at) => {
            let (g, l) = resolve(m, at, Kind::Any);
            m.range_unblock(g, l)
        }
        Op::Track => m.track(),
        Op::Remove(at) => {
            let (g, l) = resolve(m, at, Kind::Leaf);
            m.page_remove(g, l).map(|page| {
                assert_eq!(m.page_type(page), PageType::Nda, "removed page goes back");
            })
        }
        Op::SeptRemove(at) => {
            let (g, l) = resolve(m, at, Kind::Table);
            m.sept_remove(g, l).map(|page| {
                assert_eq!(m.page_type(page), PageType::Nda, "removed table goes back");
            })
        }
        Op::Extend(at) => m.mr_extend(resolve(m, at, Kind::Leaf).0),
        Op::Finalize => m.mr_finalize(),
        Op::Wbinvd(p) => m.page_wbinvd(p),
        Op::Reclaim(p) => m.page_reclaim(p),
        Op::ReclaimOwned(n) => {
            let owned: Vec<_> = m.owned_pages().map(|(page, _, _)| page).collect();
            let children: Vec<_> = owned.into_iter().filter(|&page| page != TDR).collect();
            m.page_reclaim(
                children
                    .get(n % children.len().max(1))
                    .copied()
                    .unwrap_or(TDR),
            )
        }
        Op::VpFlush(v) => m.vp_flush(v),
        Op::VpFlushDone => m.vpflushdone(),
        Op::CacheWb(resume) => m.cache_wb(resume),
        Op::FreeId => m.key_freeid(),
        Op::Kick => {
            m.kick_vcpus();
            Ok(())
        }
        Op::Enter(v) if !m.in_guest(v) => m.vp_enter(v),
        Op::Exit(v) if m.in_guest(v) => {
            m.vp_exit(v);
            return None;
        }
        Op::Accept(v, at) if m.in_guest(v) => {
            let (gpa, level) = resolve(m, at, Kind::Any);
            let level = level.min(Level::L2M);
            m.accept(v, level.align(gpa), level);
            return None;
        }
        Op::Access(v, at) if m.in_guest(v) => {
            if let Access::Mapped { hpa } = m.guest_access(v, resolve(m, at, Kind::Leaf).0) {
                assert_eq!(m.page_type(hpa), PageType::Reg);
                assert!(m.has_dirty_td_lines(hpa));
            }
            return None;
        }
        Op::HoldTree(exclusive) => {
            m.hold_tree_lock(exclusive);
            return None;
        }
        Op::ReleaseTree => {
            m.release_tree_lock();
            return None;
        }
        Op::HoldEpoch(exclusive) => {
            m.hold_epoch_lock(exclusive);
            return None;
        }
        Op::ReleaseEpoch => {
            m.release_epoch_lock();
            return None;
        }
        Op::Inject(leaf, nth) => {
            m.inject(leaf, nth, Status::OPERAND_BUSY);
            return None;
        }
        // vCPU calls that would be harness bugs in this state.
        Op::Enter(_) | Op::Exit(_) | Op::Accept(..) | Op::Access(..) => return None,
    };
    Some(result)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn random_calls_keep_the_invariants_and_refusals_change_nothing(
        interruptions in 0..3u32,
        ops in ops(),
    ) {
        let mut m = TdxModel::new(config(VCPUS));
        m.set_cache_wb_interruptions(interruptions);
        for op in ops {
            let before = observe(&m);
            let result = run(&mut m, op);
            // Link and Fault are several calls: the ones before a refusal stand.
            let one_call = !matches!(op, Op::Link(_) | Op::Fault(..));
            if let Some(Err(status)) = result
                && status != Status::INTERRUPTED_RESUMABLE
                && one_call
            {
                prop_assert_eq!(observe(&m), before, "{:?} -> {}", op, status);
            }
            if let Err(violation) = m.check_invariants() {
                return Err(TestCaseError::fail(format!("after {op:?}: {violation}")));
            }
        }
    }

}

proptest! {
    // Covered in part by the test above; fewer cases keep `cargo test` quick.
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn tdx_15_removal_in_a_running_td_needs_a_blocked_entry(ops in ops()) {
        let mut m = TdxModel::new(config(VCPUS));
        for op in ops {
            let target = match op {
                Op::Remove(at) => Some(resolve(&m, at, Kind::Leaf)),
                Op::SeptRemove(at) => Some(resolve(&m, at, Kind::Table)),
                Op::Unblock(at) => Some(resolve(&m, at, Kind::Any)),
                _ => None,
            };
            let entry = target.and_then(|(gpa, level)| m.entry(gpa, level));
            let running = m.op_state() == OpState::Runnable;
            if let (Some(Ok(())), Some(_), true) = (run(&mut m, op), target, running) {
                prop_assert!(entry.is_some_and(|e| e.state.is_blocked()), "{:?}", op);
            }
        }
    }
}
