//! The SEV firmware model's platform and legacy guest state machines: every legal
//! ordering, every wrong one with its exact status (AMD-ASPFW `sev_mcmd.c`).

use cloister_core::mmu::VendorError;
use cloister_svm::sev::firmware::{
    AsidState, FirmwareError, FwCall, GuestHandle, PlatformState, SevCommand, SevFirmware,
    SevFirmwareModel, SevGuestState,
};
use cloister_svm::sev::rmp::{Rmp, RmpSize, RmpState};

type E = FirmwareError;

const MAX_ASID: u32 = 16;
const DATA: u64 = 0x10_0000;

/// INIT, then what Linux does right after it: WBINVD everywhere, DF_FLUSH.
fn ready() -> SevFirmwareModel {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    fw.init().unwrap();
    fw.wbinvd();
    fw.df_flush().unwrap();
    fw
}

/// A guest in LUPDATE activated on `asid`.
fn launched(fw: &mut SevFirmwareModel, asid: u32) -> GuestHandle {
    let guest = fw.launch_start(0).unwrap();
    fw.activate(guest, asid).unwrap();
    guest
}

/// A guest activated on `asid` and running.
fn running(fw: &mut SevFirmwareModel, asid: u32) -> GuestHandle {
    let guest = launched(fw, asid);
    fw.launch_update_data(guest, DATA, 0x1000).unwrap();
    fw.launch_measure(guest).unwrap();
    fw.launch_finish(guest).unwrap();
    guest
}

#[test]
fn the_legal_launch_and_teardown_walks_every_state() {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    assert_eq!(fw.platform_state(), PlatformState::Uninit);
    fw.init().unwrap();
    assert_eq!(fw.platform_state(), PlatformState::Init);
    fw.wbinvd();
    fw.df_flush().unwrap();
    assert_eq!(fw.asid_state(3), Some(AsidState::Clean));

    let guest = fw.launch_start(0).unwrap();
    assert_eq!(guest, GuestHandle(1));
    assert_eq!(fw.platform_state(), PlatformState::Working);
    assert_eq!(fw.guest_state(guest), Some(SevGuestState::Lupdate));
    fw.activate(guest, 3).unwrap();
    assert_eq!(
        fw.asid_state(3),
        Some(AsidState::Allocated),
        "pending until RUNNING"
    );
    fw.launch_update_data(guest, DATA, 0x2000).unwrap();
    fw.launch_measure(guest).unwrap();
    assert_eq!(fw.guest_state(guest), Some(SevGuestState::Lsecret));
    fw.launch_finish(guest).unwrap();
    assert_eq!(fw.guest_state(guest), Some(SevGuestState::Running));
    assert_eq!(fw.asid_state(3), Some(AsidState::InUse));

    fw.deactivate(guest).unwrap();
    assert_eq!(fw.asid_state(3), Some(AsidState::Dirty));
    assert_eq!(fw.guest_asid(guest), None);
    fw.decommission(guest).unwrap();
    assert_eq!(fw.guest_state(guest), None);
    assert_eq!(fw.platform_state(), PlatformState::Init, "no guest left");
}

#[test]
fn activate_may_come_in_any_launch_state() {
    let mut fw = ready();
    // After LAUNCH_FINISH: takes effect at once.
    let late = fw.launch_start(0).unwrap();
    fw.activate(late, 1).unwrap();
    fw.launch_update_data(late, DATA, 16).unwrap();
    fw.launch_measure(late).unwrap();
    fw.deactivate(late).unwrap();
    assert_eq!(fw.asid_state(1), Some(AsidState::Clean), "never ran: clean");
    fw.activate(late, 1).unwrap();
    fw.launch_finish(late).unwrap();
    assert_eq!(fw.asid_state(1), Some(AsidState::InUse));
    fw.deactivate(late).unwrap();
    let asid = 2;
    fw.activate(late, asid).unwrap();
    assert_eq!(
        fw.asid_state(asid),
        Some(AsidState::InUse),
        "a running guest's ASID"
    );
}

