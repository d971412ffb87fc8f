//! SEV and SEV-SNP conformance (spec digest section H: PIN-05..PIN-07, SNP-01..SNP-08):
//! core's VM with the SEV-SNP hooks (`SnpMmu`) or the legacy SEV hooks (`SevMmu`) over
//! the platform model (firmware, RMP, caches), driven through core's real paths (launch,
//! nested page faults, zaps, conversions, punch holes, teardown). The fake host checks
//! every frame access of the hypervisor against the model's RMP and caches
//! (`common/host.rs`). Each test names the rule it checks and quotes it.

mod common;

use cloister_abi::MemoryKind;
use cloister_core::mmu::{MmuError, PageSize, Scope, VendorError, VendorMmu};
use cloister_core::vm::{Pinning, Vm};
use cloister_core::{Exit, Stop};
use cloister_privmem::PrivMemError;
use cloister_svm::sev::SnpMmu;
use cloister_svm::sev::firmware::{
    AsidState, FirmwareError, FwCall, GuestHandle, PlatformState, SevCommand, SevGuestState,
    SnpGuestState, SnpPageState, page_state,
};
use cloister_svm::sev::platform_model::{ModelAccess, ModelPlatform};
use cloister_svm::sev::rmp::{
    PvalidateError, PvalidateOutcome, Rmp, RmpCall, RmpEntry, RmpError, RmpFaultReason, RmpOp,
    RmpSize, RmpState,
};
use cloister_svm::sev::rmp_record::RmpRecord;
use cloister_svm::{Vmcb, decode_exit};
use common::host::SevHost;
use common::probe::{Probe, Step};
use common::rig::{
    ASID, Config, GCTX, HUGE, PAGE, POLICY, Rig, ScriptVcpu, Shared, Snp, destroy, frame,
    snp_model, spec,
};
use std::collections::BTreeSet;

const K4: RmpSize = RmpSize::Size4K;
const M2: RmpSize = RmpSize::Size2M;
/// Another guest's ASID.
const OTHER_ASID: u32 = 6;
/// Another guest's context page.
const OTHER_GCTX: u64 = 0x8000_5000;
/// The pages launch writes (core/src/launch.rs, cloister_abi::boot): boot info, the
/// PML4 and PDPT of the identity map, the top 4 pages of the boot stack (launch pages
/// on SNP), the image.
const LAUNCH_GPAS: [u64; 8] = [
    0x1000, 0x2000, 0x3000, 0x1f_c000, 0x1f_d000, 0x1f_e000, 0x1f_f000, 0x20_0000,
];

// ---------------------------------------------------------------------------------
// Helpers

/// SNP-01 over every private leaf: the RMP entry of each frame is assigned to the
/// guest's ASID at the GPA the leaf maps it at, and no smaller than the leaf; the
/// model's own check of the mapping agrees, and its invariants hold.
fn assert_leaves_match_the_rmp<A: ModelAccess>(rig: &mut Rig<Snp<A>>) {
    let leaves = rig.leaves();
    assert!(!leaves.is_empty(), "nothing mapped");
    rig.rmp(|rmp| {
        for &(gpa, size, pa) in &leaves {
            for i in 0..size.bytes() / PAGE {
                let at = pa + i * PAGE;
                let entry = rmp.lookup(at);
                assert!(
                    entry.assigned && entry.asid == ASID && entry.frame_gpa(at) == gpa + i * PAGE,
                    "frame {at:#x} mapped at {:#x} has {entry:?}",
                    gpa + i * PAGE
                );
                assert!(
                    entry.size.bytes() >= size.bytes(),
                    "{size:?} leaf at {gpa:#x} over a {:?} entry",
                    entry.size
                );
            }
            let check = rmp.check_nested_map(ASID, gpa, pa, size.into());
            assert!(check.is_ok(), "{gpa:#x}: {check:?}");
        }
        assert_eq!(rmp.check_invariants(), Ok(()));
    });
}

/// Frames the RMP assigns to `asid`, by address.
fn assigned_to<V: VendorMmu>(rig: &Rig<V>, asid: u32) -> BTreeSet<u64> {
    rig.rmp(|rmp| {
        rmp.assigned_frames()
            .filter(|(_, e)| e.asid == asid)
            .map(|(pa, _)| pa)
            .collect()
    })
}

fn assert_no_violations(host: &SevHost) {
    assert!(
        host.violations.is_empty(),
        "the hardware would have refused: {:#x?}",
        host.violations
    );
}

/// The RMP calls the model logged since the last time, naming `pa`.
fn rmp_calls_at<V: VendorMmu>(rig: &Rig<V>, pa: u64) -> Vec<RmpCall> {
    rig.rmp(|rmp| rmp.take_log())
        .into_iter()
        .filter(|call| match *call {
            RmpCall::Rmpupdate { pa: at, .. } | RmpCall::Psmash { pa: at, .. } => at == pa,
        })
        .collect()
}

fn rmpupdate(pa: u64, state: RmpState, result: Result<(), RmpError>) -> RmpCall {
    RmpCall::Rmpupdate { pa, state, result }
}

fn fw(command: SevCommand, arg: u64, result: Result<(), FirmwareError>) -> Step {
    Step::Fw(FwCall {
        command,
        arg,
        result,
    })
}

/// The commands in a trace, with their outcomes.
fn commands(trace: &[Step]) -> Vec<(SevCommand, Result<(), FirmwareError>)> {
    trace
        .iter()
        .filter_map(|s| match s {
            Step::Fw(call) => Some((call.command, call.result)),
            _ => None,
        })
        .collect()
}

/// The exit a real nested page fault with the RMP bit gives (AMD APM vol. 2, VMCB
/// control area: EXITCODE 0x70, EXITINFO1 0x78, EXITINFO2 0x80; #NPF is exit code
/// 0x400; EXITINFO1 bit 0 present, bit 1 write, bit 31 RMP, bit 35 SIZEM), decoded by
/// the SVM backend.
fn rmp_npf(gpa: u64, size_mismatch: bool) -> Exit {
    let mut vmcb = Box::new(Vmcb::ZERO);
    let info1 = 1 | 1 << 1 | 1 << 31 | if size_mismatch { 1 << 35 } else { 0 };
    vmcb.write_u64(0x70, 0x400);
    vmcb.write_u64(0x78, info1);
    vmcb.write_u64(0x80, gpa);
    let exit = decode_exit(&vmcb);
    assert!(
        matches!(exit, Exit::OwnershipFault { gpa: g, size_mismatch: s, .. } if g == gpa && s == size_mismatch),
        "decoded {exit:?}"
    );
    exit
}

/// The VM's own SNP hooks, which know every RMP entry they made, for the teardown
/// after `Vm::into_memory` (which drops the VM's vendor): an attached instance with no
/// entries stands in for them meanwhile (the VM only zaps with it, which costs the SNP
/// hooks nothing).
fn own_snp_vendor<A: ModelAccess + Clone>(rig: &mut Rig<Snp<A>>) -> Snp<A> {
    let access = rig.vm.vendor().platform().0.clone();
    rig.take_vendor(SnpMmu::attach(
        ModelPlatform(access),
        ASID,
        GCTX,
        RmpRecord::default(),
    ))
}

/// A second VM instance of the SNP guest over `memory` (what the first instance's
/// `into_memory` returned), attached to the same ASID and context page.
fn attach(
    config: Config,
    model: Shared,
    mut host: SevHost,
    memory: Vec<cloister_privmem::PrivateMemory>,
    entries: RmpRecord,
) -> Rig<Snp> {
    let vendor = SnpMmu::attach(ModelPlatform(model.clone()), ASID, GCTX, entries);
    let slots = config.slots();
    let vm = Vm::with_memory(&spec(&slots, config.pinning, 2), memory, vendor, &mut host)
        .map_err(|(e, _)| e)
        .expect("second instance");
    Rig {
        vm,
        host,
        model,
        vcpu: ScriptVcpu::default(),
        config,
    }
}

