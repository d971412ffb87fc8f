//! Property test: random sequences of RMP, guest, firmware and cache operations on the
//! model never panic, keep its invariants (a 2 MiB entry's 512 frames agree, no frame is
//! in both a 2 MiB and a 4 KiB assigned entry, only assigned entries are validated),
//! change nothing when refused, and follow the validated-bit rules (RMPUPDATE clears
//! it, PSMASH keeps it).
//!
//! `PROPTEST_CASES=n` overrides the case count.

use cloister_svm::sev::rmp::{
    PvalidateOutcome, Rmp, RmpEntry, RmpError, RmpModel, RmpOp, RmpSize, RmpState,
};
use proptest::prelude::*;

/// `PROPTEST_CASES` if set (for longer runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Host memory under test: three 2 MiB regions, the last half outside the RMP.
const BASE: u64 = 0x8000_0000;
const LIMIT: u64 = BASE + 0x50_0000;

/// A 2 MiB region (0..3) and a frame in it; frame 0 is the region's start.
#[derive(Clone, Copy, Debug)]
struct At {
    region: u64,
    frame: u64,
}

impl At {
    fn pa(self) -> u64 {
        BASE + self.region * 0x20_0000 + self.frame * 0x1000
    }
}

fn at() -> impl Strategy<Value = At> {
    // Mostly a few frames (the region start above all), so operations meet each other.
    let frame = prop_oneof![4 => Just(0u64), 2 => Just(1u64), 1 => Just(511u64), 1 => 0..512u64];
    let region = prop_oneof![3 => Just(0u64), 2 => Just(1u64), 1 => Just(2u64)];
    (region, frame).prop_map(|(region, frame)| At { region, frame })
}

/// Mostly ASID 1, so the guest side often owns what it touches.
fn asid() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(1u32), 1 => Just(2u32)]
}

/// Launch (immutable) pages now and then.
fn immutable() -> impl Strategy<Value = bool> {
    prop_oneof![3 => Just(false), 1 => Just(true)]
}

fn size() -> impl Strategy<Value = RmpSize> {
    prop_oneof![Just(RmpSize::Size4K), Just(RmpSize::Size2M)]
}

/// Mostly 2 MiB, which fails more often (overlap, alignment, the RMP's end).
fn private_size() -> impl Strategy<Value = RmpSize> {
    prop_oneof![1 => Just(RmpSize::Size4K), 2 => Just(RmpSize::Size2M)]
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Private at the GPA mirroring the frame (plus `skew` frames) for ASID 1 or 2.
    Private(At, RmpSize, u32, bool, u64),
    Shared(At, RmpSize),
    Psmash(At),
    Pvalidate(At, RmpSize, u32, bool),
    /// A well-behaved guest: PVALIDATE of the entry at `At` as the entry says.
    GuestValidates(At, bool),
    LaunchUpdate(At, u32),
    Reclaim(At),
    InjectInuse(bool, u32),
    GuestWrite(At, u32),
    HostWrite(At, RmpSize),
    VmPageFlush(At, u32),
    Clflush(At),
    Wbinvd,
}

fn op() -> impl Strategy<Value = Op> {
    let skew = prop_oneof![3 => Just(0u64), 1 => 0..3u64];
    prop_oneof![
        4 => (at(), private_size(), asid(), immutable(), skew)
            .prop_map(|(a, s, asid, imm, skew)| Op::Private(a, s, asid, imm, skew)),
        3 => (at(), size()).prop_map(|(a, s)| Op::Shared(a, s)),
        3 => at().prop_map(Op::Psmash),
        4 => (at(), size(), asid(), any::<bool>())
            .prop_map(|(a, s, asid, v)| Op::Pvalidate(a, s, asid, v)),
        3 => (at(), any::<bool>()).prop_map(|(a, v)| Op::GuestValidates(a, v)),
        1 => (at(), asid()).prop_map(|(a, asid)| Op::LaunchUpdate(a, asid)),
        1 => at().prop_map(Op::Reclaim),
        1 => (any::<bool>(), 1..3u32).prop_map(|(psmash, nth)| Op::InjectInuse(psmash, nth)),
        1 => (at(), asid()).prop_map(|(a, asid)| Op::GuestWrite(a, asid)),
        1 => (at(), size()).prop_map(|(a, s)| Op::HostWrite(a, s)),
        1 => (at(), asid()).prop_map(|(a, asid)| Op::VmPageFlush(a, asid)),
        1 => at().prop_map(Op::Clflush),
        1 => Just(Op::Wbinvd),
    ]
}

/// The GPA a frame backs in these tests (regions map 1:1 to GPA 2 MiB pages).
fn gpa_of(at: At) -> u64 {
    0x100_0000 + at.region * 0x20_0000 + at.frame * 0x1000
}

fn snapshot(rmp: &RmpModel) -> Vec<(u64, RmpEntry)> {
    rmp.assigned_frames().collect()
}

