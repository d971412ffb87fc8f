//! The RMP model's rules (spec digest G.1), one behaviour per test, through the public
//! API the hypervisor's hooks use.

use cloister_svm::sev::rmp::{
    FwPageError, PvalidateError, PvalidateOutcome, Rmp, RmpCall, RmpCheck, RmpEntry, RmpError,
    RmpFault, RmpFaultReason, RmpModel, RmpOp, RmpSize, RmpState,
};

const K4: RmpSize = RmpSize::Size4K;
const M2: RmpSize = RmpSize::Size2M;
const ASID: u32 = 3;
/// A 2 MiB-aligned host frame run and the GPA it backs.
const PA: u64 = 0x4000_0000;
const GPA: u64 = 0x20_0000;

fn private(gpa: u64, size: RmpSize) -> RmpState {
    RmpState::private(gpa, size, ASID, false)
}

fn fault(pa: u64, reason: RmpFaultReason) -> RmpCheck {
    RmpCheck::Fault(RmpFault { pa, reason })
}

/// A model with the 2 MiB page at PA assigned to ASID at GPA and validated.
fn validated_2m() -> RmpModel {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, M2)).unwrap();
    rmp.pvalidate(ASID, GPA, PA, M2, true).unwrap();
    rmp
}

#[test]
fn every_frame_starts_hypervisor_owned() {
    let rmp = RmpModel::new();
    assert_eq!(rmp.entry(PA), Ok(RmpEntry::HYPERVISOR));
    assert_eq!(rmp.assigned_frames().count(), 0);
}

#[test]
fn rmpupdate_private_sets_the_fields_and_leaves_the_page_unvalidated() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA + 0x3000, RmpState::private(0x7000, K4, ASID, true))
        .unwrap();
    let entry = rmp.lookup(PA + 0x3000);
    assert_eq!(
        entry,
        RmpEntry {
            assigned: true,
            size: K4,
            immutable: true,
            gpa: 0x7000,
            asid: ASID,
            validated: false,
            vmsa: false,
        }
    );
    assert_eq!(rmp.lookup(PA + 0x4000), RmpEntry::HYPERVISOR);
}

#[test]
fn rmpupdate_2m_governs_all_512_frames_with_the_large_gpa() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, M2)).unwrap();
    for frame in [0, 1, 255, 511] {
        let pa = PA + frame * 0x1000;
        let entry = rmp.lookup(pa);
        assert_eq!((entry.size, entry.gpa), (M2, GPA));
        assert_eq!(entry.frame_gpa(pa), GPA + frame * 0x1000);
    }
    assert!(!rmp.lookup(PA + 0x20_0000).assigned);
    assert_eq!(rmp.assigned_frames().count(), 512);
}

#[test]
fn rmpupdate_clears_validated_even_for_the_same_owner() {
    let mut rmp = validated_2m();
    assert!(rmp.lookup(PA).validated);
    rmp.rmpupdate(PA, private(GPA, M2)).unwrap();
    assert!(!rmp.lookup(PA).validated);
}

#[test]
fn rmpupdate_fails_input_on_a_misaligned_address() {
    let mut rmp = RmpModel::new();
    assert_eq!(
        rmp.rmpupdate(PA + 0x800, private(0, K4)),
        Err(RmpError::FailInput)
    );
    assert_eq!(
        rmp.rmpupdate(PA + 0x1000, private(GPA, M2)),
        Err(RmpError::FailInput)
    );
    assert_eq!(
        rmp.rmpupdate(PA, private(GPA + 0x1000, M2)),
        Err(RmpError::FailInput),
        "a 2 MiB entry's GPA is 2 MiB aligned"
    );
    assert_eq!(rmp.assigned_frames().count(), 0);
}

#[test]
fn rmpupdate_fails_input_on_a_shared_state_with_owner_fields() {
    let mut rmp = RmpModel::new();
    let state = RmpState {
        asid: ASID,
        ..RmpState::shared(K4)
    };
    assert_eq!(rmp.rmpupdate(PA, state), Err(RmpError::FailInput));
}

#[test]
fn rmpupdate_fails_input_beyond_the_rmp() {
    let mut rmp = RmpModel::with_limit(PA + 0x10_0000);
    assert_eq!(
        rmp.rmpupdate(PA, private(GPA, M2)),
        Err(RmpError::FailInput)
    );
    assert_eq!(rmp.rmpupdate(PA, private(GPA, K4)), Ok(()));
}