// ---------------------------------------------------------------------------------
// SNP-01

/// SNP-01 "Every private frame mapped for an SNP guest has an RMP entry {assigned, asid
/// = guest asid, gpa = mapped GPA}; the NPT mapping level never exceeds the RMP entry
/// size." Checked after launch, 4 KiB and 2 MiB faults, a partial conversion to shared
/// (which splits a 2 MiB entry) and the conversion back.
#[test]
fn snp_01_every_mapped_private_frame_is_the_guests_at_its_gpa_and_no_larger_than_its_entry() {
    let mut rig = Rig::snp_launched(Config::huge());
    assert_leaves_match_the_rmp(&mut rig);
    // Block 1 holds the image page: 4 KiB. Blocks 2 and 3 are untouched: 2 MiB.
    for gpa in [0x20_1000, 0x40_0000, 0x60_5000] {
        assert_eq!(rig.touch(gpa), None);
        assert_leaves_match_the_rmp(&mut rig);
    }
    let sizes: BTreeSet<_> = rig
        .leaves()
        .iter()
        .map(|l| l.1 == PageSize::Size2M)
        .collect();
    assert_eq!(sizes.len(), 2, "both leaf sizes are exercised");
    assert_eq!(
        rig.vm
            .convert(0x60_5000, PAGE, MemoryKind::Shared, &mut rig.host),
        Ok(1)
    );
    assert_eq!(rig.touch(0x60_6000), None);
    assert_eq!(
        rig.leaf_of(0x60_6000),
        Some((0x60_6000, PageSize::Size4K, frame(0x60_6000)))
    );
    assert_leaves_match_the_rmp(&mut rig);
    assert_eq!(
        rig.vm
            .convert(0x60_5000, PAGE, MemoryKind::Private, &mut rig.host),
        Ok(1)
    );
    assert_eq!(rig.touch(0x60_5000), None);
    assert_leaves_match_the_rmp(&mut rig);
    assert_no_violations(&rig.host);
}

// ---------------------------------------------------------------------------------
// SNP-02

/// SNP-02 "RMP assignment happens when the frame is first prepared for the pool
/// (inode/pool scope), not per page-table mapping; zapping and re-mapping a private NPT
/// entry performs no RMPUPDATE and needs no guest re-validation."
#[test]
fn snp_02_zap_and_refault_cost_no_rmpupdate_and_keep_the_validated_bit() {
    let mut rig = Rig::snp_launched(Config::huge());
    let pages = [(0x40_0000, M2), (0x20_1000, K4)];
    for (gpa, size) in pages {
        assert_eq!(rig.touch(gpa), None);
        let validated = rig.rmp(|rmp| rmp.pvalidate(ASID, gpa, frame(gpa), size, true));
        assert_eq!(validated, Ok(PvalidateOutcome::Changed), "{gpa:#x}");
    }
    let before = rig.leaves();
    let counts = rig.rmp(|rmp| rmp.counts());
    let stats = rig.vm.vendor().stats;
    let refaults = rig.vm.stats().refaults;

    let zapped = rig
        .vm
        .zap(0, rig.config.size, Scope::Private, &mut rig.host);
    assert_eq!(zapped, before.len() as u64);
    assert!(rig.leaves().is_empty());
    for gpa in before.iter().map(|l| l.0) {
        assert_eq!(rig.touch(gpa), None);
    }

    assert_eq!(rig.leaves(), before, "the same frames, at the same sizes");
    let after = rig.rmp(|rmp| rmp.counts());
    assert_eq!(after.rmpupdates, counts.rmpupdates, "no RMPUPDATE");
    assert_eq!(after.psmashes, counts.psmashes);
    assert_eq!(rig.vm.vendor().stats, stats);
    assert_eq!(rig.vm.stats().refaults, refaults + before.len() as u64);
    for (gpa, size) in pages {
        rig.rmp(|rmp| {
            assert!(rmp.lookup(frame(gpa)).validated, "{gpa:#x} still validated");
            assert!(rmp.check_guest_access(ASID, gpa, frame(gpa), size).is_ok());
            assert_eq!(
                rmp.pvalidate(ASID, gpa, frame(gpa), size, true),
                Ok(PvalidateOutcome::Unchanged),
                "nothing for the guest to validate again"
            );
        });
    }
    assert_leaves_match_the_rmp(&mut rig);
    assert_no_violations(&rig.host);
}

// ---------------------------------------------------------------------------------
// SNP-03

/// SNP-03 "Launch pages go Hypervisor → Pre-Guest(immutable) → LAUNCH_UPDATE; on
/// firmware failure the page is reclaimed via firmware before being made shared; no
/// immutable page is ever RMPUPDATEd directly." The successful launch.
#[test]
fn snp_03_launch_pages_go_pre_guest_then_launch_update_then_guest_valid() {
    let (mut rig, probe) = Rig::snp_probed(Config::default());
    probe.take_trace();
    rig.launch().expect("launch");
    let trace = probe.take_trace();
    let leaves = rig.leaves();
    let gpas: Vec<u64> = leaves.iter().map(|l| l.0).collect();
    assert_eq!(gpas, LAUNCH_GPAS);
    for &(gpa, _, pa) in &leaves {
        assert_eq!(
            rig.rmp(|rmp| rmp.lookup(pa)).gpa,
            gpa,
            "launch page {gpa:#x} is the guest's at its GPA"
        );
        let pre_guest = RmpState::private(gpa, K4, ASID, true);
        let updates: Vec<_> = trace
            .iter()
            .enumerate()
            .filter(|(_, s)| s.rmpupdate().is_some_and(|(at, _)| at == pa))
            .collect();
        assert_eq!(updates.len(), 1, "{gpa:#x}: one RMPUPDATE, to Pre-Guest");
        let (i, step) = updates[0];
        assert_eq!(*step, Step::Rmp(rmpupdate(pa, pre_guest, Ok(()))));
        assert_eq!(
            trace[i + 1],
            fw(SevCommand::SnpLaunchUpdate, pa, Ok(())),
            "{gpa:#x}: LAUNCH_UPDATE right after it became Pre-Guest"
        );
        assert_eq!(
            page_state(&rig.rmp(|rmp| rmp.lookup(pa))),
            SnpPageState::GuestValid
        );
    }
    assert_eq!(
        commands(&trace),
        [
            vec![(SevCommand::SnpLaunchUpdate, Ok(())); leaves.len()],
            vec![(SevCommand::SnpLaunchFinish, Ok(()))]
        ]
        .concat()
    );
    assert_eq!(rig.vm.vendor().stats.launch_pages, leaves.len() as u64);
    assert_eq!(
        rig.fw(|fw| fw.snp_guest_state(GCTX)),
        Some(SnpGuestState::Running)
    );
    assert_no_violations(&rig.host);
}

