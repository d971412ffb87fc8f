//! RMPADJUST in the RMP model: VMPL permission changes, their result codes, the VMSA
//! bit, and what RMPUPDATE and PSMASH do to permissions.

use cloister_svm::sev::rmp::{
    Rmp, RmpFault, RmpFaultReason, RmpModel, RmpSize, RmpState, RmpadjustError,
    VmplPermissions as P, rmpadjust_rdx,
};

const K4: RmpSize = RmpSize::Size4K;
const M2: RmpSize = RmpSize::Size2M;
const ASID: u32 = 3;
const PA: u64 = 0x4000_0000;
const GPA: u64 = 0x20_0000;
const RW: u8 = P::READ | P::WRITE;

/// The page at PA assigned to ASID at GPA, `size`, and validated.
fn validated(size: RmpSize) -> RmpModel {
    let mut rmp = RmpModel::new();
    rmp.rmpupdate(PA, RmpState::private(GPA, size, ASID, false))
        .unwrap();
    rmp.pvalidate(ASID, GPA, PA, size, true).unwrap();
    rmp
}

fn adjust(rmp: &mut RmpModel, vmpl: u8, target: u8, perms: u8) -> Result<(), RmpadjustError> {
    rmp.rmpadjust(ASID, vmpl, GPA, PA, K4, rmpadjust_rdx(target, perms, false))
}

fn fault(reason: RmpFaultReason) -> RmpadjustError {
    RmpadjustError::Fault(RmpFault { pa: PA, reason })
}

#[test]
fn rmpupdate_leaves_vmpl0_everything_and_the_others_nothing() {
    let rmp = validated(K4);
    assert_eq!(rmp.vmpl_permissions(PA), P([P::ALL, 0, 0, 0]));
    assert_eq!(rmp.vmpl_permissions(PA), P::RESET);
}

#[test]
fn vmpl0_grants_to_a_higher_vmpl() {
    let mut rmp = validated(K4);
    adjust(&mut rmp, 0, 1, RW | P::EXECUTE_SUPERVISOR).unwrap();
    assert_eq!(rmp.vmpl_permissions(PA), P([P::ALL, 0b1011, 0, 0]));
    adjust(&mut rmp, 0, 3, P::READ).unwrap();
    assert_eq!(rmp.vmpl_permissions(PA).vmpl(3), P::READ);
    assert_eq!(rmp.counts().rmpadjusts, 2);
}

#[test]
fn a_target_not_less_privileged_than_the_caller_is_fail_permission() {
    let mut rmp = validated(K4);
    assert_eq!(
        adjust(&mut rmp, 0, 0, RW),
        Err(RmpadjustError::FailPermission)
    );
    adjust(&mut rmp, 0, 1, RW).unwrap();
    assert_eq!(
        adjust(&mut rmp, 1, 1, P::READ),
        Err(RmpadjustError::FailPermission)
    );
    assert_eq!(
        adjust(&mut rmp, 1, 0, P::READ),
        Err(RmpadjustError::FailPermission)
    );
    assert_eq!(RmpadjustError::FailPermission.code(), Some(2));
}

#[test]
fn a_vmpl_grants_only_what_it_has() {
    let mut rmp = validated(K4);
    adjust(&mut rmp, 0, 1, RW).unwrap();
    adjust(&mut rmp, 1, 2, P::READ).unwrap();
    let more = adjust(&mut rmp, 1, 2, RW | P::EXECUTE_USER);
    assert_eq!(more, Err(RmpadjustError::FailPermission));
    assert_eq!(
        rmp.vmpl_permissions(PA).vmpl(2),
        P::READ,
        "refusal changes nothing"
    );
    // VMPL2 has nothing to give VMPL3 but nothing.
    adjust(&mut rmp, 2, 3, 0).unwrap();
    assert_eq!(
        adjust(&mut rmp, 2, 3, P::WRITE),
        Err(RmpadjustError::FailPermission)
    );
}

#[test]
fn bad_operands_are_fail_input() {
    let mut rmp = validated(K4);
    assert_eq!(
        adjust(&mut rmp, 0, 4, P::READ),
        Err(RmpadjustError::FailInput)
    );
    let reserved = rmpadjust_rdx(1, P::READ, false) | 1 << 20;
    let got = rmp.rmpadjust(ASID, 0, GPA, PA, K4, reserved);
    assert_eq!(got, Err(RmpadjustError::FailInput));
    let misaligned = rmp.rmpadjust(ASID, 0, GPA + 0x1000, PA + 0x1000, M2, 0x101);
    assert_eq!(misaligned, Err(RmpadjustError::FailInput));
    assert_eq!(RmpadjustError::FailInput.code(), Some(1));
}

