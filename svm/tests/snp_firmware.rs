//! The SEV firmware model's SNP commands over its RMP: the launch flow of spec digest
//! D.5 with the page states of D.6, and each refusal with its exact status.

use cloister_svm::sev::firmware::{
    AsidState, FirmwareError, FwCall, SevCommand, SevFirmware, SevFirmwareModel, SnpGuestState,
    SnpPageState, SnpPageType, SnpPlatformState, page_state,
};
use cloister_svm::sev::rmp::{Rmp, RmpError, RmpSize, RmpState};

type E = FirmwareError;

const K4: RmpSize = RmpSize::Size4K;
const M2: RmpSize = RmpSize::Size2M;
const ASID: u32 = 5;
/// Linux's default SNP policy: SMT allowed, bit 17 set.
const POLICY: u64 = 0x30000;
const GCTX: u64 = 0x8000;
/// Guest frames, 2 MiB aligned, and the GPA they back.
const PA: u64 = 0x4000_0000;
const GPA: u64 = 0x20_0000;

/// SNP_INIT, then WBINVD and SNP_DF_FLUSH (Linux `__sev_snp_init_locked`).
fn snp_ready() -> SevFirmwareModel {
    let mut fw = SevFirmwareModel::new(16);
    fw.snp_init().unwrap();
    fw.wbinvd();
    fw.snp_df_flush().unwrap();
    fw
}

/// RMPUPDATE to a Firmware page (Linux `rmp_mark_pages_firmware`).
fn make_firmware(fw: &mut SevFirmwareModel, pa: u64) {
    fw.rmpupdate(pa, RmpState::private(0, K4, 0, true)).unwrap();
}

fn state_of(fw: &SevFirmwareModel, pa: u64) -> SnpPageState {
    page_state(&fw.rmp.lookup(pa))
}

/// A guest launched and activated on `asid` at GCTX.
fn launching(fw: &mut SevFirmwareModel, asid: u32) {
    make_firmware(fw, GCTX);
    fw.snp_launch_begin(GCTX, POLICY, asid).unwrap();
}

/// RMPUPDATE the `size` page at `pa` to Pre-Guest for `asid` at `gpa`.
fn pre_guest(fw: &mut SevFirmwareModel, pa: u64, gpa: u64, size: RmpSize, asid: u32) {
    fw.rmpupdate(pa, RmpState::private(gpa, size, asid, true))
        .unwrap();
}

#[test]
fn the_launch_flow_moves_every_page_through_its_states() {
    let mut fw = snp_ready();
    make_firmware(&mut fw, GCTX);
    assert_eq!(state_of(&fw, GCTX), SnpPageState::Firmware);
    fw.snp_gctx_create(GCTX).unwrap();
    assert_eq!(state_of(&fw, GCTX), SnpPageState::Context);
    assert_eq!(fw.snp_guest_state(GCTX), Some(SnpGuestState::Init));
    fw.snp_launch_start(GCTX, POLICY).unwrap();
    fw.snp_activate(GCTX, ASID).unwrap();
    assert_eq!(fw.snp_guest_state(GCTX), Some(SnpGuestState::Launch));
    assert_eq!(fw.asid_state(ASID), Some(AsidState::Allocated));

    pre_guest(&mut fw, PA, GPA, M2, ASID);
    assert_eq!(state_of(&fw, PA), SnpPageState::PreGuest);
    fw.snp_launch_update(GCTX, PA, M2, SnpPageType::Normal)
        .unwrap();
    assert_eq!(state_of(&fw, PA + 0x1f_f000), SnpPageState::GuestValid);
    let vmsa = PA + 0x20_0000;
    pre_guest(&mut fw, vmsa, 0xffff_f000, K4, ASID);
    fw.snp_launch_update(GCTX, vmsa, K4, SnpPageType::Vmsa)
        .unwrap();
    assert!(fw.rmp.lookup(vmsa).vmsa);
    fw.snp_launch_finish(GCTX, [0; 32]).unwrap();
    assert_eq!(fw.snp_guest_state(GCTX), Some(SnpGuestState::Running));
    assert_eq!(fw.asid_state(ASID), Some(AsidState::InUse));

    fw.snp_decommission(GCTX).unwrap();
    assert_eq!(fw.snp_guest_state(GCTX), None);
    assert_eq!(state_of(&fw, GCTX), SnpPageState::Firmware);
    assert_eq!(fw.asid_state(ASID), Some(AsidState::Dirty), "it ran: dirty");
    fw.snp_page_reclaim(GCTX, K4).unwrap();
    assert_eq!(state_of(&fw, GCTX), SnpPageState::Reclaim);
    fw.rmpupdate(GCTX, RmpState::shared(K4)).unwrap();
    assert_eq!(state_of(&fw, GCTX), SnpPageState::Hypervisor);
}