/// SNP-03, a page the firmware refuses: SNP_PAGE_RECLAIM, then RMPUPDATE to shared, and
/// the launch stops with the firmware's status. Nothing ever RMPUPDATEs an immutable
/// page (the model would answer FAIL_PERMISSION).
#[test]
fn snp_03_a_refused_launch_page_is_reclaimed_through_the_firmware_before_it_is_made_shared() {
    let (mut rig, probe) = Rig::snp_probed(Config::default());
    let refusal = FirmwareError::INVALID_PARAM;
    rig.fw(|fw| fw.inject(SevCommand::SnpLaunchUpdate, 3, refusal));
    probe.take_trace();
    let stop = rig.launch().expect_err("the launch stops");
    let trace = probe.take_trace();
    let failed = trace
        .iter()
        .find_map(|s| match s {
            Step::Fw(call) if call.result.is_err() => Some(call.arg),
            _ => None,
        })
        .expect("a refused LAUNCH_UPDATE");
    let gpa = LAUNCH_GPAS[2];
    assert_eq!(failed, frame(gpa), "the third launch page");
    assert_eq!(
        stop,
        Stop::Mmu {
            error: MmuError::External(VendorError::from(refusal)),
            gpa
        }
    );
    let at_page: Vec<Step> = trace
        .iter()
        .copied()
        .filter(|s| match s {
            Step::Rmp(RmpCall::Rmpupdate { pa, .. } | RmpCall::Psmash { pa, .. }) => *pa == failed,
            Step::Fw(call) => call.arg == failed,
            Step::Wbinvd => false,
        })
        .collect();
    assert_eq!(
        at_page,
        [
            Step::Rmp(rmpupdate(
                failed,
                RmpState::private(gpa, K4, ASID, true),
                Ok(())
            )),
            fw(SevCommand::SnpLaunchUpdate, failed, Err(refusal)),
            fw(SevCommand::SnpPageReclaim, failed, Ok(())),
            Step::Rmp(rmpupdate(failed, RmpState::shared(K4), Ok(()))),
        ]
    );
    assert!(
        !trace.iter().any(|s| matches!(
            s,
            Step::Rmp(RmpCall::Rmpupdate {
                result: Err(RmpError::FailPermission),
                ..
            })
        )),
        "an immutable page was RMPUPDATEd: {trace:#?}"
    );
    assert_eq!(rig.rmp(|rmp| rmp.lookup(failed)), RmpEntry::HYPERVISOR);
    let launch_updates = trace
        .iter()
        .filter(|s| s.command() == Some(SevCommand::SnpLaunchUpdate))
        .count();
    assert_eq!(launch_updates, 3, "the launch stopped at the refused page");
    assert!(
        !commands(&trace)
            .iter()
            .any(|c| c.0 == SevCommand::SnpLaunchFinish)
    );
    for gpa in &LAUNCH_GPAS[..2] {
        let entry = rig.rmp(|rmp| rmp.lookup(frame(*gpa)));
        assert_eq!(page_state(&entry), SnpPageState::GuestValid);
    }
    assert_eq!(rig.vm.vendor().stats.quarantined, 0);
}

/// SNP-03, a refused page the firmware will not reclaim either: it stays immutable,
/// out of use, and is never RMPUPDATEd.
#[test]
fn snp_03_a_refused_launch_page_the_firmware_keeps_is_never_rmpupdated() {
    let mut rig = Rig::snp(Config::default());
    rig.fw(|fw| {
        fw.inject(
            SevCommand::SnpLaunchUpdate,
            1,
            FirmwareError::INVALID_PAGE_STATE,
        );
        fw.inject(
            SevCommand::SnpPageReclaim,
            1,
            FirmwareError::INVALID_PAGE_STATE,
        );
    });
    rig.rmp(|rmp| rmp.take_log());
    let stop = rig.launch().expect_err("the launch stops");
    let pa = frame(LAUNCH_GPAS[0]);
    assert!(
        matches!(stop, Stop::Mmu { error: MmuError::External(e), gpa } if e.code == 0x1a && gpa == LAUNCH_GPAS[0]),
        "{stop:?}"
    );
    assert_eq!(
        rmp_calls_at(&rig, pa),
        [rmpupdate(
            pa,
            RmpState::private(LAUNCH_GPAS[0], K4, ASID, true),
            Ok(())
        )]
    );
    assert_eq!(
        page_state(&rig.rmp(|rmp| rmp.lookup(pa))),
        SnpPageState::PreGuest
    );
    assert_eq!(rig.vm.vendor().stats.quarantined, 1);
}

// ---------------------------------------------------------------------------------
// SNP-04

/// SNP-04 "RMPUPDATE FAIL_OVERLAP and PSMASH FAIL_INUSE are retried; any other RMPUPDATE
/// failure leaks (quarantines) the frame instead of returning it to the pool."
/// RMPUPDATE FAIL_INUSE (another CPU holds the entry) is retried too.
#[test]
fn snp_04_rmpupdate_fail_inuse_is_retried() {
    let mut rig = Rig::snp_launched(Config::default());
    let (gpa, pa) = (0x40_0000, frame(0x40_0000));
    rig.rmp(|rmp| {
        rmp.take_log();
        rmp.inject_inuse(RmpOp::Rmpupdate, 1);
    });
    assert_eq!(rig.touch(gpa), None);
    let assign = RmpState::private(gpa, K4, ASID, false);
    assert_eq!(
        rmp_calls_at(&rig, pa),
        [
            rmpupdate(pa, assign, Err(RmpError::FailInUse)),
            rmpupdate(pa, assign, Ok(()))
        ]
    );
    assert_eq!(rig.vm.vendor().stats.retries, 1);
    assert_leaves_match_the_rmp(&mut rig);
}

/// SNP-04: PSMASH FAIL_INUSE, met when a 4 KiB hole is punched in a 2 MiB entry.
#[test]
fn snp_04_psmash_fail_inuse_is_retried() {
    let mut rig = Rig::snp_launched(Config::huge());
    assert_eq!(rig.touch(0x40_0000), None);
    let block = frame(0x40_0000);
    assert_eq!(rig.rmp(|rmp| rmp.lookup(block)).size, M2);
    rig.rmp(|rmp| {
        rmp.take_log();
        rmp.inject_inuse(RmpOp::Psmash, 1);
    });
    assert_eq!(rig.vm.punch_hole(0x40_1000, PAGE, &mut rig.host), Ok(1));
    let log = rig.rmp(|rmp| rmp.take_log());
    assert_eq!(
        log,
        [
            RmpCall::Psmash {
                pa: block,
                result: Err(RmpError::FailInUse)
            },
            RmpCall::Psmash {
                pa: block,
                result: Ok(())
            },
            rmpupdate(frame(0x40_1000), RmpState::shared(K4), Ok(())),
        ]
    );
    assert_eq!(rig.vm.vendor().stats.retries, 1);
    assert_eq!(
        rig.rmp(|rmp| rmp.lookup(frame(0x40_1000))),
        RmpEntry::HYPERVISOR
    );
    assert_eq!(
        assigned_to(&rig, ASID).range(block..block + HUGE).count(),
        511
    );
    assert_eq!(rig.touch(0x40_2000), None);
    assert_leaves_match_the_rmp(&mut rig);
    assert_no_violations(&rig.host);
}

/// SNP-04: RMPUPDATE FAIL_OVERLAP. The model has no injection for it, so another CPU
/// makes it happen for real: between the hypervisor's scrub and its 2 MiB RMPUPDATE of
/// a block, a 4 KiB entry of another guest appears inside the block (FAIL_OVERLAP), and
/// goes again after the second failed attempt. The hypervisor retries and gets its
/// 2 MiB entry.
#[test]
fn snp_04_rmpupdate_fail_overlap_is_retried() {
    let (mut rig, probe) = Rig::snp_probed(Config::huge());
    rig.launch().expect("launch");
    let (gpa, block) = (0x40_0000, frame(0x40_0000));
    let racing = block + 0x5000;
    let mut raced = false;
    probe.before_each(move |model| {
        let rmp = &mut model.firmware.rmp;
        if !raced {
            raced = true;
            let other = RmpState::private(0x5000, K4, OTHER_ASID, false);
            rmp.rmpupdate(racing, other).expect("the other CPU's entry");
            return true;
        }
        let overlaps = rmp
            .log()
            .iter()
            .filter(|c| matches!(c, RmpCall::Rmpupdate { pa, result: Err(RmpError::FailOverlap), .. } if *pa == block))
            .count();
        if overlaps < 2 {
            return true;
        }
        rmp.rmpupdate(racing, RmpState::shared(K4)).expect("the other CPU is done");
        false
    });
    probe.take_trace();
    assert_eq!(rig.touch(gpa), None);
    let assign = RmpState::private(gpa, M2, ASID, false);
    let updates: Vec<Step> = probe
        .take_trace()
        .into_iter()
        .filter(|s| s.rmpupdate().is_some())
        .collect();
    assert_eq!(
        updates,
        [
            Step::Rmp(rmpupdate(block, assign, Err(RmpError::FailOverlap))),
            Step::Rmp(rmpupdate(block, assign, Err(RmpError::FailOverlap))),
            Step::Rmp(rmpupdate(block, assign, Ok(()))),
        ]
    );
    assert_eq!(rig.vm.vendor().stats.retries, 2);
    assert_eq!(rig.leaf_of(gpa), Some((gpa, PageSize::Size2M, block)));
    assert_leaves_match_the_rmp(&mut rig);
}