fn frames(pa: u64, size: RmpSize) -> impl Iterator<Item = u64> {
    (0..size.frames()).map(move |i| pa + i * 0x1000)
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut rmp = RmpModel::with_limit(LIMIT);
    for &op in ops {
        let before = snapshot(&rmp);
        match op {
            Op::Private(at, size, asid, immutable, skew) => {
                let gpa = gpa_of(at) + skew * 0x1000;
                let state = RmpState::private(gpa, size, asid, immutable);
                if rmp.rmpupdate(at.pa(), state).is_ok() {
                    for pa in frames(at.pa(), size) {
                        let entry = rmp.lookup(pa);
                        prop_assert!(entry.assigned && !entry.validated && entry.size == size);
                        prop_assert_eq!(entry.frame_gpa(pa), gpa + (pa - at.pa()));
                    }
                } else {
                    prop_assert_eq!(&snapshot(&rmp), &before, "refused RMPUPDATE changed state");
                }
            }
            Op::Shared(at, size) => {
                if rmp.rmpupdate(at.pa(), RmpState::shared(size)).is_ok() {
                    for pa in frames(at.pa(), size) {
                        prop_assert_eq!(rmp.lookup(pa), RmpEntry::HYPERVISOR);
                    }
                } else {
                    prop_assert_eq!(&snapshot(&rmp), &before, "refused RMPUPDATE changed state");
                }
            }
            Op::Psmash(at) => {
                let large = rmp.lookup(at.pa());
                if rmp.psmash(at.pa()).is_ok() {
                    for (i, pa) in frames(at.pa(), RmpSize::Size2M).enumerate() {
                        let entry = rmp.lookup(pa);
                        prop_assert_eq!(entry.validated, large.validated, "PSMASH keeps validated");
                        prop_assert_eq!(entry.gpa, large.gpa + i as u64 * 0x1000);
                        prop_assert_eq!(
                            (entry.asid, entry.immutable),
                            (large.asid, large.immutable)
                        );
                    }
                } else {
                    prop_assert_eq!(&snapshot(&rmp), &before, "refused PSMASH changed state");
                }
            }
            Op::Pvalidate(at, size, asid, validate) => {
                match rmp.pvalidate(asid, gpa_of(at), at.pa(), size, validate) {
                    Ok(PvalidateOutcome::Changed) => {
                        prop_assert_eq!(rmp.lookup(at.pa()).validated, validate);
                    }
                    _ => prop_assert_eq!(&snapshot(&rmp), &before),
                }
            }
            Op::GuestValidates(at, validate) => {
                let entry = rmp.lookup(at.pa());
                let pa = at.pa() & !(entry.size.bytes() - 1);
                let result =
                    rmp.pvalidate(entry.asid, entry.frame_gpa(pa), pa, entry.size, validate);
                if entry.assigned && !entry.immutable {
                    prop_assert!(result.is_ok(), "{:?}", result);
                    prop_assert_eq!(rmp.lookup(at.pa()).validated, validate);
                } else {
                    prop_assert!(result.is_err());
                }
            }
            Op::LaunchUpdate(at, asid) => {
                if rmp.fw_launch_update(at.pa(), asid).is_ok() {
                    let entry = rmp.lookup(at.pa());
                    prop_assert!(entry.validated && !entry.immutable);
                } else {
                    prop_assert_eq!(&snapshot(&rmp), &before);
                }
            }
            Op::Reclaim(at) => {
                if rmp.fw_reclaim(at.pa()).is_ok() {
                    let entry = rmp.lookup(at.pa());
                    prop_assert!(!entry.immutable);
                    // A reclaimed page can be made shared (SNP-03), unless an injected
                    // FAIL_INUSE is due.
                    let base = at.pa() & !(entry.size.bytes() - 1);
                    let result = rmp.rmpupdate(base, RmpState::shared(entry.size));
                    prop_assert!(
                        matches!(result, Ok(()) | Err(RmpError::FailInUse)),
                        "{:?}",
                        result
                    );
                } else {
                    prop_assert_eq!(&snapshot(&rmp), &before);
                }
            }
            Op::InjectInuse(psmash, nth) => {
                let op = if psmash {
                    RmpOp::Psmash
                } else {
                    RmpOp::Rmpupdate
                };
                rmp.inject_inuse(op, nth);
            }
            Op::GuestWrite(at, asid) => rmp.guest_write(asid, at.pa()),
            Op::HostWrite(at, size) => {
                let assigned_under =
                    frames(at.pa() & !(size.bytes() - 1), size).any(|pa| rmp.lookup(pa).assigned);
                prop_assert_eq!(rmp.host_write(at.pa(), size).is_ok(), !assigned_under);
            }
            Op::VmPageFlush(at, asid) => rmp.vm_page_flush(at.pa(), asid),
            Op::Clflush(at) => rmp.clflush(at.pa()),
            Op::Wbinvd => rmp.wbinvd(),
        }
        if let Err((pa, what)) = rmp.check_invariants() {
            return Err(TestCaseError::fail(format!(
                "{what} at {pa:#x} after {op:?}"
            )));
        }
        prop_assert!(
            rmp.assigned_frames().all(|(pa, _)| pa < LIMIT),
            "entry outside the RMP"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn random_rmp_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}