#[test]
fn snp_init_comes_first_and_once() {
    let mut fw = SevFirmwareModel::new(16);
    fw.init().unwrap();
    assert_eq!(
        fw.snp_init(),
        Err(E::INVALID_PLATFORM_STATE),
        "SEV already INIT"
    );
    let mut fw = SevFirmwareModel::new(16);
    fw.snp_init().unwrap();
    assert_eq!(fw.snp_platform_state(), SnpPlatformState::Init);
    assert_eq!(fw.snp_init(), Err(E::INVALID_PLATFORM_STATE));
    fw.init().unwrap();
}

#[test]
fn snp_commands_before_snp_init_are_invalid_platform_state() {
    let mut fw = SevFirmwareModel::new(16);
    make_firmware(&mut fw, GCTX);
    let ips = Err(E::INVALID_PLATFORM_STATE);
    assert_eq!(fw.snp_gctx_create(GCTX), ips);
    assert_eq!(fw.snp_launch_start(GCTX, POLICY), ips);
    assert_eq!(fw.snp_activate(GCTX, ASID), ips);
    assert_eq!(fw.snp_launch_update(GCTX, PA, K4, SnpPageType::Normal), ips);
    assert_eq!(fw.snp_launch_finish(GCTX, [0; 32]), ips);
    assert_eq!(fw.snp_page_reclaim(GCTX, K4), ips);
    assert_eq!(fw.snp_decommission(GCTX), ips);
    // Reserved address bits are checked before the platform state.
    assert_eq!(fw.snp_gctx_create(GCTX + 8), Err(E::INVALID_PARAM));
}

#[test]
fn gctx_create_wants_a_4k_firmware_page() {
    let mut fw = snp_ready();
    assert_eq!(
        fw.snp_gctx_create(GCTX),
        Err(E::INVALID_PAGE_STATE),
        "hypervisor page"
    );
    fw.rmpupdate(PA, RmpState::private(0, M2, 0, true)).unwrap();
    assert_eq!(fw.snp_gctx_create(PA), Err(E::INVALID_PAGE_SIZE));
    pre_guest(&mut fw, GCTX, 0x1000, K4, ASID);
    assert_eq!(
        fw.snp_gctx_create(GCTX),
        Err(E::INVALID_PAGE_STATE),
        "a guest's page"
    );
    make_firmware(&mut fw, GCTX + 0x1000);
    fw.snp_gctx_create(GCTX + 0x1000).unwrap();
    assert_eq!(
        fw.snp_gctx_create(GCTX + 0x1000),
        Err(E::INVALID_PAGE_STATE),
        "a context page"
    );
}

#[test]
fn launch_start_needs_a_context_page_in_init_and_an_acceptable_policy() {
    let mut fw = snp_ready();
    make_firmware(&mut fw, GCTX);
    assert_eq!(
        fw.snp_launch_start(GCTX, POLICY),
        Err(E::INVALID_GUEST),
        "no context yet"
    );
    fw.snp_gctx_create(GCTX).unwrap();
    assert_eq!(
        fw.snp_launch_start(GCTX, 0x10000),
        Err(E::POLICY_FAILURE),
        "bit 17 clear"
    );
    assert_eq!(
        fw.snp_launch_start(GCTX, POLICY | 1 << 21),
        Err(E::POLICY_FAILURE)
    );
    assert_eq!(
        fw.snp_launch_start(GCTX, POLICY | 0x200),
        Err(E::POLICY_FAILURE),
        "ABI 2.0"
    );
    assert_eq!(fw.snp_guest_state(GCTX), Some(SnpGuestState::Init));
    fw.snp_launch_start(GCTX, POLICY | 0x0100).unwrap();
    assert_eq!(
        fw.snp_launch_start(GCTX, POLICY),
        Err(E::INVALID_GUEST_STATE)
    );
}

#[test]
fn activate_wants_a_launched_guest_and_no_page_of_the_asid_yet() {
    let mut fw = snp_ready();
    make_firmware(&mut fw, GCTX);
    fw.snp_gctx_create(GCTX).unwrap();
    assert_eq!(fw.snp_activate(GCTX, ASID), Err(E::INVALID_GUEST_STATE));
    fw.snp_launch_start(GCTX, POLICY).unwrap();
    pre_guest(&mut fw, PA, GPA, K4, ASID);
    assert_eq!(
        fw.snp_activate(GCTX, ASID),
        Err(E::INVALID_CONFIG),
        "RMPUPDATE came first"
    );
    assert_eq!(fw.snp_activate(GCTX, 0), Err(E::INVALID_ASID));
    fw.snp_activate(GCTX, ASID + 1).unwrap();
    assert_eq!(fw.snp_activate(GCTX, ASID + 2), Err(E::ACTIVE));
}