/// SNP-04: any other RMPUPDATE failure quarantines the frame. The model cannot inject
/// one, so it happens for real: the frame became immutable behind the hypervisor's
/// back (RMPUPDATE to a Pre-Guest-like entry), and RMPUPDATE to shared answers
/// FAIL_PERMISSION. The frame is poisoned: never retried, never scrubbed, never handed
/// out again; its neighbour in the same hole goes back normally.
#[test]
fn snp_04_any_other_rmpupdate_failure_quarantines_the_frame_for_good() {
    let mut rig = Rig::snp_launched(Config::default());
    let (stuck, free) = (0x40_0000, 0x40_1000);
    for gpa in [stuck, free] {
        assert_eq!(rig.touch(gpa), None);
    }
    let immutable = RmpState::private(stuck, K4, ASID, true);
    rig.rmp(|rmp| rmp.rmpupdate(frame(stuck), immutable))
        .unwrap();
    rig.rmp(|rmp| rmp.take_log());
    rig.host.take_accesses();
    let prepared = rig.vm.prepared_frames();

    assert_eq!(rig.vm.punch_hole(stuck, 2 * PAGE, &mut rig.host), Ok(1));
    let log = rig.rmp(|rmp| rmp.take_log());
    assert_eq!(
        log,
        [
            rmpupdate(
                frame(stuck),
                RmpState::shared(K4),
                Err(RmpError::FailPermission)
            ),
            rmpupdate(frame(free), RmpState::shared(K4), Ok(())),
        ],
        "FAIL_PERMISSION is not retried"
    );
    assert_eq!(rig.vm.vendor().stats.quarantined, 1);
    assert_eq!(rig.vm.prepared_frames(), prepared - 2);
    assert!(
        rig.rmp(|rmp| rmp.lookup(frame(stuck)).immutable),
        "still not ours"
    );

    assert_eq!(
        rig.touch(stuck),
        Some(Stop::PrivateMemory {
            gpa: stuck,
            access: cloister_core::Access::Write,
            error: PrivMemError::Poisoned { offset: stuck }
        })
    );
    assert_eq!(rig.touch(free), None);
    let accesses = rig.host.take_accesses();
    assert!(
        !accesses.contains(&frame(stuck)),
        "a quarantined frame was scrubbed"
    );
    assert!(
        accesses.contains(&frame(free)),
        "the other frame was scrubbed for reuse"
    );
    assert_no_violations(&rig.host);
}

/// SNP-04 at 2 MiB: a whole 2 MiB entry RMPUPDATE will not take back (made immutable
/// behind the hypervisor's back) quarantines all 512 frames of its block.
#[test]
fn snp_04_a_2m_entry_that_will_not_go_back_quarantines_its_block() {
    let mut rig = Rig::snp_launched(Config::huge());
    let (gpa, block) = (0x40_0000, frame(0x40_0000));
    assert_eq!(rig.touch(gpa), None);
    let immutable = RmpState::private(gpa, M2, ASID, true);
    rig.rmp(|rmp| rmp.rmpupdate(block, immutable)).unwrap();
    rig.rmp(|rmp| rmp.take_log());
    rig.host.take_accesses();
    assert_eq!(rig.vm.punch_hole(gpa, HUGE, &mut rig.host), Ok(0));
    assert_eq!(
        rig.rmp(|rmp| rmp.take_log()),
        [rmpupdate(
            block,
            RmpState::shared(M2),
            Err(RmpError::FailPermission)
        )]
    );
    assert_eq!(rig.vm.vendor().stats.quarantined, 512);
    for at in [gpa, gpa + 0x1f_f000] {
        assert!(matches!(
            rig.touch(at),
            Some(Stop::PrivateMemory {
                error: PrivMemError::Poisoned { .. },
                ..
            })
        ));
    }
    assert_eq!(rig.host.take_accesses(), [], "nothing scrubbed");
    assert_no_violations(&rig.host);
}

/// SNP-04, on conversion to shared: a frame the RMP will not give back is poisoned,
/// neither scrubbed nor made the hypervisor's shared memory, nor counted.
#[test]
fn snp_04_a_quarantined_frame_is_not_shared_on_conversion() {
    let mut rig = Rig::snp_launched(Config::default());
    let (stuck, free) = (0x40_0000, 0x40_1000);
    for gpa in [stuck, free] {
        assert_eq!(rig.touch(gpa), None);
    }
    let immutable = RmpState::private(stuck, K4, ASID, true);
    rig.rmp(|rmp| rmp.rmpupdate(frame(stuck), immutable))
        .unwrap();
    rig.host.take_accesses();
    let converted = rig
        .vm
        .convert(stuck, 2 * PAGE, MemoryKind::Shared, &mut rig.host);
    assert_eq!(converted, Ok(1));
    assert_eq!(rig.vm.vendor().stats.quarantined, 1);
    assert!(!rig.vm.is_shared_page(stuck));
    assert!(rig.vm.is_shared_page(free));
    let accesses = rig.host.take_accesses();
    assert!(!accesses.contains(&frame(stuck)));
    assert!(
        accesses.contains(&frame(free)),
        "the shared frame was scrubbed"
    );
    assert!(matches!(
        rig.touch(stuck),
        Some(Stop::PrivateMemory {
            error: PrivMemError::Poisoned { .. },
            ..
        })
    ));
    assert_no_violations(&rig.host);
}

// ---------------------------------------------------------------------------------
// SNP-05

/// SNP-05 "An RMP size-mismatch fault on a 2 MiB RMP entry triggers PSMASH plus a zap
/// of the covering 2 MiB GFN range." The guest PVALIDATEs 4 KiB inside a 2 MiB entry,
/// the hardware exits with an RMP #NPF with SIZEM; afterwards the page refaults at
/// 4 KiB with no RMPUPDATE, and the guest's 4 KiB PVALIDATE succeeds.
#[test]
fn snp_05_a_size_mismatch_psmashes_and_zaps_the_2m_range_which_refaults_at_4k() {
    let mut rig = Rig::snp_launched(Config::huge());
    let (gpa, pa, block) = (0x40_3000, frame(0x40_3000), frame(0x40_0000));
    assert_eq!(rig.touch(gpa), None);
    assert_eq!(rig.leaf_of(gpa), Some((0x40_0000, PageSize::Size2M, block)));
    assert_eq!(
        rig.touch(0x60_0000),
        None,
        "a neighbouring 2 MiB leaf, left alone"
    );
    let pvalidate = rig.rmp(|rmp| rmp.pvalidate(ASID, gpa, pa, K4, true));
    assert!(
        matches!(pvalidate, Err(PvalidateError::SizeMismatchFault(f)) if f.reason == RmpFaultReason::SizeMismatch),
        "{pvalidate:?}"
    );
    rig.rmp(|rmp| rmp.take_log());
    let zapped = rig.vm.stats().zapped;
    let rmpupdates = rig.rmp(|rmp| rmp.counts().rmpupdates);

    assert_eq!(rig.exit(rmp_npf(gpa, true)), None);
    assert_eq!(
        rig.rmp(|rmp| rmp.take_log()),
        [RmpCall::Psmash {
            pa: block,
            result: Ok(())
        }]
    );
    assert_eq!(rig.vm.vendor().stats.psmashes, 1);
    assert_eq!(rig.leaf_of(gpa), None, "the 2 MiB range was zapped");
    assert_eq!(rig.vm.stats().zapped, zapped + 1);
    assert!(rig.leaf_of(0x60_0000).is_some());

    assert_eq!(rig.touch(gpa), None);
    assert_eq!(rig.leaf_of(gpa), Some((gpa, PageSize::Size4K, pa)));
    let entry = rig.rmp(|rmp| rmp.lookup(pa));
    assert_eq!((entry.size, entry.gpa, entry.asid), (K4, gpa, ASID));
    assert_eq!(
        rig.rmp(|rmp| rmp.counts().rmpupdates),
        rmpupdates,
        "split, not re-assigned"
    );
    assert_eq!(
        rig.rmp(|rmp| rmp.pvalidate(ASID, gpa, pa, K4, true)),
        Ok(PvalidateOutcome::Changed)
    );
    assert!(
        rig.rmp(|rmp| rmp.check_guest_access(ASID, gpa, pa, K4))
            .is_ok()
    );
    assert_leaves_match_the_rmp(&mut rig);
    assert_no_violations(&rig.host);
}