#[test]
fn a_2m_adjust_of_4k_entries_is_size_mismatch_and_4k_in_2m_faults() {
    let mut rmp = validated(K4);
    let rdx = rmpadjust_rdx(1, P::READ, false);
    let got = rmp.rmpadjust(ASID, 0, GPA, PA, M2, rdx);
    assert_eq!(got, Err(RmpadjustError::FailSizeMismatch));
    assert_eq!(RmpadjustError::FailSizeMismatch.code(), Some(6));
    let mut large = validated(M2);
    assert_eq!(
        adjust(&mut large, 0, 1, P::READ),
        Err(fault(RmpFaultReason::SizeMismatch))
    );
    large.rmpadjust(ASID, 0, GPA, PA, M2, rdx).unwrap();
    for frame in [0, 1, 511] {
        assert_eq!(large.vmpl_permissions(PA + frame * 0x1000).vmpl(1), P::READ);
    }
}

#[test]
fn pages_not_the_guests_or_not_validated_fault() {
    let mut rmp = RmpModel::new();
    assert_eq!(
        adjust(&mut rmp, 0, 1, P::READ),
        Err(fault(RmpFaultReason::NotAssigned))
    );
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID + 1, false))
        .unwrap();
    assert_eq!(
        adjust(&mut rmp, 0, 1, P::READ),
        Err(fault(RmpFaultReason::WrongAsid))
    );
    rmp.rmpupdate(PA, RmpState::private(GPA + 0x1000, K4, ASID, false))
        .unwrap();
    assert_eq!(
        adjust(&mut rmp, 0, 1, P::READ),
        Err(fault(RmpFaultReason::WrongGpa))
    );
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID, false))
        .unwrap();
    assert_eq!(
        adjust(&mut rmp, 0, 1, P::READ),
        Err(fault(RmpFaultReason::NotValidated))
    );
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID, true))
        .unwrap();
    assert_eq!(
        adjust(&mut rmp, 0, 1, P::READ),
        Err(fault(RmpFaultReason::Immutable))
    );
    assert_eq!(fault(RmpFaultReason::Immutable).code(), None);
}

#[test]
fn only_vmpl0_changes_the_vmsa_bit() {
    let mut rmp = validated(K4);
    adjust(&mut rmp, 0, 1, RW).unwrap();
    rmp.rmpadjust(ASID, 1, GPA, PA, K4, rmpadjust_rdx(2, 0, true))
        .unwrap();
    assert!(!rmp.lookup(PA).vmsa, "ignored below VMPL0");
    rmp.rmpadjust(ASID, 0, GPA, PA, K4, rmpadjust_rdx(1, 0, true))
        .unwrap();
    assert!(rmp.lookup(PA).vmsa);
    rmp.rmpadjust(ASID, 0, GPA, PA, K4, rmpadjust_rdx(1, RW, false))
        .unwrap();
    assert!(!rmp.lookup(PA).vmsa, "VMPL0 clears it too");
}

#[test]
fn rmpupdate_resets_permissions_and_the_vmsa_bit() {
    let mut rmp = validated(K4);
    rmp.rmpadjust(ASID, 0, GPA, PA, K4, rmpadjust_rdx(1, RW, true))
        .unwrap();
    rmp.rmpupdate(PA, RmpState::private(GPA, K4, ASID, false))
        .unwrap();
    assert_eq!(rmp.vmpl_permissions(PA), P::RESET);
    assert!(!rmp.lookup(PA).vmsa);
}

#[test]
fn psmash_keeps_each_frames_permissions() {
    let mut rmp = validated(M2);
    rmp.rmpadjust(ASID, 0, GPA, PA, M2, rmpadjust_rdx(1, RW, false))
        .unwrap();
    rmp.psmash(PA).unwrap();
    assert_eq!(rmp.vmpl_permissions(PA + 0x5000).vmpl(1), RW);
    let frame = rmp.rmpadjust(
        ASID,
        0,
        GPA + 0x5000,
        PA + 0x5000,
        K4,
        rmpadjust_rdx(1, 0, false),
    );
    frame.unwrap();
    assert_eq!(rmp.vmpl_permissions(PA + 0x5000).vmpl(1), 0);
    assert_eq!(rmp.vmpl_permissions(PA + 0x6000).vmpl(1), RW);
}
