//! Status decoding and entry helpers; the model's behaviour is tested through the public
//! API in svm/tests/rmp_*.rs.

use super::*;

#[test]
fn status_4_is_overlap_from_rmpupdate_but_badaddr_from_psmash() {
    assert_eq!(RmpError::from_rmpupdate(4), Err(RmpError::FailOverlap));
    assert_eq!(RmpError::from_psmash(4), Err(RmpError::FailBadAddr));
    assert_eq!(RmpError::FailOverlap.code(), RmpError::FailBadAddr.code());
}

#[test]
fn statuses_decode_to_their_architectural_codes_and_names() {
    assert_eq!(RmpError::from_rmpupdate(0), Ok(()));
    assert_eq!(RmpError::from_psmash(0), Ok(()));
    let shared = [
        (1, RmpError::FailInput, "FAIL_INPUT"),
        (2, RmpError::FailPermission, "FAIL_PERMISSION"),
        (3, RmpError::FailInUse, "FAIL_INUSE"),
    ];
    for (code, error, name) in shared {
        assert_eq!(RmpError::from_rmpupdate(code), Err(error));
        assert_eq!(RmpError::from_psmash(code), Err(error));
        assert_eq!((error.code(), error.name()), (code, name));
    }
    assert_eq!(RmpError::FailOverlap.name(), "FAIL_OVERLAP");
    assert_eq!(RmpError::FailBadAddr.name(), "FAIL_BADADDR");
}

#[test]
fn unknown_status_keeps_its_value_for_the_message() {
    let error = RmpError::from_psmash(7).unwrap_err();
    assert_eq!(error, RmpError::Other(7));
    assert_eq!(error.code(), 7);
    assert_eq!(std::format!("{error}"), "unknown status (7)");
    assert_eq!(
        std::format!("{}", RmpError::FailOverlap),
        "FAIL_OVERLAP (4)"
    );
}

#[test]
fn frame_gpa_inside_a_2m_entry_is_offset_from_its_gpa() {
    let entry = RmpEntry {
        assigned: true,
        size: RmpSize::Size2M,
        gpa: 0x4000_0000,
        asid: 1,
        ..RmpEntry::HYPERVISOR
    };
    assert_eq!(entry.frame_gpa(0x20_0000), 0x4000_0000);
    assert_eq!(entry.frame_gpa(0x20_5123), 0x4000_5000);
    let small = RmpEntry {
        size: RmpSize::Size4K,
        ..entry
    };
    assert_eq!(small.frame_gpa(0x20_5123), 0x4000_0000);
}

#[test]
fn rmp_states_match_linux_make_private_and_make_shared() {
    let private = RmpState::private(0x20_0000, RmpSize::Size2M, 5, true);
    assert!(private.assigned && private.immutable);
    assert_eq!((private.gpa, private.asid), (0x20_0000, 5));
    let shared = RmpState::shared(RmpSize::Size4K);
    assert!(!shared.assigned && !shared.immutable);
    assert_eq!((shared.gpa, shared.asid), (0, 0));
}

#[test]
fn sizes_convert_to_and_from_core_page_sizes() {
    for size in [RmpSize::Size4K, RmpSize::Size2M] {
        assert_eq!(RmpSize::from(PageSize::from(size)), size);
        assert_eq!(PageSize::from(size).bytes(), size.bytes());
    }
    assert_eq!(RmpSize::Size2M.frames(), 512);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn raw_family_19h_entry_decodes_every_field() {
    let lo = 1 | 1 << 1 | 1 << 2 | 0x1234_5000 | 0x3ff << 51 | 1 << 61 | 1 << 62;
    let entry = instr::decode_raw(lo);
    assert_eq!(
        entry,
        RmpEntry {
            assigned: true,
            size: RmpSize::Size2M,
            immutable: true,
            gpa: 0x1234_5000,
            asid: 0x3ff,
            validated: true,
            vmsa: true,
        }
    );
    assert_eq!(instr::decode_raw(0), RmpEntry::HYPERVISOR);
}