// ---------------------------------------------------------------------------------
// SNP-06

/// SNP-06 "After LAUNCH_FINISH, private faults may assign frames on demand; before it,
/// only launch population may assign." LAUNCH_FINISH is made to fail so the RMP can be
/// looked at just before it: only the launch pages are the guest's, even with every
/// frame prepared up front.
#[test]
fn snp_06_before_launch_finish_only_the_launch_pages_are_assigned() {
    for pinning in [Pinning::Demand, Pinning::Upfront] {
        let config = Config {
            pinning,
            ..Config::huge()
        };
        let mut rig = Rig::snp(config);
        let refusal = FirmwareError::INVALID_CONFIG;
        rig.fw(|fw| fw.inject(SevCommand::SnpLaunchFinish, 1, refusal));
        let stop = rig.launch().expect_err("LAUNCH_FINISH refused");
        assert_eq!(
            stop,
            Stop::Mmu {
                error: MmuError::External(refusal.into()),
                gpa: 0
            }
        );
        let launch_frames: BTreeSet<u64> = LAUNCH_GPAS.iter().map(|&g| frame(g)).collect();
        assert_eq!(assigned_to(&rig, ASID), launch_frames, "{pinning:?}");
        let prepared = rig.vm.prepared_frames();
        match pinning {
            Pinning::Demand => assert_eq!(prepared, LAUNCH_GPAS.len() as u64),
            Pinning::Upfront => assert_eq!(prepared, config.size / PAGE),
        }
    }
}

/// SNP-06, after LAUNCH_FINISH: a first touch assigns its frame then and there; with
/// upfront pinning LAUNCH_FINISH assigned everything and faults assign nothing.
#[test]
fn snp_06_after_launch_finish_faults_assign_on_demand() {
    let mut rig = Rig::snp_launched(Config::default());
    let launch_frames: BTreeSet<u64> = LAUNCH_GPAS.iter().map(|&g| frame(g)).collect();
    assert_eq!(assigned_to(&rig, ASID), launch_frames);
    rig.rmp(|rmp| rmp.take_log());
    assert_eq!(rig.touch(0x40_0000), None);
    assert_eq!(
        rig.rmp(|rmp| rmp.take_log()),
        [rmpupdate(
            frame(0x40_0000),
            RmpState::private(0x40_0000, K4, ASID, false),
            Ok(())
        )]
    );
    assert_eq!(rig.vm.stats().fault_prepared, 1);

    let config = Config {
        pinning: Pinning::Upfront,
        ..Config::huge()
    };
    let mut rig = Rig::snp_launched(config);
    assert_eq!(assigned_to(&rig, ASID).len() as u64, config.size / PAGE);
    assert_eq!(rig.vm.prepared_frames(), config.size / PAGE);
    rig.rmp(|rmp| rmp.take_log());
    for gpa in [0x20_1000, 0x40_0000, 0x60_0000] {
        assert_eq!(rig.touch(gpa), None);
    }
    assert_eq!(rig.rmp(|rmp| rmp.take_log()), [], "nothing left to assign");
    assert_eq!(rig.vm.stats().fault_prepared, 0);
    assert_eq!(rig.vm.stats().refaults, 3);
    assert_leaves_match_the_rmp(&mut rig);
    assert_no_violations(&rig.host);
}

// ---------------------------------------------------------------------------------
// SNP-07

/// SNP-07 "The ASID-to-VM relation is many-to-one capable (two VM objects sharing an
/// ASID during intra-host migration see consistent RMP state)." A second instance
/// attached to the first's ASID and private memory maps the same frames at the same
/// sizes without a single RMPUPDATE.
#[test]
fn snp_07_a_second_instance_on_the_asid_maps_the_same_frames_without_rmpupdate() {
    let config = Config::huge();
    let mut first = Rig::snp_launched(config);
    for gpa in [0x20_1000, 0x40_0000, 0x60_2000] {
        assert_eq!(first.touch(gpa), None);
    }
    let leaves = first.leaves();
    let entries = first.rmp_entries();
    assert_eq!(entries.huge_blocks().count(), 2);
    let (memory, host, model) = first.into_memory();
    let counts = model.borrow().firmware.rmp.counts();

    let mut second = attach(config, model.clone(), host, memory, entries);
    for &(gpa, ..) in &leaves {
        assert_eq!(second.touch(gpa), None);
    }
    assert_eq!(second.leaves(), leaves);
    let after = second.rmp(|rmp| rmp.counts());
    assert_eq!(
        (after.rmpupdates, after.psmashes),
        (counts.rmpupdates, counts.psmashes)
    );
    assert_eq!(second.vm.stats().fault_prepared, 0);
    assert_eq!(second.vm.stats().refaults, leaves.len() as u64);
    assert_leaves_match_the_rmp(&mut second);
    assert_no_violations(&second.host);
}

/// SNP-07 with every frame prepared up front: the first instance's 4 KiB entries
/// (launch pages among them) are the RMP state the second instance finds, and it must
/// not map their block at 2 MiB.
#[test]
fn snp_07_a_second_instance_respects_the_4k_entries_of_the_first() {
    let config = Config {
        pinning: Pinning::Upfront,
        ..Config::huge()
    };
    let first = Rig::snp_launched(config);
    let entries = first.rmp_entries();
    let (memory, host, model) = first.into_memory();
    let mut second = attach(config, model, host, memory, entries);
    for gpa in [0x1000, 0x20_1000, 0x40_0000] {
        assert_eq!(
            second.touch(gpa),
            None,
            "{gpa:#x}: the second instance does not know the first's 4 KiB entries"
        );
    }
    assert_eq!(
        second.leaf_of(0x1000),
        Some((0x1000, PageSize::Size4K, frame(0x1000)))
    );
    assert_leaves_match_the_rmp(&mut second);
}

/// SNP-07: frames the first instance assigned go back to the hypervisor when the second
/// instance releases them (a punch hole), before they are scrubbed and reused.
#[test]
fn snp_07_a_second_instance_gives_back_frames_the_first_assigned() {
    let config = Config::default();
    let mut first = Rig::snp_launched(config);
    let gpa = 0x40_1000;
    assert_eq!(first.touch(gpa), None);
    let entries = first.rmp_entries();
    let (memory, host, model) = first.into_memory();
    let mut second = attach(config, model, host, memory, entries);
    assert_eq!(second.vm.punch_hole(gpa, PAGE, &mut second.host), Ok(1));
    assert_eq!(
        second.rmp(|rmp| rmp.lookup(frame(gpa))),
        RmpEntry::HYPERVISOR,
        "the punched frame goes back to the pool still assigned to the guest: the second \
         instance does not know the first's 4 KiB entries"
    );
    assert_eq!(second.touch(gpa), None);
    assert_leaves_match_the_rmp(&mut second);
    assert_no_violations(&second.host);
}