#[test]
fn activate_of_another_guests_or_a_dirty_asid_is_refused() {
    let mut fw = SevFirmwareModel::new(16);
    fw.snp_init().unwrap();
    launching_without_activate(&mut fw, GCTX);
    assert_eq!(
        fw.snp_activate(GCTX, ASID),
        Err(E::DFFLUSH_REQUIRED),
        "SNP_INIT left it dirty"
    );
    fw.wbinvd();
    fw.snp_df_flush().unwrap();
    fw.snp_activate(GCTX, ASID).unwrap();
    let other = GCTX + 0x1000;
    launching_without_activate(&mut fw, other);
    assert_eq!(fw.snp_activate(other, ASID), Err(E::ASID_OWNED));
}

fn launching_without_activate(fw: &mut SevFirmwareModel, gctx: u64) {
    make_firmware(fw, gctx);
    fw.snp_gctx_create(gctx).unwrap();
    fw.snp_launch_start(gctx, POLICY).unwrap();
}

#[test]
fn launch_update_of_a_page_not_pre_guest_is_invalid_page_state() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    let normal = SnpPageType::Normal;
    assert_eq!(
        fw.snp_launch_update(GCTX, PA, K4, normal),
        Err(E::INVALID_PAGE_STATE),
        "hypervisor"
    );
    fw.rmpupdate(PA, RmpState::private(GPA, K4, ASID, false))
        .unwrap();
    assert_eq!(
        fw.snp_launch_update(GCTX, PA, K4, normal),
        Err(E::INVALID_PAGE_STATE),
        "mutable"
    );
    make_firmware(&mut fw, PA + 0x1000);
    let fw_page = fw.snp_launch_update(GCTX, PA + 0x1000, K4, normal);
    assert_eq!(fw_page, Err(E::INVALID_PAGE_STATE), "firmware page");
    pre_guest(&mut fw, PA + 0x2000, GPA, K4, ASID);
    fw.snp_launch_update(GCTX, PA + 0x2000, K4, normal).unwrap();
    let again = fw.snp_launch_update(GCTX, PA + 0x2000, K4, normal);
    assert_eq!(again, Err(E::INVALID_PAGE_STATE), "already guest-valid");
}

#[test]
fn launch_update_checks_size_alignment_type_guest_and_owner() {
    let mut fw = snp_ready();
    make_firmware(&mut fw, GCTX);
    fw.snp_gctx_create(GCTX).unwrap();
    fw.snp_launch_start(GCTX, POLICY).unwrap();
    pre_guest(&mut fw, PA, GPA, M2, ASID);
    let normal = SnpPageType::Normal;
    assert_eq!(fw.snp_launch_update(GCTX, PA, M2, normal), Err(E::INACTIVE));
    // Activating now would find the ASID's page: activate on a clean ASID before it.
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    pre_guest(&mut fw, PA, GPA, M2, ASID);
    assert_eq!(
        fw.snp_launch_update(GCTX, PA, K4, normal),
        Err(E::INVALID_PAGE_SIZE)
    );
    assert_eq!(
        fw.snp_launch_update(GCTX, PA + 0x1000, M2, normal),
        Err(E::INVALID_ADDRESS)
    );
    let vmsa = fw.snp_launch_update(GCTX, PA, M2, SnpPageType::Vmsa);
    assert_eq!(vmsa, Err(E::INVALID_PAGE_SIZE), "a VMSA is 4 KiB");
    assert_eq!(
        fw.snp_launch_update(GCTX + 0x1000, PA, M2, normal),
        Err(E::INVALID_GUEST)
    );
    assert_eq!(
        fw.snp_launch_update(GCTX, PA + 8, M2, normal),
        Err(E::INVALID_PARAM)
    );
    let foreign = PA + 0x20_0000;
    pre_guest(&mut fw, foreign, GPA, K4, ASID + 1);
    assert_eq!(
        fw.snp_launch_update(GCTX, foreign, K4, normal),
        Err(E::INVALID_PAGE_OWNER)
    );
    fw.snp_launch_finish(GCTX, [0; 32]).unwrap();
    assert_eq!(
        fw.snp_launch_update(GCTX, PA, M2, normal),
        Err(E::INVALID_GUEST_STATE)
    );
    assert_eq!(
        state_of(&fw, PA),
        SnpPageState::PreGuest,
        "refusals change no page"
    );
}