#[test]
fn rmpupdate_of_an_immutable_entry_fails_permission_and_changes_nothing() {
    let mut rmp = RmpModel::new();
    let launch = RmpState::private(GPA, K4, ASID, true);
    rmp.rmpupdate(PA, launch).unwrap();
    let before = rmp.lookup(PA);
    assert_eq!(
        rmp.rmpupdate(PA, RmpState::shared(K4)),
        Err(RmpError::FailPermission)
    );
    assert_eq!(
        rmp.rmpupdate(PA, private(GPA, K4)),
        Err(RmpError::FailPermission)
    );
    assert_eq!(rmp.lookup(PA), before);
}

#[test]
fn rmpupdate_4k_inside_an_assigned_2m_entry_fails_overlap() {
    let mut rmp = validated_2m();
    for pa in [PA, PA + 0x5000] {
        assert_eq!(
            rmp.rmpupdate(pa, RmpState::shared(K4)),
            Err(RmpError::FailOverlap)
        );
    }
    assert!(rmp.lookup(PA + 0x5000).validated);
}

#[test]
fn rmpupdate_2m_over_an_assigned_4k_entry_fails_overlap() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA + 0x7000, private(GPA + 0x7000, K4))
        .unwrap();
    assert_eq!(
        rmp.rmpupdate(PA, private(GPA, M2)),
        Err(RmpError::FailOverlap)
    );
    assert_eq!(
        rmp.rmpupdate(PA, RmpState::shared(M2)),
        Err(RmpError::FailOverlap)
    );
    assert_eq!(rmp.assigned_frames().count(), 1);
}

#[test]
fn rmpupdate_2m_shared_returns_a_whole_2m_entry_to_the_hypervisor() {
    let mut rmp = validated_2m();
    rmp.rmpupdate(PA, RmpState::shared(M2)).unwrap();
    assert_eq!(rmp.assigned_frames().count(), 0);
    assert_eq!(rmp.lookup(PA + 0x1f_f000), RmpEntry::HYPERVISOR);
}

#[test]
fn injected_inuse_fails_the_nth_rmpupdate_only_and_changes_nothing() {
    let mut rmp = RmpModel::new();
    rmp.inject_inuse(RmpOp::Rmpupdate, 2);
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    assert_eq!(
        rmp.rmpupdate(PA + 0x1000, private(GPA + 0x1000, K4)),
        Err(RmpError::FailInUse)
    );
    assert!(!rmp.lookup(PA + 0x1000).assigned);
    rmp.rmpupdate(PA + 0x1000, private(GPA + 0x1000, K4))
        .unwrap();
}

#[test]
fn psmash_splits_into_512_entries_with_consecutive_gpas_keeping_validated() {
    let mut rmp = validated_2m();
    rmp.psmash(PA).unwrap();
    for frame in 0..512 {
        let entry = rmp.lookup(PA + frame * 0x1000);
        assert_eq!(
            entry,
            RmpEntry {
                assigned: true,
                size: K4,
                immutable: false,
                gpa: GPA + frame * 0x1000,
                asid: ASID,
                validated: true,
                vmsa: false,
            }
        );
    }
    rmp.check_invariants().unwrap();
}

#[test]
fn psmash_keeps_immutable_pages_immutable() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, RmpState::private(GPA, M2, ASID, true))
        .unwrap();
    rmp.psmash(PA).unwrap();
    assert!(rmp.lookup(PA + 0x1000).immutable);
}

#[test]
fn psmash_fails_input_without_an_assigned_2m_entry_at_an_aligned_address() {
    let mut rmp = validated_2m();
    assert_eq!(rmp.psmash(PA + 0x1000), Err(RmpError::FailInput));
    assert_eq!(rmp.psmash(PA + 0x20_0000), Err(RmpError::FailInput));
    rmp.psmash(PA).unwrap();
    assert_eq!(
        rmp.psmash(PA),
        Err(RmpError::FailInput),
        "already 4 KiB entries"
    );
}

#[test]
fn psmash_fails_badaddr_beyond_the_rmp() {
    let mut rmp = RmpModel::with_limit(PA);
    assert_eq!(rmp.psmash(PA), Err(RmpError::FailBadAddr));
    assert_eq!(rmp.psmash(PA).unwrap_err().code(), 4);
}

#[test]
fn injected_inuse_fails_psmash_until_retried() {
    let mut rmp = validated_2m();
    rmp.inject_inuse(RmpOp::Psmash, 1);
    assert_eq!(rmp.psmash(PA), Err(RmpError::FailInUse));
    assert_eq!(rmp.lookup(PA + 0x1000).size, M2);
    rmp.psmash(PA).unwrap();
    assert_eq!(rmp.lookup(PA + 0x1000).size, K4);
}