// ---------------------------------------------------------------------------------
// SNP-08

/// SNP-08 "VMSA/VMCB-class pages are never 2 MiB aligned; guest AP-create requests with
/// 2 MiB-aligned VMSA GPAs are rejected." The guest context page is the one such page
/// the SNP hooks take: a 2 MiB-aligned one is refused before anything reaches the RMP or
/// the firmware. Not covered: there is no AP-creation request (no SVM_VMGEXIT_AP_CREATION
/// in `ghcb_transport`) and no VMSA launch path (no SNP_LAUNCH_UPDATE of type VMSA) in
/// the hypervisor, so no VMSA GPA can be checked; VMCBs are hypervisor allocations
/// outside the model.
#[test]
fn snp_08_a_2m_aligned_guest_context_page_is_refused() {
    let model = snp_model(false);
    for aligned in [0x8000_0000, 0x20_0000, 0] {
        model.borrow_mut().firmware.take_log();
        model.borrow_mut().firmware.rmp.take_log();
        let refused = SnpMmu::launch(ModelPlatform(model.clone()), ASID, aligned, POLICY);
        let error = refused.err().expect("refused");
        assert_eq!(error.name, "SNP context page is 2 MiB aligned");
        let model = model.borrow();
        assert_eq!(model.firmware.log(), [], "no firmware command");
        assert_eq!(model.firmware.rmp.log(), [], "no RMPUPDATE");
        assert_eq!(model.firmware.rmp.lookup(aligned), RmpEntry::HYPERVISOR);
        assert_eq!(model.firmware.asid_state(ASID), Some(AsidState::Clean));
    }
    let started = SnpMmu::launch(ModelPlatform(model.clone()), ASID, GCTX, POLICY);
    assert!(started.is_ok());
    let model = model.borrow();
    assert_eq!(
        page_state(&model.firmware.rmp.lookup(GCTX)),
        SnpPageState::Context
    );
    assert_eq!(
        model.firmware.snp_guest_state(GCTX),
        Some(SnpGuestState::Launch)
    );
    assert_eq!(model.firmware.snp_guest_asid(GCTX), Some(ASID));
}

// ---------------------------------------------------------------------------------
// The model refuses mappings the hardware would refuse

/// "The model rejects a mapping whose RMP entry does not match (wrong ASID, GPA, size
/// or not validated) the way the hardware would (an RMP fault, reported)." The RMP is
/// changed behind the hypervisor's back between a zap and the refault: the refault maps
/// nothing and the VM stops with an ownership fault naming the reason.
#[test]
fn a_refault_over_an_rmp_entry_that_no_longer_matches_stops_with_the_reason() {
    let gpa = 0x40_0000;
    let pa = frame(gpa);
    let cases: [(&str, RmpFaultReason, &str, Config); 4] = [
        (
            "another ASID",
            RmpFaultReason::WrongAsid,
            "RMP fault: page assigned to another ASID",
            Config::default(),
        ),
        (
            "another GPA",
            RmpFaultReason::WrongGpa,
            "RMP fault: page assigned at another GPA",
            Config::default(),
        ),
        (
            "shared",
            RmpFaultReason::NotAssigned,
            "RMP fault: page not assigned to the guest",
            Config::default(),
        ),
        (
            "smashed",
            RmpFaultReason::SizeMismatch,
            "RMP fault: mapping larger than the RMP entry",
            Config::huge(),
        ),
    ];
    for (change, reason, name, config) in cases {
        let mut rig = Rig::snp_launched(config);
        assert_eq!(rig.touch(gpa), None);
        rig.vm.zap(gpa, HUGE, Scope::Private, &mut rig.host);
        rig.rmp(|rmp| match change {
            "another ASID" => rmp.rmpupdate(pa, RmpState::private(gpa, K4, OTHER_ASID, false)),
            "another GPA" => rmp.rmpupdate(pa, RmpState::private(gpa + HUGE, K4, ASID, false)),
            "shared" => rmp.rmpupdate(pa, RmpState::shared(K4)),
            _ => rmp.psmash(pa),
        })
        .unwrap();
        let stop = rig.touch(gpa);
        assert!(
            matches!(stop, Some(Stop::OwnershipFault { gpa: g, error, .. })
                if g == gpa && error.name == name && error.code == reason as u64),
            "{change}: {stop:?}"
        );
        assert_eq!(rig.leaf_of(gpa), None, "{change}: mapped anyway");
    }
}

/// The same, not-validated half: a page the hypervisor just assigned may be mapped (the
/// guest validates through that mapping), but a guest access faults NotValidated until
/// the guest PVALIDATEs it, at either size.
#[test]
fn a_freshly_assigned_page_is_not_validated_until_the_guest_pvalidates_it() {
    let mut rig = Rig::snp_launched(Config::huge());
    for (gpa, size) in [(0x20_1000, K4), (0x40_0000, M2)] {
        assert_eq!(rig.touch(gpa), None);
        let pa = frame(gpa);
        let check = rig.rmp(|rmp| rmp.check_guest_access(ASID, gpa, pa, size));
        assert_eq!(
            check.fault().map(|f| f.reason),
            Some(RmpFaultReason::NotValidated),
            "{gpa:#x}"
        );
        assert_eq!(
            rig.rmp(|rmp| rmp.pvalidate(ASID, gpa, pa, size, true)),
            Ok(PvalidateOutcome::Changed)
        );
        assert!(
            rig.rmp(|rmp| rmp.check_guest_access(ASID, gpa, pa, size))
                .is_ok()
        );
    }
}

/// An RMP nested page fault the hardware reports without SIZEM is not something the
/// hypervisor can fix: the VM stops with the hardware's report.
#[test]
fn an_rmp_fault_without_size_mismatch_stops_with_the_hardwares_report() {
    let mut rig = Rig::snp_launched(Config::default());
    assert_eq!(rig.touch(0x40_0000), None);
    let exit = rmp_npf(0x40_0000, false);
    let Exit::OwnershipFault { code, .. } = exit else {
        unreachable!()
    };
    let error = VendorError::failed(code, cloister_core::vm::HARDWARE_OWNERSHIP_FAULT);
    let stop = rig.exit(exit);
    assert!(
        matches!(stop, Some(Stop::OwnershipFault { gpa: 0x40_0000, error: e, .. }) if e == error),
        "{stop:?}"
    );
    assert_eq!(rig.vm.vendor().stats.psmashes, 0);
}

// ---------------------------------------------------------------------------------
// PIN-05

/// PIN-05 "If the host-side backing of an already-pinned GFN changes (malicious/buggy
/// VMM remap), the old frame's guest-key cache lines are flushed (VM_PAGE_FLUSH or
/// equivalent) before the old frame is released." Private pools are never remapped, so
/// the frames that leave the workload are those punched out, converted to shared or
/// destroyed. Each is dirtied under the guest key first; the host refuses to touch a
/// frame with dirty guest lines (its scrub for the next user, above all).
fn punch_then_reuse<V: VendorMmu>(rig: &mut Rig<V>, gpa: u64) {
    let pa = frame(gpa);
    assert_eq!(rig.touch(gpa), None);
    rig.rmp(|rmp| rmp.guest_write(ASID, pa));
    assert!(rig.rmp(|rmp| rmp.dirty_guest_lines(pa)));
    assert_eq!(rig.vm.punch_hole(gpa, PAGE, &mut rig.host), Ok(1));
    assert!(!rig.rmp(|rmp| rmp.dirty_guest_lines(pa)), "released dirty");
    rig.host.take_accesses();
    assert_eq!(rig.touch(gpa), None);
    assert!(
        rig.host.take_accesses().contains(&pa),
        "reused: scrubbed again"
    );
    assert_no_violations(&rig.host);
}