#[test]
fn guest_commands_follow_the_launch_state_table() {
    use SevGuestState::*;
    // Per state: LAUNCH_UPDATE_DATA, LAUNCH_MEASURE, LAUNCH_FINISH.
    let igs = Err(E::INVALID_GUEST_STATE);
    let table = [
        (Lupdate, [Ok(()), Ok(()), igs]),
        (Lsecret, [igs, igs, Ok(())]),
        (Running, [igs, igs, igs]),
    ];
    for (state, expected) in table {
        for (command, want) in expected.into_iter().enumerate() {
            let mut fw = ready();
            let guest = launched(&mut fw, 1);
            if state != Lupdate {
                fw.launch_measure(guest).unwrap();
            }
            if state == Running {
                fw.launch_finish(guest).unwrap();
            }
            assert_eq!(fw.guest_state(guest), Some(state));
            let got = match command {
                0 => fw.launch_update_data(guest, DATA, 16),
                1 => fw.launch_measure(guest).map(drop),
                _ => fw.launch_finish(guest),
            };
            assert_eq!(got, want, "command {command} in {state:?}");
            if want.is_err() {
                assert_eq!(
                    fw.guest_state(guest),
                    Some(state),
                    "a refusal changes nothing"
                );
            }
        }
    }
}

#[test]
fn guest_commands_need_a_working_platform() {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    let ips = Err(E::INVALID_PLATFORM_STATE);
    assert_eq!(fw.launch_start(0), Err(E::INVALID_PLATFORM_STATE));
    fw.init().unwrap();
    // INIT but no guest yet: still not WORKING.
    let any = GuestHandle(1);
    assert_eq!(fw.activate(any, 1), ips);
    assert_eq!(fw.launch_update_data(any, DATA, 16), ips);
    assert_eq!(fw.launch_measure(any).map(drop), ips);
    assert_eq!(fw.launch_finish(any), ips);
    assert_eq!(fw.deactivate(any), ips);
    assert_eq!(fw.decommission(any), ips);
    assert_eq!(fw.init(), ips, "INIT only from UNINIT");
}

#[test]
fn an_unknown_handle_is_invalid_guest() {
    let mut fw = ready();
    running(&mut fw, 1);
    let nobody = GuestHandle(9);
    assert_eq!(fw.activate(nobody, 2), Err(E::INVALID_GUEST));
    assert_eq!(
        fw.launch_update_data(nobody, DATA, 16),
        Err(E::INVALID_GUEST)
    );
    assert_eq!(fw.deactivate(nobody), Err(E::INVALID_GUEST));
    assert_eq!(fw.decommission(nobody), Err(E::INVALID_GUEST));
}

#[test]
fn launch_update_data_needs_activate_first() {
    let mut fw = ready();
    let guest = fw.launch_start(0).unwrap();
    assert_eq!(fw.launch_update_data(guest, DATA, 16), Err(E::INACTIVE));
    fw.activate(guest, 1).unwrap();
    fw.launch_update_data(guest, DATA, 16).unwrap();
}

#[test]
fn launch_update_data_wants_16_byte_alignment_and_a_length() {
    let mut fw = ready();
    let guest = launched(&mut fw, 1);
    assert_eq!(
        fw.launch_update_data(guest, DATA + 8, 16),
        Err(E::INVALID_ADDRESS)
    );
    assert_eq!(fw.launch_update_data(guest, DATA, 0), Err(E::INVALID_LEN));
    assert_eq!(fw.launch_update_data(guest, DATA, 24), Err(E::INVALID_LEN));
    assert_eq!(fw.launch_update_data(guest, DATA, 32), Ok(()));
}

#[test]
fn activate_right_after_init_needs_wbinvd_then_df_flush() {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    fw.init().unwrap();
    let guest = fw.launch_start(0).unwrap();
    assert_eq!(
        fw.activate(guest, 1),
        Err(E::DFFLUSH_REQUIRED),
        "INIT leaves ASIDs dirty"
    );
    assert_eq!(fw.df_flush(), Err(E::WBINVD_REQUIRED));
    assert_eq!(fw.asid_state(1), Some(AsidState::Dirty));
    fw.wbinvd();
    fw.df_flush().unwrap();
    fw.activate(guest, 1).unwrap();
}