#[test]
fn snp03_launch_page_is_refused_by_rmpupdate_until_reclaimed_then_made_shared() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID, true))
        .unwrap();
    assert_eq!(
        rmp.rmpupdate(PA, RmpState::shared(K4)),
        Err(RmpError::FailPermission)
    );
    rmp.fw_reclaim(PA).unwrap();
    let reclaimed = rmp.lookup(PA);
    assert!(reclaimed.assigned && !reclaimed.immutable && reclaimed.asid == ASID);
    rmp.rmpupdate(PA, RmpState::shared(K4)).unwrap();
    assert_eq!(rmp.lookup(PA), RmpEntry::HYPERVISOR);
}

#[test]
fn fw_reclaim_needs_an_immutable_page() {
    let mut rmp = RmpModel::new();
    assert_eq!(rmp.fw_reclaim(PA), Err(FwPageError::InvalidPageState));
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    assert_eq!(rmp.fw_reclaim(PA), Err(FwPageError::InvalidPageState));
}

#[test]
fn fw_launch_update_makes_a_pre_guest_page_validated_and_mutable() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID, true))
        .unwrap();
    rmp.fw_launch_update(PA, ASID).unwrap();
    let entry = rmp.lookup(PA);
    assert!(entry.validated && !entry.immutable);
    assert!(rmp.check_guest_access(ASID, GPA, PA, K4).is_ok());
}

#[test]
fn fw_launch_update_refuses_a_page_not_pre_guest_for_that_asid() {
    let mut rmp = RmpModel::new();
    assert_eq!(
        rmp.fw_launch_update(PA, ASID),
        Err(FwPageError::InvalidPageState)
    );
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    assert_eq!(
        rmp.fw_launch_update(PA, ASID),
        Err(FwPageError::InvalidPageState)
    );
    rmp.rmpupdate(PA + 0x1000, RmpState::private(GPA, K4, ASID, true))
        .unwrap();
    let refused = rmp.fw_launch_update(PA + 0x1000, ASID + 1);
    assert_eq!(refused, Err(FwPageError::InvalidPageOwner));
    assert_eq!(refused.unwrap_err().code(), 0x1c);
}

#[test]
fn pvalidate_changes_the_bit_once_then_reports_unchanged() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    let mut validate = |on| rmp.pvalidate(ASID, GPA, PA, K4, on);
    assert_eq!(validate(true), Ok(PvalidateOutcome::Changed));
    assert_eq!(validate(true), Ok(PvalidateOutcome::Unchanged));
    assert_eq!(validate(false), Ok(PvalidateOutcome::Changed));
    assert_eq!(validate(false), Ok(PvalidateOutcome::Unchanged));
}

#[test]
fn pvalidate_fails_input_unless_the_page_is_the_guests_at_that_gpa() {
    let mut rmp = RmpModel::new();
    let input = Err(PvalidateError::FailInput);
    assert_eq!(rmp.pvalidate(ASID, GPA, PA, K4, true), input, "unassigned");
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    assert_eq!(rmp.pvalidate(ASID + 1, GPA, PA, K4, true), input);
    assert_eq!(rmp.pvalidate(ASID, GPA + 0x1000, PA, K4, true), input);
    assert_eq!(rmp.pvalidate(ASID, GPA + 8, PA, K4, true), input);
    assert_eq!(PvalidateError::FailInput.code(), Some(1));
    assert!(!rmp.lookup(PA).validated);
}

#[test]
fn pvalidate_2m_over_4k_entries_fails_size_mismatch() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    let result = rmp.pvalidate(ASID, GPA, PA, M2, true);
    assert_eq!(result, Err(PvalidateError::FailSizeMismatch));
    assert_eq!(result.unwrap_err().code(), Some(6));
}

#[test]
fn snp05_pvalidate_4k_inside_a_2m_entry_faults_until_psmash() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, M2)).unwrap();
    let (gpa, pa) = (GPA + 0x3000, PA + 0x3000);
    let result = rmp.pvalidate(ASID, gpa, pa, K4, true);
    let sizem = RmpFault {
        pa,
        reason: RmpFaultReason::SizeMismatch,
    };
    assert_eq!(result, Err(PvalidateError::SizeMismatchFault(sizem)));
    assert_eq!(result.unwrap_err().code(), None, "an exit, not a status");
    rmp.psmash(PA).unwrap();
    assert_eq!(
        rmp.pvalidate(ASID, gpa, pa, K4, true),
        Ok(PvalidateOutcome::Changed)
    );
    assert!(!rmp.lookup(pa - 0x1000).validated);
}