#[test]
fn pin_05_a_punched_out_frame_has_no_guest_lines_left_when_it_is_reused() {
    let mut rig = Rig::snp_launched(Config::default());
    punch_then_reuse(&mut rig, 0x40_0000);
    assert_eq!(rig.rmp(|rmp| rmp.lookup(frame(0x40_0000))).asid, ASID);

    let mut rig = Rig::sev(Config::default());
    rig.launch().expect("launch");
    punch_then_reuse(&mut rig, 0x40_0000);
}

/// PIN-05, conversion to shared: the frame is scrubbed right after it leaves the
/// workload, so its guest lines must be gone by then; a whole 2 MiB entry too.
#[test]
fn pin_05_a_frame_converted_to_shared_is_flushed_before_its_scrub() {
    let mut rig = Rig::snp_launched(Config::huge());
    assert_eq!(rig.touch(0x40_0000), None);
    assert_eq!(rig.touch(0x20_1000), None);
    let dirty = [0x20_1000, 0x40_0000, 0x40_7000, 0x5f_f000].map(frame);
    for pa in dirty {
        rig.rmp(|rmp| rmp.guest_write(ASID, pa));
    }
    rig.host.take_accesses();
    let converted = rig
        .vm
        .convert(0x20_1000, PAGE, MemoryKind::Shared, &mut rig.host);
    assert_eq!(converted, Ok(1));
    let converted = rig
        .vm
        .convert(0x40_0000, HUGE, MemoryKind::Shared, &mut rig.host);
    assert_eq!(converted, Ok(512));
    let accesses = rig.host.take_accesses();
    for pa in dirty {
        assert!(!rig.rmp(|rmp| rmp.dirty_guest_lines(pa)), "{pa:#x}");
        assert!(
            accesses.contains(&pa),
            "{pa:#x} scrubbed for the hypervisor"
        );
        assert_eq!(rig.rmp(|rmp| rmp.lookup(pa)), RmpEntry::HYPERVISOR);
    }
    assert_no_violations(&rig.host);

    let mut rig = Rig::sev(Config::default());
    rig.launch().expect("launch");
    assert_eq!(rig.touch(0x40_0000), None);
    rig.rmp(|rmp| rmp.guest_write(ASID, frame(0x40_0000)));
    let converted = rig
        .vm
        .convert(0x40_0000, PAGE, MemoryKind::Shared, &mut rig.host);
    assert_eq!(converted, Ok(1));
    assert!(!rig.rmp(|rmp| rmp.dirty_guest_lines(frame(0x40_0000))));
    assert_no_violations(&rig.host);
}

/// PIN-05, teardown: `Vm::into_memory` then `PrivateMemory::destroy` with the SNP hooks
/// (a second instance attached to the guest, since the VM keeps its own). Every frame
/// comes back without guest lines and the hypervisor's, and the next guest's scrubs of
/// the same frames are fine.
#[test]
fn pin_05_destroyed_private_memory_returns_frames_without_guest_lines() {
    let config = Config::huge();
    let mut rig = Rig::snp_launched(config);
    for gpa in [0x20_1000, 0x40_0000] {
        assert_eq!(rig.touch(gpa), None);
    }
    let mut frames = Vec::new();
    for (_, size, pa) in rig.leaves() {
        frames.extend((0..size.bytes() / PAGE).map(|i| pa + i * PAGE));
    }
    for &pa in &frames {
        rig.rmp(|rmp| rmp.guest_write(ASID, pa));
    }
    let prepared = rig.vm.prepared_frames();
    let mut guest = own_snp_vendor(&mut rig);
    let (memory, mut host, model) = rig.into_memory();
    let (released, quarantined) = destroy(memory, &mut guest, &mut host);
    assert_eq!((released, quarantined), (prepared, vec![]));
    {
        let model = model.borrow();
        for &pa in &frames {
            assert!(!model.firmware.rmp.dirty_guest_lines(pa), "{pa:#x}");
        }
        assert_eq!(
            model
                .firmware
                .rmp
                .assigned_frames()
                .filter(|(_, e)| e.asid == ASID)
                .count(),
            0
        );
    }
    assert_no_violations(&host);

    // The pool's next guest.
    let vendor = SnpMmu::launch(ModelPlatform(model.clone()), OTHER_ASID, OTHER_GCTX, POLICY);
    let mut next = Rig::build(config, model, vendor.expect("the next guest"));
    next.launch().expect("launch");
    for gpa in [0x20_1000, 0x40_0000] {
        assert_eq!(next.touch(gpa), None);
    }
    assert_no_violations(&next.host);
}

// ---------------------------------------------------------------------------------
// PIN-06

/// PIN-06 "A frame transferred from host to guest ownership has its host-key cache lines
/// written back/invalidated before first guest use when the platform is not
/// cache-coherent across keys." The scrub leaves host lines dirty; without
/// SME_COHERENT each frame handed over is CLFLUSHed, with it none is.
fn host_lines_at_first_use<V: VendorMmu>(mut rig: Rig<V>) {
    let coherent = rig.config.coherent;
    rig.launch().expect("launch");
    for (gpa, ..) in rig.leaves() {
        let dirty = rig.rmp(|rmp| rmp.dirty_host_lines(frame(gpa)));
        assert_eq!(
            dirty, coherent,
            "launch page {gpa:#x}, coherent: {coherent}"
        );
    }
    for (gpa, frames) in [(0x20_1000, 1), (0x40_0000, 512)] {
        let clflushes = rig.rmp(|rmp| rmp.counts().clflushes);
        assert_eq!(rig.touch(gpa), None);
        let flushed = rig.rmp(|rmp| rmp.counts().clflushes) - clflushes;
        assert_eq!(flushed, if coherent { 0 } else { frames }, "{gpa:#x}");
        for i in 0..frames {
            let pa = frame(gpa + i * PAGE);
            assert_eq!(rig.rmp(|rmp| rmp.dirty_host_lines(pa)), coherent, "{pa:#x}");
        }
    }
    assert_no_violations(&rig.host);
}

#[test]
fn pin_06_host_lines_are_flushed_before_first_guest_use_unless_coherent() {
    for coherent in [false, true] {
        let config = Config {
            coherent,
            ..Config::huge()
        };
        host_lines_at_first_use(Rig::snp(config));
        host_lines_at_first_use(Rig::sev(config));
    }
}

// ---------------------------------------------------------------------------------
// PIN-07