#[test]
fn a_live_asid_cannot_be_activated_twice() {
    let mut fw = ready();
    let first = launched(&mut fw, 4);
    let second = fw.launch_start(0).unwrap();
    assert_eq!(
        fw.activate(second, 4),
        Err(E::ASID_OWNED),
        "pending activation"
    );
    fw.launch_update_data(first, DATA, 16).unwrap();
    fw.launch_measure(first).unwrap();
    fw.launch_finish(first).unwrap();
    assert_eq!(
        fw.activate(second, 4),
        Err(E::ASID_OWNED),
        "running guest's"
    );
    // The same guest again: its own ASID is owned, another one is ACTIVE.
    assert_eq!(fw.activate(first, 4), Err(E::ASID_OWNED));
    assert_eq!(fw.activate(first, 5), Err(E::ACTIVE));
    fw.activate(second, 5).unwrap();
}

#[test]
fn asids_out_of_range_are_invalid() {
    let mut fw = ready();
    let guest = fw.launch_start(0).unwrap();
    assert_eq!(fw.activate(guest, 0), Err(E::INVALID_ASID));
    assert_eq!(fw.activate(guest, MAX_ASID + 1), Err(E::INVALID_ASID));
    fw.activate(guest, MAX_ASID).unwrap();
}

#[test]
fn an_asid_that_ran_a_guest_needs_wbinvd_and_df_flush_before_reuse() {
    let mut fw = ready();
    let old = running(&mut fw, 2);
    fw.deactivate(old).unwrap();
    fw.decommission(old).unwrap();
    let new = fw.launch_start(0).unwrap();
    assert_eq!(fw.activate(new, 2), Err(E::DFFLUSH_REQUIRED));
    // The WBINVD before the deactivation does not count: DEACTIVATE cleared the flags.
    assert_eq!(fw.df_flush(), Err(E::WBINVD_REQUIRED));
    assert_eq!(fw.activate(new, 2), Err(E::DFFLUSH_REQUIRED));
    fw.wbinvd();
    fw.df_flush().unwrap();
    fw.activate(new, 2).unwrap();
}

#[test]
fn a_wbinvd_issued_on_the_rmp_model_counts_for_df_flush() {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    fw.init().unwrap();
    fw.rmp.wbinvd();
    fw.df_flush().unwrap();
    assert_eq!(fw.asid_state(1), Some(AsidState::Clean));
}

#[test]
fn decommission_only_once_deactivated() {
    let mut fw = ready();
    let guest = running(&mut fw, 1);
    assert_eq!(fw.decommission(guest), Err(E::ACTIVE));
    fw.deactivate(guest).unwrap();
    assert_eq!(fw.deactivate(guest), Err(E::INACTIVE));
    fw.decommission(guest).unwrap();
    // The platform went back to INIT with its last guest.
    assert_eq!(fw.decommission(guest), Err(E::INVALID_PLATFORM_STATE));
}

#[test]
fn decommission_keeps_the_platform_working_while_guests_remain() {
    let mut fw = ready();
    let a = fw.launch_start(0).unwrap();
    let b = fw.launch_start(0).unwrap();
    assert_eq!(b, GuestHandle(2));
    fw.decommission(a).unwrap();
    assert_eq!(fw.platform_state(), PlatformState::Working);
    assert_eq!(fw.decommission(a), Err(E::INVALID_GUEST));
    assert_eq!(fw.launch_start(0), Ok(a), "the handle is free again");
}

#[test]
fn launch_start_refuses_es_without_es_and_beyond_the_guest_limit() {
    let mut fw = SevFirmwareModel::new(MAX_ASID).with_max_guests(1);
    fw.init().unwrap();
    assert_eq!(fw.launch_start(1 << 2), Err(E::UNSUPPORTED));
    fw.launch_start(0).unwrap();
    assert_eq!(fw.launch_start(0), Err(E::RESOURCE_LIMIT));
}