#[test]
fn a_refused_cpuid_page_stays_immutable_until_reclaimed() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    pre_guest(&mut fw, PA, GPA, K4, ASID);
    fw.host_write(PA, &65u32.to_le_bytes());
    let cpuid = fw.snp_launch_update(GCTX, PA, K4, SnpPageType::Cpuid);
    assert_eq!(cpuid, Err(E::INVALID_PARAM));
    assert_eq!(
        fw.rmpupdate(PA, RmpState::shared(K4)),
        Err(RmpError::FailPermission)
    );
    fw.snp_page_reclaim(PA, K4).unwrap();
    assert_eq!(state_of(&fw, PA), SnpPageState::GuestInvalid);
    fw.rmpupdate(PA, RmpState::shared(K4)).unwrap();
    assert_eq!(state_of(&fw, PA), SnpPageState::Hypervisor);
}

#[test]
fn a_page_never_reclaimed_cannot_be_rmpupdated() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    pre_guest(&mut fw, PA, GPA, K4, ASID);
    for state in [
        RmpState::shared(K4),
        RmpState::private(GPA, K4, ASID, false),
    ] {
        assert_eq!(fw.rmpupdate(PA, state), Err(RmpError::FailPermission));
    }
    assert_eq!(
        fw.rmpupdate(GCTX, RmpState::shared(K4)),
        Err(RmpError::FailPermission)
    );
    assert_eq!(state_of(&fw, PA), SnpPageState::PreGuest);
}

#[test]
fn page_reclaim_takes_firmware_and_pre_guest_pages_but_not_a_context_page() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    assert_eq!(fw.snp_page_reclaim(GCTX, K4), Err(E::INVALID_PAGE_STATE));
    make_firmware(&mut fw, PA);
    assert_eq!(fw.snp_page_reclaim(PA, M2), Err(E::INVALID_PAGE_SIZE));
    fw.snp_page_reclaim(PA, K4).unwrap();
    assert_eq!(state_of(&fw, PA), SnpPageState::Reclaim);
    fw.snp_page_reclaim(PA, K4).unwrap();
    let hypervisor = PA + 0x1000;
    fw.snp_page_reclaim(hypervisor, K4).unwrap();
    assert_eq!(state_of(&fw, hypervisor), SnpPageState::Hypervisor);
    let large = PA + 0x20_0000;
    pre_guest(&mut fw, large, GPA, M2, ASID);
    assert_eq!(
        fw.snp_page_reclaim(large + 0x1000, M2),
        Err(E::INVALID_ADDRESS)
    );
    assert_eq!(fw.snp_page_reclaim(large + 8, M2), Err(E::INVALID_PARAM));
    assert_eq!(
        fw.snp_page_reclaim(large + 0x1000, K4),
        Err(E::INVALID_PAGE_SIZE)
    );
    fw.snp_page_reclaim(large, M2).unwrap();
    assert_eq!(state_of(&fw, large + 0x1f_f000), SnpPageState::GuestInvalid);
}

#[test]
fn launch_finish_needs_a_launching_activated_guest() {
    let mut fw = snp_ready();
    launching_without_activate(&mut fw, GCTX);
    assert_eq!(fw.snp_launch_finish(GCTX, [0; 32]), Err(E::INACTIVE));
    fw.snp_activate(GCTX, ASID).unwrap();
    fw.snp_launch_finish(GCTX, [1; 32]).unwrap();
    assert_eq!(
        fw.snp_launch_finish(GCTX, [1; 32]),
        Err(E::INVALID_GUEST_STATE)
    );
    let mut fresh = snp_ready();
    make_firmware(&mut fresh, GCTX);
    fresh.snp_gctx_create(GCTX).unwrap();
    assert_eq!(
        fresh.snp_launch_finish(GCTX, [0; 32]),
        Err(E::INVALID_GUEST_STATE)
    );
}

#[test]
fn decommission_deactivates_and_frees_the_context() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    fw.snp_decommission(GCTX).unwrap();
    assert_eq!(
        fw.asid_state(ASID),
        Some(AsidState::Clean),
        "never ran: clean"
    );
    assert_eq!(fw.snp_decommission(GCTX), Err(E::INVALID_GUEST));
    assert_eq!(fw.snp_launch_start(GCTX, POLICY), Err(E::INVALID_GUEST));
    // The same page can hold a new guest, which may take the same ASID.
    fw.snp_launch_begin(GCTX, POLICY, ASID).unwrap();
}