/// PIN-07 "Destroying a region with pinned frames performs a whole-cache writeback (or
/// per-frame guest-key flush) before any of those frames re-enter the pool." SNP:
/// destroy flushes each frame with the guest's key as it returns; retiring the guest
/// (DECOMMISSION, context page reclaimed, WBINVD, SNP_DF_FLUSH) leaves the ASID clean
/// for the next guest.
#[test]
fn pin_07_snp_destroy_flushes_every_frame_and_retire_writes_back_before_the_asid_is_reused() {
    let config = Config::huge();
    let (mut rig, probe) = Rig::snp_probed(config);
    rig.launch().expect("launch");
    for gpa in [0x20_1000, 0x40_0000] {
        assert_eq!(rig.touch(gpa), None);
    }
    for (_, size, pa) in rig.leaves() {
        for i in 0..size.bytes() / PAGE {
            rig.rmp(|rmp| rmp.guest_write(ASID, pa + i * PAGE));
        }
    }
    let prepared = rig.vm.prepared_frames();
    let mut guest = own_snp_vendor(&mut rig);
    let (memory, mut host, model) = rig.into_memory();
    let flushes = model.borrow().firmware.rmp.counts().vm_page_flushes;
    let (released, _) = destroy(memory, &mut guest, &mut host);
    assert_eq!(released, prepared);
    {
        let rmp = &model.borrow().firmware.rmp;
        assert!(rmp.counts().vm_page_flushes - flushes >= prepared);
        let pool = (0..config.size / PAGE).map(|i| frame(i * PAGE));
        assert!(pool.clone().all(|pa| !rmp.dirty_guest_lines(pa)));
        assert!(pool.clone().all(|pa| !rmp.lookup(pa).assigned));
    }
    assert_no_violations(&host);

    probe.take_trace();
    assert_eq!(guest.retire(), Ok(GCTX));
    assert_eq!(
        probe.take_trace(),
        [
            fw(SevCommand::SnpDecommission, GCTX, Ok(())),
            fw(SevCommand::SnpPageReclaim, GCTX, Ok(())),
            Step::Rmp(rmpupdate(GCTX, RmpState::shared(K4), Ok(()))),
            Step::Wbinvd,
            fw(SevCommand::SnpDfFlush, 0, Ok(())),
        ]
    );
    let model_ref = model.borrow();
    assert_eq!(model_ref.firmware.asid_state(ASID), Some(AsidState::Clean));
    assert_eq!(model_ref.firmware.rmp.lookup(GCTX), RmpEntry::HYPERVISOR);
    drop(model_ref);
    let again = SnpMmu::launch(ModelPlatform(model), ASID, GCTX, POLICY);
    assert!(
        again.is_ok(),
        "the ASID and the context page serve the next guest"
    );
}

/// PIN-07, legacy SEV: destroy flushes each frame with the guest's key; retiring the
/// guest writes every cache back, deactivates, DF_FLUSHes and decommissions, and leaves
/// the ASID clean for the next guest. The VM keeps its vendor until it is dropped, so
/// the test takes it out first (`Rig::take_vendor`).
#[test]
fn pin_07_legacy_sev_destroy_flushes_every_frame_and_retire_leaves_the_asid_clean() {
    let config = Config::huge();
    let (mut rig, probe) = Rig::sev_probed(config);
    rig.launch().expect("launch");
    for gpa in [0x20_1000, 0x40_0000] {
        assert_eq!(rig.touch(gpa), None);
    }
    let mut frames = Vec::new();
    for (_, size, pa) in rig.leaves() {
        frames.extend((0..size.bytes() / PAGE).map(|i| pa + i * PAGE));
    }
    for &pa in &frames {
        rig.rmp(|rmp| rmp.guest_write(ASID, pa));
    }
    let prepared = rig.vm.prepared_frames();
    let scratch = common::rig::sev_model(false);
    let stand_in = cloister_svm::sev::SevMmu::launch(ModelPlatform(Probe::new(scratch)), 1, 0);
    let mut guest = rig.take_vendor(stand_in.expect("a stand-in"));
    let (memory, mut host, model) = rig.into_memory();
    let (released, _) = destroy(memory, &mut guest, &mut host);
    assert_eq!(released, prepared);
    assert!(
        frames
            .iter()
            .all(|&pa| !model.borrow().firmware.rmp.dirty_guest_lines(pa))
    );
    assert_no_violations(&host);

    probe.take_trace();
    let retired = guest.retire();
    let trace = probe.take_trace();
    assert_eq!(retired, Ok(()), "{trace:#?}");
    let cmds: Vec<_> = trace.iter().filter_map(Step::command).collect();
    assert_eq!(
        cmds,
        [
            SevCommand::Deactivate,
            SevCommand::DfFlush,
            SevCommand::Decommission
        ]
    );
    // DF_FLUSH wants a WBINVD on every CPU since DEACTIVATE cleared their WBINVD_DONE
    // flags (the firmware's rule, which the model keeps): one must sit between them.
    let at = |command| {
        trace
            .iter()
            .position(|s| s.command() == Some(command))
            .unwrap()
    };
    let (deactivate, df_flush) = (at(SevCommand::Deactivate), at(SevCommand::DfFlush));
    assert!(
        trace[deactivate..df_flush].contains(&Step::Wbinvd),
        "{trace:#?}"
    );
    let fw_ref = &model.borrow().firmware;
    assert_eq!(fw_ref.asid_state(ASID), Some(AsidState::Clean));
    assert_eq!(fw_ref.guest_state(GuestHandle(1)), None);
    assert_eq!(fw_ref.platform_state(), PlatformState::Init);
}

// ---------------------------------------------------------------------------------
// Legacy SEV launch

/// Legacy SEV launch through the firmware's state machine: LAUNCH_START and ACTIVATE
/// (LUPDATE, ASID allocated), LAUNCH_UPDATE_DATA of each launch page, LAUNCH_MEASURE
/// (LSECRET), LAUNCH_FINISH (RUNNING, ASID in use).
#[test]
fn sev_launch_walks_start_activate_update_data_measure_finish() {
    let (mut rig, probe) = Rig::sev_probed(Config::default());
    let guest = GuestHandle(1);
    assert_eq!(
        commands(&probe.take_trace()),
        [
            (SevCommand::LaunchStart, Ok(())),
            (SevCommand::Activate, Ok(()))
        ]
    );
    rig.fw(|fw| {
        assert_eq!(fw.guest_state(guest), Some(SevGuestState::Lupdate));
        assert_eq!(fw.guest_asid(guest), Some(ASID));
        assert_eq!(fw.asid_state(ASID), Some(AsidState::Allocated));
    });
    rig.launch().expect("launch");
    let pages = rig.leaves().len();
    assert_eq!(pages, LAUNCH_GPAS.len());
    assert_eq!(
        commands(&probe.take_trace()),
        [
            vec![(SevCommand::LaunchUpdateData, Ok(())); pages],
            vec![
                (SevCommand::LaunchMeasure, Ok(())),
                (SevCommand::LaunchFinish, Ok(()))
            ]
        ]
        .concat()
    );
    assert_eq!(rig.vm.vendor().launch_pages, pages as u64);
    assert!(rig.vm.vendor().measurement().is_some());
    rig.fw(|fw| {
        assert_eq!(fw.guest_state(guest), Some(SevGuestState::Running));
        assert_eq!(fw.asid_state(ASID), Some(AsidState::InUse));
    });
    assert_no_violations(&rig.host);
}

/// The firmware refuses a launch command out of order with its status, and the hooks
/// pass it on: LAUNCH_UPDATE_DATA or LAUNCH_MEASURE after LAUNCH_FINISH are
/// INVALID_GUEST_STATE; ACTIVATE of another guest on the ASID in use is ASID_OWNED.
#[test]
fn sev_firmware_refuses_launch_commands_out_of_order_with_its_status() {
    let mut rig = Rig::sev(Config::default());
    rig.launch().expect("launch");
    let state = VendorError::from(FirmwareError::INVALID_GUEST_STATE);
    assert_eq!(state.code, 0x02);
    let late = rig
        .vm
        .vendor_mut()
        .add_launch_page(0x40_0000, frame(0x40_0000), 0);
    assert_eq!(late, Err(state));
    assert_eq!(
        rig.fw(|fw| fw.log().last().copied()),
        Some(FwCall {
            command: SevCommand::LaunchUpdateData,
            arg: 1,
            result: Err(FirmwareError::INVALID_GUEST_STATE)
        })
    );
    assert_eq!(rig.vm.vendor_mut().finish_launch(), Err(state));
    assert_eq!(
        rig.fw(|fw| fw.guest_state(GuestHandle(1))),
        Some(SevGuestState::Running)
    );
    let second = cloister_svm::sev::SevMmu::launch(ModelPlatform(rig.model.clone()), ASID, 0);
    assert_eq!(
        second.err(),
        Some(VendorError::from(FirmwareError::ASID_OWNED))
    );
}