#[test]
fn host_write_to_an_assigned_frame_faults() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    let denied = fault(PA + 0x10, RmpFaultReason::HostWriteToAssigned);
    assert_eq!(rmp.check_host_write(PA + 0x10, K4), denied);
    assert!(rmp.check_host_write(PA + 0x1000, K4).is_ok());
}

#[test]
fn host_write_through_a_2m_mapping_over_one_assigned_4k_frame_faults() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA + 0x1f_f000, private(GPA, K4)).unwrap();
    assert_eq!(
        rmp.check_host_write(PA, M2),
        fault(PA, RmpFaultReason::HostWriteToAssigned)
    );
    assert!(rmp.check_host_write(PA, K4).is_ok());
    assert!(rmp.check_host_write(PA + 0x20_0000, M2).is_ok());
}

#[test]
fn host_write_to_an_immutable_page_faults_as_immutable() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, RmpState::private(0, K4, 0, true))
        .unwrap();
    assert_eq!(
        rmp.check_host_write(PA, K4),
        fault(PA, RmpFaultReason::Immutable)
    );
}

#[test]
fn guest_access_needs_owner_gpa_and_validation() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    let check = |rmp: &RmpModel, asid, gpa| rmp.check_guest_access(asid, gpa, PA, K4);
    assert_eq!(
        check(&rmp, ASID, GPA),
        fault(PA, RmpFaultReason::NotValidated)
    );
    rmp.pvalidate(ASID, GPA, PA, K4, true).unwrap();
    assert!(check(&rmp, ASID, GPA + 0x123).is_ok());
    assert_eq!(
        check(&rmp, ASID + 1, GPA),
        fault(PA, RmpFaultReason::WrongAsid)
    );
    assert_eq!(
        check(&rmp, ASID, GPA + 0x1000),
        fault(PA, RmpFaultReason::WrongGpa)
    );
    let shared = PA + 0x1000;
    assert_eq!(
        rmp.check_guest_access(ASID, GPA, shared, K4),
        fault(shared, RmpFaultReason::NotAssigned)
    );
}

#[test]
fn guest_access_through_a_2m_npt_leaf_over_4k_entries_faults_size_mismatch() {
    let mut rmp = validated_2m();
    rmp.psmash(PA).unwrap();
    assert_eq!(
        rmp.check_guest_access(ASID, GPA, PA, M2),
        fault(PA, RmpFaultReason::SizeMismatch)
    );
    assert!(rmp.check_guest_access(ASID, GPA, PA, K4).is_ok());
}

#[test]
fn guest_access_through_a_4k_npt_leaf_inside_a_2m_entry_is_allowed() {
    let rmp = validated_2m();
    let (gpa, pa) = (GPA + 0x4_5000, PA + 0x4_5000);
    assert!(rmp.check_guest_access(ASID, gpa, pa, K4).is_ok());
    assert!(rmp.check_guest_access(ASID, GPA, PA, M2).is_ok());
}

#[test]
fn guest_access_to_a_pre_guest_page_faults_as_immutable() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID, true))
        .unwrap();
    assert_eq!(
        rmp.check_guest_access(ASID, GPA, PA, K4),
        fault(PA, RmpFaultReason::Immutable)
    );
}

#[test]
fn snp01_nested_map_needs_owner_and_gpa_and_a_leaf_no_larger_than_the_entry() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    assert!(
        rmp.check_nested_map(ASID, GPA, PA, K4).is_ok(),
        "before PVALIDATE"
    );
    let map = |asid, gpa, pa, size| rmp.check_nested_map(asid, gpa, pa, size);
    assert_eq!(
        map(ASID, GPA, PA, M2),
        fault(PA, RmpFaultReason::SizeMismatch)
    );
    assert_eq!(
        map(ASID + 1, GPA, PA, K4),
        fault(PA, RmpFaultReason::WrongAsid)
    );
    assert_eq!(
        map(ASID, GPA + 0x1000, PA, K4),
        fault(PA, RmpFaultReason::WrongGpa)
    );
    assert_eq!(
        map(ASID, GPA, PA + 0x1000, K4),
        fault(PA + 0x1000, RmpFaultReason::NotAssigned)
    );
}