/// Launch one guest with `chunks` written at DATA, 16 bytes each, imported in order.
fn measure_of(chunks: &[[u8; 16]]) -> [u8; 32] {
    let mut fw = ready();
    let guest = launched(&mut fw, 1);
    for (i, chunk) in chunks.iter().enumerate() {
        let pa = DATA + 16 * i as u64;
        fw.host_write(pa, chunk);
        fw.launch_update_data(guest, pa, 16).unwrap();
    }
    fw.launch_measure(guest).unwrap().measurement
}

#[test]
fn the_measurement_covers_the_imported_bytes_in_order() {
    let (a, b) = ([1u8; 16], [2u8; 16]);
    assert_eq!(measure_of(&[a, b]), measure_of(&[a, b]), "deterministic");
    assert_ne!(measure_of(&[a, b]), measure_of(&[b, a]), "order");
    assert_ne!(measure_of(&[a, b]), measure_of(&[a, a]), "content");
    let mut changed = b;
    changed[15] ^= 1;
    assert_ne!(measure_of(&[a, b]), measure_of(&[a, changed]), "one bit");
}

#[test]
fn the_launch_digest_is_over_the_data_not_the_addresses() {
    let mut fw = ready();
    let (one, two) = (fw.launch_start(0).unwrap(), fw.launch_start(0).unwrap());
    fw.activate(one, 1).unwrap();
    fw.activate(two, 2).unwrap();
    fw.host_write(DATA, &[7; 32]);
    fw.host_write(DATA + 0x5000, &[7; 32]);
    fw.launch_update_data(one, DATA, 32).unwrap();
    fw.launch_update_data(two, DATA + 0x5000, 32).unwrap();
    assert_eq!(fw.launch_digest(one), fw.launch_digest(two));
    fw.launch_update_data(two, DATA, 16).unwrap();
    assert_ne!(fw.launch_digest(one), fw.launch_digest(two));
}

#[test]
fn with_snp_initialized_legacy_data_must_be_firmware_pages() {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    fw.snp_init().unwrap();
    fw.init().unwrap();
    fw.wbinvd();
    fw.df_flush().unwrap();
    let guest = launched(&mut fw, 1);
    assert_eq!(
        fw.launch_update_data(guest, DATA, 16),
        Err(E::INVALID_PAGE_STATE)
    );
    fw.rmpupdate(DATA, RmpState::private(0, RmpSize::Size4K, 0, true))
        .unwrap();
    fw.launch_update_data(guest, DATA, 16).unwrap();
}

#[test]
fn an_injected_failure_hits_the_nth_call_only_and_changes_nothing() {
    let mut fw = ready();
    let guest = fw.launch_start(0).unwrap();
    fw.inject(SevCommand::Activate, 2, E::HWSEV_RET_PLATFORM);
    assert_eq!(
        fw.activate(guest, 0),
        Err(E::INVALID_ASID),
        "1st call: real outcome"
    );
    assert_eq!(fw.activate(guest, 1), Err(E::HWSEV_RET_PLATFORM));
    assert_eq!(fw.asid_state(1), Some(AsidState::Clean));
    assert_eq!(fw.guest_asid(guest), None);
    fw.activate(guest, 1).unwrap();
}

#[test]
fn the_log_records_each_command_its_operand_and_outcome() {
    let mut fw = SevFirmwareModel::new(MAX_ASID);
    fw.init().unwrap();
    let _ = fw.df_flush();
    let guest = fw.launch_start(0).unwrap();
    let _ = fw.activate(guest, 1);
    let call = |command, arg, result| FwCall {
        command,
        arg,
        result,
    };
    assert_eq!(
        fw.take_log(),
        [
            call(SevCommand::Init, 0, Ok(())),
            call(SevCommand::DfFlush, 0, Err(E::WBINVD_REQUIRED)),
            call(SevCommand::LaunchStart, 0, Ok(())),
            call(SevCommand::Activate, 1, Err(E::DFFLUSH_REQUIRED)),
        ]
    );
    assert!(fw.log().is_empty());
}