#[test]
fn a_running_guests_asid_needs_wbinvd_and_df_flush_after_decommission() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    fw.snp_launch_finish(GCTX, [0; 32]).unwrap();
    fw.snp_decommission(GCTX).unwrap();
    let next = GCTX + 0x1000;
    launching_without_activate(&mut fw, next);
    assert_eq!(fw.snp_activate(next, ASID), Err(E::DFFLUSH_REQUIRED));
    assert_eq!(fw.snp_df_flush(), Err(E::WBINVD_REQUIRED));
    fw.wbinvd();
    fw.snp_df_flush().unwrap();
    fw.snp_activate(next, ASID).unwrap();
}

/// The measurement of one 4 KiB page of `page_type` holding `byte`, at `gpa`.
fn measure(page_type: SnpPageType, byte: u8, gpa: u64) -> [u8; 48] {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    pre_guest(&mut fw, PA, gpa, K4, ASID);
    fw.host_write(PA, &[byte; 64]);
    fw.snp_launch_update(GCTX, PA, K4, page_type).unwrap();
    fw.snp_measurement(GCTX).unwrap()
}

#[test]
fn the_measurement_covers_contents_type_and_the_rmp_gpa() {
    use SnpPageType::*;
    assert_eq!(
        measure(Normal, 1, GPA),
        measure(Normal, 1, GPA),
        "deterministic"
    );
    assert_ne!(measure(Normal, 1, GPA), measure(Normal, 2, GPA), "contents");
    assert_ne!(
        measure(Normal, 1, GPA),
        measure(Normal, 1, GPA + 0x1000),
        "GPA"
    );
    assert_ne!(measure(Normal, 1, GPA), measure(Unmeasured, 1, GPA), "type");
    assert_eq!(
        measure(Unmeasured, 1, GPA),
        measure(Unmeasured, 2, GPA),
        "not measured"
    );
    assert_eq!(measure(Zero, 1, GPA), measure(Zero, 2, GPA), "zeroed");
    assert_ne!(measure(Vmsa, 1, GPA), measure(Vmsa, 2, GPA));
}

#[test]
fn an_injected_snp_failure_changes_nothing_and_is_logged() {
    let mut fw = snp_ready();
    launching(&mut fw, ASID);
    pre_guest(&mut fw, PA, GPA, K4, ASID);
    fw.take_log();
    fw.inject(SevCommand::SnpLaunchUpdate, 1, E::INVALID_PAGE_STATE);
    let normal = SnpPageType::Normal;
    assert_eq!(
        fw.snp_launch_update(GCTX, PA, K4, normal),
        Err(E::INVALID_PAGE_STATE)
    );
    assert_eq!(state_of(&fw, PA), SnpPageState::PreGuest);
    fw.snp_launch_update(GCTX, PA, K4, normal).unwrap();
    let update = |result| FwCall {
        command: SevCommand::SnpLaunchUpdate,
        arg: PA,
        result,
    };
    assert_eq!(
        fw.take_log(),
        [update(Err(E::INVALID_PAGE_STATE)), update(Ok(()))]
    );
}

/// What a hypervisor hook would do, over any platform: the whole SNP launch of one
/// page, then its teardown back to a hypervisor page.
fn launch_one_page<P: SevFirmware + Rmp>(p: &mut P) -> Result<(), E> {
    p.rmpupdate(GCTX, RmpState::private(0, K4, 0, true))
        .map_err(|_| E::INVALID_PAGE_STATE)?;
    p.snp_launch_begin(GCTX, POLICY, ASID)?;
    p.rmpupdate(PA, RmpState::private(GPA, K4, ASID, true))
        .map_err(|_| E::INVALID_PAGE_STATE)?;
    p.snp_launch_update(GCTX, PA, K4, SnpPageType::Normal)?;
    p.snp_launch_finish(GCTX, [0; 32])?;
    p.snp_decommission(GCTX)?;
    p.snp_page_reclaim(GCTX, K4)?;
    p.rmpupdate(GCTX, RmpState::shared(K4))
        .map_err(|_| E::INVALID_PAGE_STATE)?;
    // A guest-valid page is mutable: no reclaim needed.
    p.rmpupdate(PA, RmpState::shared(K4))
        .map_err(|_| E::INVALID_PAGE_STATE)
}

#[test]
fn one_model_stands_for_the_whole_platform() {
    let mut fw = snp_ready();
    launch_one_page(&mut fw).unwrap();
    assert_eq!(fw.rmp.assigned_frames().count(), 0);
    assert_eq!(fw.rmp.check_invariants(), Ok(()));
}