#[test]
fn snp02_refault_of_a_zapped_mapping_needs_no_rmpupdate_or_revalidation() {
    let rmp = validated_2m();
    let before = rmp.counts();
    // The NPT leaf is zapped and rebuilt: the RMP is not involved at all.
    assert!(rmp.check_nested_map(ASID, GPA, PA, M2).is_ok());
    assert!(rmp.check_guest_access(ASID, GPA, PA, M2).is_ok());
    assert_eq!(rmp.counts(), before);
}

#[test]
fn guest_key_lines_stay_dirty_until_vm_page_flush_with_that_asid() {
    let mut rmp = RmpModel::new();
    rmp.guest_write(ASID, PA + 0x40);
    assert!(rmp.dirty_guest_lines(PA));
    assert!(!rmp.dirty_guest_lines(PA + 0x1000));
    rmp.vm_page_flush(PA, ASID + 1);
    rmp.clflush(PA);
    assert!(rmp.dirty_guest_lines(PA), "other keys' flushes do not help");
    rmp.vm_page_flush(PA, ASID);
    assert!(!rmp.dirty_guest_lines(PA));
}

#[test]
fn wbinvd_cleans_every_key_of_every_frame() {
    let mut rmp = RmpModel::new();
    rmp.guest_write(ASID, PA);
    rmp.guest_write(ASID + 1, PA + 0x20_0000);
    assert!(rmp.host_write(PA + 0x1000, K4).is_ok());
    rmp.wbinvd();
    assert!(!rmp.dirty_guest_lines(PA) && !rmp.dirty_guest_lines(PA + 0x20_0000));
    assert!(!rmp.dirty_host_lines(PA + 0x1000));
    assert_eq!(rmp.counts().wbinvds, 1);
}

#[test]
fn clflush_cleans_host_key_lines_only() {
    let mut rmp = RmpModel::new();
    assert!(rmp.host_write(PA, K4).is_ok());
    rmp.guest_write(ASID, PA);
    assert!(rmp.dirty_host_lines(PA));
    rmp.clflush(PA);
    assert!(!rmp.dirty_host_lines(PA));
    assert!(rmp.dirty_guest_lines(PA));
}

#[test]
fn a_refused_host_write_dirties_nothing() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, K4)).unwrap();
    assert!(!rmp.host_write(PA, K4).is_ok());
    assert!(!rmp.dirty_host_lines(PA));
}

#[test]
fn pool_return_after_make_shared_and_flush_leaves_a_clean_hypervisor_frame() {
    // The POOL-05 sequence on one 4 KiB page of a 2 MiB entry: PSMASH, make shared,
    // flush the guest key; the rest of the 2 MiB page stays private.
    let mut rmp = validated_2m();
    let pa = PA + 0x9000;
    rmp.guest_write(ASID, pa);
    rmp.psmash(PA).unwrap();
    rmp.rmpupdate(pa, RmpState::shared(K4)).unwrap();
    rmp.vm_page_flush(pa, ASID);
    assert_eq!(rmp.lookup(pa), RmpEntry::HYPERVISOR);
    assert!(!rmp.dirty_guest_lines(pa));
    assert!(rmp.check_host_write(pa, K4).is_ok());
    assert!(rmp.lookup(pa + 0x1000).validated);
    rmp.check_invariants().unwrap();
}

#[test]
fn log_and_counts_record_every_instruction_with_its_outcome() {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, private(GPA, M2)).unwrap();
    let _ = rmp.psmash(PA + 0x1000);
    rmp.pvalidate(ASID, GPA, PA, M2, true).unwrap();
    let counts = rmp.counts();
    assert_eq!(
        (counts.rmpupdates, counts.psmashes, counts.pvalidates),
        (1, 1, 1)
    );
    assert_eq!(
        rmp.take_log(),
        [
            RmpCall::Rmpupdate {
                pa: PA,
                state: private(GPA, M2),
                result: Ok(()),
            },
            RmpCall::Psmash {
                pa: PA + 0x1000,
                result: Err(RmpError::FailInput),
            },
        ]
    );
    assert!(rmp.log().is_empty());
}

#[test]
fn the_model_serves_through_the_rmp_trait_object() {
    fn make_private(rmp: &mut dyn Rmp, pa: u64) -> Result<(), RmpError> {
        rmp.rmpupdate(pa, RmpState::private(GPA, K4, ASID, false))
    }
    let mut rmp = RmpModel::new();
    make_private(&mut rmp, PA).unwrap();
    assert_eq!(rmp.entry(PA).map(|e| e.asid), Ok(ASID));
}