#[test]
fn statuses_have_linux_codes_and_names_and_convert_to_vendor_errors() {
    let table = [
        (E::INVALID_PLATFORM_STATE, 0x01, "INVALID_PLATFORM_STATE"),
        (E::INVALID_GUEST_STATE, 0x02, "INVALID_GUEST_STATE"),
        (E::INVALID_CONFIG, 0x03, "INVALID_CONFIG"),
        (E::INVALID_LEN, 0x04, "INVALID_LEN"),
        (E::POLICY_FAILURE, 0x07, "POLICY_FAILURE"),
        (E::INACTIVE, 0x08, "INACTIVE"),
        (E::INVALID_ADDRESS, 0x09, "INVALID_ADDRESS"),
        (E::ASID_OWNED, 0x0c, "ASID_OWNED"),
        (E::INVALID_ASID, 0x0d, "INVALID_ASID"),
        (E::WBINVD_REQUIRED, 0x0e, "WBINVD_REQUIRED"),
        (E::DFFLUSH_REQUIRED, 0x0f, "DFFLUSH_REQUIRED"),
        (E::INVALID_GUEST, 0x10, "INVALID_GUEST"),
        (E::ACTIVE, 0x12, "ACTIVE"),
        (E::UNSUPPORTED, 0x15, "UNSUPPORTED"),
        (E::INVALID_PARAM, 0x16, "INVALID_PARAM"),
        (E::RESOURCE_LIMIT, 0x17, "RESOURCE_LIMIT"),
        (E::INVALID_PAGE_SIZE, 0x19, "INVALID_PAGE_SIZE"),
        (E::INVALID_PAGE_STATE, 0x1a, "INVALID_PAGE_STATE"),
        (E::INVALID_PAGE_OWNER, 0x1c, "INVALID_PAGE_OWNER"),
        (E::RMP_INIT_REQUIRED, 0x20, "RMP_INIT_REQUIRED"),
        (E::INVALID_KEY, 0x27, "INVALID_KEY"),
    ];
    for (error, code, name) in table {
        assert_eq!((error.code(), error.name()), (code, name));
        assert_eq!(E::from_code(code), error);
        assert_eq!(
            VendorError::from(error),
            VendorError::failed(code.into(), name)
        );
    }
    assert_eq!(E::check(0), Ok(()));
    assert_eq!(E::check(0x0c), Err(E::ASID_OWNED));
    assert_eq!(E::from_code(0x1e).name(), "unknown status");
    assert_eq!(std::format!("{}", E::ASID_OWNED), "ASID_OWNED (0xc)");
}

#[test]
fn commands_have_the_linux_ids() {
    let table = [
        (SevCommand::Init, 0x001),
        (SevCommand::DfFlush, 0x00a),
        (SevCommand::Decommission, 0x020),
        (SevCommand::Activate, 0x021),
        (SevCommand::Deactivate, 0x022),
        (SevCommand::LaunchStart, 0x030),
        (SevCommand::LaunchUpdateData, 0x031),
        (SevCommand::LaunchMeasure, 0x033),
        (SevCommand::LaunchFinish, 0x035),
        (SevCommand::SnpInit, 0x081),
        (SevCommand::SnpDfFlush, 0x084),
        (SevCommand::SnpDecommission, 0x090),
        (SevCommand::SnpActivate, 0x091),
        (SevCommand::SnpGctxCreate, 0x093),
        (SevCommand::SnpLaunchStart, 0x0a0),
        (SevCommand::SnpLaunchUpdate, 0x0a1),
        (SevCommand::SnpLaunchFinish, 0x0a2),
        (SevCommand::SnpPageReclaim, 0x0c7),
    ];
    for (command, id) in table {
        assert_eq!(command.id(), id, "{}", command.name());
    }
}
