//! TDX-01..TDX-15 (spec digest, section H): core's mirror table and the TDX hooks,
//! against the TDX module model. Each test names the rule it checks.

mod common;

use cloister_abi::MemoryKind;
use cloister_core::host::Host;
use cloister_core::mmu::{PageSize, Scope, VendorMmu};
use cloister_core::{Access, Exit, Stop};
use cloister_tdx::abi::{SHARED_BIT_4_LEVEL, seamcall, tdcall};
use cloister_tdx::mmu::PREMAPPED_NOT_ADDED;
use cloister_tdx::model::{self, EntryState};
use cloister_tdx::{Level, Status};
use common::host::{Event, TABLE_BASE};
use common::td::{PAGE, POOL, SimTd};

const MIB: u64 = 1 << 20;

fn names(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            Event::Module(name, _) => *name,
            Event::Cleared(_) => "clear",
        })
        .collect()
}

#[test]
fn tdx_01_every_mirror_entry_has_its_identical_s_ept_entry() {
    let mut td = SimTd::launched(8 * MIB);
    td.check();
    for gpa in [0x40_0000, 0x40_1000, 0x60_0000, 0x7f_f000] {
        td.touch(0, gpa, 1).unwrap();
        td.check();
    }
    assert_eq!(td.map_gpa(1, 0x40_0000, 0x2000, MemoryKind::Shared), 0);
    td.check();
    let leaves = td.vm.private_leaves(&mut td.host);
    assert!(leaves.contains(&(0x60_0000, PageSize::Size4K, POOL + 0x60_0000)));
    assert!(
        !leaves.iter().any(|l| l.0 == 0x40_0000),
        "converted page left the mirror"
    );
    assert_eq!(
        td.model().entry(0x40_0000, Level::L4K),
        None,
        "and the S-EPT"
    );
}

#[test]
fn tdx_02_s_ept_tables_are_added_top_down_before_the_first_leaf_below_them() {
    let mut td = SimTd::launched(1 << 31);
    td.take_journal();
    // The first page of the second GiB: a PD and a PT are needed below the PDPT.
    td.touch(0, 0x4000_0000, 1).unwrap();
    let journal = td.take_journal();
    assert_eq!(
        journal,
        [
            Event::Module("SEPT.ADD", 0x4000_0000),
            Event::Module("SEPT.ADD", 0x4000_0000),
            Event::Module("PAGE.AUG", 0x4000_0000),
        ]
    );
    assert_eq!(
        td.model().entry(0x4000_0000, Level::L1G).map(|e| e.state),
        Some(EntryState::NlMapped)
    );
    assert!(
        td.model()
            .log()
            .iter()
            .all(|c| !c.status.is(Status::EPT_WALK_FAILED)),
        "a correct run never walks into a missing table"
    );
}

#[test]
fn tdx_03_a_busy_aug_restores_the_mirror_entry_and_the_fault_is_retried() {
    let mut td = SimTd::launched(8 * MIB);
    td.touch(0, 0x40_0000, 1).unwrap();
    td.model_mut()
        .inject(seamcall::TDH_MEM_PAGE_AUG, 1, Status::OPERAND_BUSY);
    td.take_journal();
    let before = td.vm.stats();
    td.touch(0, 0x40_1000, 2).unwrap();
    let calls = SimTd::seamcalls(&td.take_journal());
    assert_eq!(calls, ["PAGE.AUG", "PAGE.AUG"], "retried once");
    let after = td.vm.stats();
    assert_eq!(after.fault_retries, 1);
    // The retry found the frame prepared by the first attempt: still a first touch.
    assert_eq!(after.fault_prepared, before.fault_prepared + 1);
    assert_eq!(after.refaults, before.refaults);
    td.check();
}

#[test]
fn tdx_04_busy_on_aug_or_sept_add_is_a_retry_without_state_change() {
    let mut td = SimTd::launched(1 << 31);
    td.model_mut()
        .inject(seamcall::TDH_MEM_SEPT_ADD, 1, Status::OPERAND_BUSY);
    td.model_mut()
        .inject(seamcall::TDH_MEM_PAGE_AUG, 1, Status::OPERAND_BUSY);
    td.take_journal();
    td.touch(0, 0x4000_0000, 1).unwrap();
    let calls = SimTd::seamcalls(&td.take_journal());
    assert_eq!(
        calls,
        ["SEPT.ADD", "SEPT.ADD", "SEPT.ADD", "PAGE.AUG", "PAGE.AUG"],
        "the busy SEPT.ADD left nothing linked: the retry starts over"
    );
    assert_eq!(td.vm.stats().fault_retries, 2);
    td.check();
}

#[test]
fn tdx_04_busy_on_the_removal_path_kicks_the_vcpus_and_retries_once() {
    for leaf in [
        seamcall::TDH_MEM_RANGE_BLOCK,
        seamcall::TDH_MEM_TRACK,
        seamcall::TDH_MEM_PAGE_REMOVE,
    ] {
        let mut td = SimTd::launched(8 * MIB);
        td.touch(0, 0x40_0000, 1).unwrap();
        td.model_mut().inject(leaf, 1, Status::OPERAND_BUSY);
        let kicks = td.vm.vendor().stats().kicks;
        assert_eq!(td.map_gpa(0, 0x40_0000, PAGE, MemoryKind::Shared), 0);
        assert_eq!(td.vm.vendor().stats().busy_retries, 1, "leaf {leaf}");
        assert_eq!(td.vm.vendor().stats().kicks, kicks + 2, "leaf {leaf}");
        td.check();
    }
}

#[test]
fn tdx_04_any_other_error_or_a_second_busy_stops_the_vm_with_the_code() {
    for (nth, status) in [
        (1, Status::EPT_ENTRY_STATE_INCORRECT),
        (2, Status::OPERAND_BUSY),
    ] {
        let mut td = SimTd::launched(8 * MIB);
        td.touch(0, 0x40_0000, 1).unwrap();
        td.model_mut()
            .inject(seamcall::TDH_MEM_RANGE_BLOCK, 1, status);
        if nth == 2 {
            td.model_mut()
                .inject(seamcall::TDH_MEM_RANGE_BLOCK, 2, status);
        }
        let exit = Exit::ConvertRequest {
            gpa: 0x40_0000,
            len: PAGE,
            to_private: false,
        };
        let stop = td.exit_to_vmm(0, exit).expect("the VM stops");
        assert!(matches!(stop, Stop::Mmu { gpa: 0x40_0000, .. }), "{stop:?}");
        let text = stop.to_string();
        assert!(text.contains(status.name()), "{text}");
        // The refused leaf is still mapped on both sides, and still the workload's.
        td.check();
        assert!(td.vm.leaf(0x40_0000, &mut td.host).is_some());
    }
}

#[test]
fn tdx_05_a_leaf_leaves_a_running_td_by_block_track_kick_remove_wbinvd_then_clear() {
    let mut td = SimTd::launched(8 * MIB);
    td.touch(0, 0x40_0000, 0x5a).unwrap();
    td.take_journal();
    assert_eq!(td.map_gpa(0, 0x40_0000, PAGE, MemoryKind::Shared), 0);
    let journal = td.take_journal();
    assert_eq!(
        names(&journal),
        [
            "RANGE.BLOCK",
            "TRACK",
            "kick",
            "PAGE.REMOVE",
            "PAGE.WBINVD",
            "clear"
        ]
    );
    assert_eq!(journal[5], Event::Cleared(POOL + 0x40_0000));
    assert!(!td.model().has_dirty_td_lines(POOL + 0x40_0000));
    // Released after all that: the page is the hypervisor-visible shared frame now.
    assert!(td.vm.is_shared_page(0x40_0000));
    assert!(td.host.frame_is_zero(POOL + 0x40_0000));
}

#[test]
fn tdx_06_s_ept_tables_stay_while_the_td_runs_and_go_only_at_teardown() {
    let mut td = SimTd::launched(8 * MIB);
    for page in 0..16 {
        td.touch(0, 0x40_0000 + page * PAGE, 1).unwrap();
    }
    let links = td.vm.private_table_links(&mut td.host);
    assert_eq!(td.map_gpa(0, 0x40_0000, 2 * MIB, MemoryKind::Shared), 0);
    assert_eq!(
        td.vm.private_table_links(&mut td.host),
        links,
        "empty tables stay linked"
    );
    assert_eq!(td.model().count(seamcall::TDH_MEM_SEPT_REMOVE), 0);
    td.check();
    let SimTd { vm, mut host, .. } = td;
    let (_, teardown) = vm.into_memory(&mut host);
    assert_eq!(teardown, Ok(()));
    assert_eq!(host.tables_in_use(), 0, "every table page came back");
}

#[test]
fn tdx_07_shared_only_zaps_never_touch_the_mirror() {
    let mut td = SimTd::launched(8 * MIB);
    td.touch(0, 0x40_0000, 1).unwrap();
    assert_eq!(td.map_gpa(0, 0x50_0000, PAGE, MemoryKind::Shared), 0);
    td.touch(0, 0x50_0000, 2).unwrap();
    td.take_journal();
    let private = td.vm.private_leaves(&mut td.host);
    assert_eq!(td.vm.zap(0, u64::MAX, Scope::Shared, &mut td.host), 1);
    assert!(td.take_journal().is_empty(), "no SEAMCALL");
    assert_eq!(td.vm.private_leaves(&mut td.host), private);
    td.check();
}

#[test]
fn tdx_08_every_mirror_leaf_zapped_goes_through_the_external_removal() {
    // Mirror leaves change only under `&mut Vm` (the exclusive lock of a hypervisor that
    // handles one exit at a time); here: no zap path clears a mirror leaf without
    // removing its S-EPT leaf first.
    let mut td = SimTd::launched(8 * MIB);
    for gpa in [0x40_0000, 0x40_1000, 0x60_0000] {
        td.touch(1, gpa, 1).unwrap();
    }
    let before = td.vm.private_leaves(&mut td.host).len() as u64;
    td.model_mut().clear_log();
    let zapped = td.vm.zap(0x40_0000, 4 * MIB, Scope::Private, &mut td.host);
    assert_eq!(zapped, 3);
    assert_eq!(
        td.model().count(seamcall::TDH_MEM_PAGE_REMOVE) as u64,
        zapped
    );
    assert_eq!(td.vm.private_leaves(&mut td.host).len() as u64, before - 3);
    for gpa in [0x40_0000, 0x40_1000, 0x60_0000] {
        td.accepted.remove(&gpa);
        td.markers.remove(&gpa);
    }
    td.check();
}

#[test]
fn tdx_09_finalize_is_refused_while_a_premapped_page_was_not_added() {
    let mut td = SimTd::built(8 * MIB, 2);
    td.vm.prefault(0x20_0000, &mut td.host).unwrap();
    assert_eq!(
        td.model().count(seamcall::TDH_MEM_PAGE_AUG),
        0,
        "premapped only"
    );
    assert_eq!(td.vm.vendor_mut().finish_launch(), Err(PREMAPPED_NOT_ADDED));
    assert_eq!(td.model().count(seamcall::TDH_MR_FINALIZE), 0);

    // Launch adds every premapped page (once) and measures it, then finalizes.
    let mut td = SimTd::built(8 * MIB, 2);
    let image = common::td::image(&[0x90; 5000]);
    td.vm.launch(&image, &mut td.host).unwrap();
    let pages = td.vm.private_leaves(&mut td.host).len();
    assert_eq!(
        pages, 9,
        "boot info, 2 page-table pages, 4 stack pages, 2 image pages"
    );
    assert_eq!(td.model().count(seamcall::TDH_MEM_PAGE_ADD), pages);
    assert_eq!(td.model().mrtd_extends(), pages as u64 * 16);
    assert_eq!(td.model().op_state(), model::OpState::Runnable);
    td.check();
}

#[test]
fn tdx_09_a_td_without_vcpus_cannot_be_finalized() {
    let mut td = SimTd::built(8 * MIB, 0);
    let stop = td
        .vm
        .launch(&common::td::image(b"x"), &mut td.host)
        .unwrap_err();
    assert!(stop.to_string().contains("TDX_NO_VCPUS"), "{stop}");
}

#[test]
fn tdx_10_after_finalize_pages_are_augmented_pending_until_accepted() {
    let mut td = SimTd::launched(8 * MIB);
    td.model_mut().clear_log();
    td.enter(0);
    let fault = Exit::NestedPageFault {
        gpa: 0x40_0000,
        access: Access::Write,
        present: false,
    };
    assert_eq!(td.exit_to_vmm(0, fault), None);
    assert_eq!(td.model().count(seamcall::TDH_MEM_PAGE_ADD), 0);
    assert_eq!(td.model().count(seamcall::TDH_MEM_PAGE_AUG), 1);
    let entry = td.model().entry(0x40_0000, Level::L4K).unwrap();
    assert_eq!(entry.state, EntryState::Pending);
    td.enter(0);
    assert_eq!(
        td.model_mut().accept(0, 0x40_0000, Level::L4K),
        model::Accept::Accepted
    );
    assert_eq!(
        td.model().entry(0x40_0000, Level::L4K).unwrap().state,
        EntryState::Mapped
    );
    // PAGE.ADD is refused by the hooks themselves after finalize: no SEAMCALL at all.
    let refused = td
        .vm
        .vendor_mut()
        .add_launch_page(0x40_1000, POOL + 0x40_1000, TABLE_BASE);
    assert_eq!(refused.unwrap_err().code, Status::OP_STATE_INCORRECT.0);
    assert_eq!(td.model().count(seamcall::TDH_MEM_PAGE_ADD), 0);
    assert_eq!(td.model().count(seamcall::TDH_MR_EXTEND), 0);
}

#[test]
fn tdx_11_contention_is_retried_in_the_hypervisor_a_bounded_number_of_times() {
    let mut td = SimTd::launched(8 * MIB);
    for nth in 1..=3 {
        td.model_mut()
            .inject(seamcall::TDH_MEM_PAGE_AUG, nth, Status::OPERAND_BUSY);
    }
    let exits = td.vm.stats().exits;
    td.enter(0);
    let fault = Exit::NestedPageFault {
        gpa: 0x40_0000,
        access: Access::Write,
        present: false,
    };
    assert_eq!(td.exit_to_vmm(0, fault), None);
    assert_eq!(
        td.vm.stats().exits,
        exits + 1,
        "one exit, no re-entry in between"
    );
    assert_eq!(td.vm.stats().fault_retries, 3);
    assert_eq!(
        td.model().entry(0x40_0000, Level::L4K).unwrap().state,
        EntryState::Pending
    );

    // Contention that never ends stops the VM instead of spinning.
    for nth in 1..=64 {
        td.model_mut()
            .inject(seamcall::TDH_MEM_PAGE_AUG, nth, Status::OPERAND_BUSY);
    }
    let fault = Exit::NestedPageFault {
        gpa: 0x40_1000,
        access: Access::Write,
        present: false,
    };
    let stop = td.exit_to_vmm(0, fault).expect("stops");
    assert!(stop.to_string().contains("TDX_OPERAND_BUSY"), "{stop}");
}

#[test]
fn tdx_12_touching_a_pending_page_is_fatal_and_never_re_augmented() {
    let mut td = SimTd::launched(8 * MIB);
    td.enter(0);
    let fault = Exit::NestedPageFault {
        gpa: 0x40_0000,
        access: Access::Read,
        present: false,
    };
    assert_eq!(td.exit_to_vmm(0, fault), None);
    td.enter(0);
    assert_eq!(
        td.model_mut().guest_access(0, 0x40_0000),
        model::Access::Pending
    );
    let stop = td
        .exit_to_vmm(0, Exit::UnacceptedAccess { gpa: 0x40_0000 })
        .expect("fatal");
    assert!(matches!(stop, Stop::Unaccepted { gpa: 0x40_0000, .. }));
    assert_eq!(td.model().count(seamcall::TDH_MEM_PAGE_AUG), 1);
}

#[test]
fn tdx_13_teardown_removes_leaves_then_flushes_frees_the_key_and_reclaims_the_tdr_last() {
    let mut td = SimTd::launched(8 * MIB);
    td.model_mut().set_cache_wb_interruptions(2);
    td.touch(0, 0x40_0000, 1).unwrap();
    td.touch(1, 0x60_0000, 1).unwrap();
    td.take_journal();
    let SimTd {
        vm,
        mut host,
        journal,
        ..
    } = td;
    let (memory, teardown) = vm.into_memory(&mut host);
    assert_eq!(teardown, Ok(()));
    assert_eq!(memory.len(), 1);
    let events = journal.borrow().clone();
    let order = names(&events);
    let at = |name: &str| order.iter().position(|n| *n == name).unwrap();
    let last = |name: &str| order.iter().rposition(|n| *n == name).unwrap();
    assert!(last("PAGE.REMOVE") < at("VP.FLUSH"), "{order:?}");
    assert!(last("VP.FLUSH") < at("VPFLUSHDONE"));
    assert!(at("VPFLUSHDONE") < at("CACHE.WB"));
    assert_eq!(
        order.iter().filter(|n| **n == "CACHE.WB").count(),
        3,
        "resumed twice"
    );
    assert!(last("CACHE.WB") < at("KEY.FREEID"));
    assert!(at("KEY.FREEID") < at("PAGE.RECLAIM"));
    let tdr = common::td::TDR;
    assert_eq!(
        events[events.len() - 2..],
        [
            Event::Module("PAGE.RECLAIM", tdr),
            Event::Module("PAGE.WBINVD", tdr)
        ],
        "the TDR last, then its cache lines"
    );
    assert_eq!(host.tables_in_use(), 0, "S-EPT pages reclaimed and freed");
}

#[test]
fn tdx_13_a_page_the_module_will_not_give_back_is_leaked_not_freed() {
    let mut td = SimTd::launched(8 * MIB);
    td.touch(0, 0x40_0000, 1).unwrap();
    td.model_mut().inject(
        seamcall::TDH_PHYMEM_PAGE_RECLAIM,
        1,
        Status::PAGE_METADATA_INCORRECT,
    );
    let SimTd { vm, mut host, .. } = td;
    let (_, teardown) = vm.into_memory(&mut host);
    assert_eq!(
        teardown.unwrap_err().code,
        Status::PAGE_METADATA_INCORRECT.0
    );
    assert_eq!(
        host.tables_in_use(),
        1,
        "the refused S-EPT page stays out of use"
    );
}

#[test]
fn tdx_14_shared_pages_are_mapped_at_the_shared_bit_and_map_gpa_is_checked() {
    let mut td = SimTd::launched(8 * MIB);
    assert_eq!(td.map_gpa(0, 0x40_0000, PAGE, MemoryKind::Shared), 0);
    td.touch(0, 0x40_0000, 7).unwrap();
    assert!(
        td.vm.leaf(0x40_0000, &mut td.host).is_some(),
        "direct table"
    );
    assert!(
        td.model().entry(0x40_0000, Level::L4K).is_none(),
        "not in the S-EPT"
    );
    let shared_root = td.vm.shared_root().expect("split tables");
    assert_ne!(shared_root, td.vm.npt_root());
    // Bit 47 selects the upper half of the direct table's root: the leaf hangs there.
    {
        use cloister_core::mmu::{PteFormat, TableMemory};
        use cloister_tdx::EptFormat;
        assert!(EptFormat::is_present(td.host.table(shared_root)[256]));
        assert_eq!(
            td.host.table(shared_root)[0],
            0,
            "nothing at the private alias"
        );
    }
    // A private access to the shared page maps nothing and stops the workload.
    td.enter(0);
    let private = Exit::NestedPageFault {
        gpa: 0x40_0000,
        access: Access::Read,
        present: false,
    };
    let stop = td.exit_to_vmm(0, private).expect("mismatch");
    assert!(
        matches!(stop, Stop::KindMismatch { private: true, .. }),
        "{stop:?}"
    );

    let mut td = SimTd::launched(8 * MIB);
    let straddle = SHARED_BIT_4_LEVEL - PAGE;
    assert_eq!(
        td.map_gpa(0, straddle, 2 * PAGE, MemoryKind::Private),
        tdcall::VMCALL_INVALID_OPERAND
    );
    assert_eq!(
        td.map_gpa(0, 0x40_0800, PAGE, MemoryKind::Shared),
        tdcall::VMCALL_ALIGN_ERROR
    );
    // Outside private memory: nothing to convert.
    assert_eq!(
        td.map_gpa(0, 16 * MIB, PAGE, MemoryKind::Shared),
        tdcall::VMCALL_INVALID_OPERAND
    );
}

#[test]
fn tdx_15_remove_waits_for_track_and_for_every_vcpu_of_the_blocking_epoch() {
    let mut td = SimTd::launched(8 * MIB);
    td.touch(0, 0x40_0000, 1).unwrap();
    // vCPU 1 runs in the TD through the whole conversion: only the kick after TRACK
    // gets it out of the blocking epoch.
    td.enter(1);
    assert_eq!(td.map_gpa(0, 0x40_0000, PAGE, MemoryKind::Shared), 0);
    assert!(!td.model().in_guest(1), "kicked out");
    let log: Vec<_> = td
        .model()
        .log()
        .iter()
        .filter(|c| c.leaf == seamcall::TDH_MEM_PAGE_REMOVE)
        .map(|c| c.status)
        .collect();
    assert_eq!(log.last(), Some(&Status::SUCCESS));
    assert!(
        td.model()
            .log()
            .iter()
            .all(|c| !c.status.is(Status::TLB_TRACKING_NOT_DONE)),
        "the hooks never REMOVE before tracking is done"
    );
    td.check();
}

#[test]
fn cloister_calls_travel_by_tdvmcall_with_buffers_named_by_either_alias() {
    use cloister_abi::boot::BOOT_INFO_SIZE;
    use cloister_abi::hypercall::FEATURE_TRANSPORT_TDVMCALL;
    use cloister_abi::{Call, Error};
    let mut td = SimTd::launched(8 * MIB);
    assert_eq!(td.map_gpa(0, 0x40_0000, PAGE, MemoryKind::Shared), 0);
    for buffer in [0x40_0000, 0x40_0000 | SHARED_BIT_4_LEVEL] {
        let written = td.call(0, Call::Info as u64, [buffer, PAGE, 0, 0]).unwrap();
        assert_eq!(written, BOOT_INFO_SIZE as u64);
        let features = td.host.with_frame(POOL + 0x40_0000, |f| {
            u64::from_le_bytes(f[24..32].try_into().unwrap())
        });
        assert_ne!(features & FEATURE_TRANSPORT_TDVMCALL, 0);
        td.host.write_frame(POOL + 0x40_0000, 0);
    }
    // A private buffer is refused as everywhere else.
    let refused = td
        .call(0, Call::Info as u64, [0x50_0000, PAGE, 0, 0])
        .unwrap();
    assert_eq!(refused, Error::NotShared.to_rax());
    let stop = td.call(1, Call::Exit as u64, [3, 0, 0, 0]).unwrap_err();
    assert_eq!(stop, Stop::Exited { status: 3 });
}

#[test]
fn seamcalls_per_operation() {
    // Steady state: the 2 MiB region already has its tables; a 4 KiB fault is one AUG.
    let mut td = SimTd::launched(8 * MIB);
    td.touch(0, 0x40_0000, 1).unwrap();
    td.take_journal();
    td.touch(0, 0x40_1000, 1).unwrap();
    let fault = SimTd::seamcalls(&td.take_journal()).len();
    assert_eq!(fault, 1);

    // Converting a fully used 2 MiB to shared.
    for page in 0..512 {
        td.touch(0, 0x40_0000 + page * PAGE, 1).unwrap();
    }
    td.take_journal();
    assert_eq!(td.map_gpa(0, 0x40_0000, 2 * MIB, MemoryKind::Shared), 0);
    let conversion = SimTd::seamcalls(&td.take_journal()).len();
    assert_eq!(conversion, 512 * 4);
    println!("SEAMCALLs: 4 KiB fault {fault}, 2 MiB conversion to shared {conversion}");
}

#[test]
#[ignore = "touches 1 GiB page by page: run with --release -- --ignored"]
fn seamcalls_per_teardown_of_1g() {
    let mut td = SimTd::launched(1 << 30);
    for page in 0..(1u64 << 30) / PAGE {
        td.accept(0, page * PAGE)
            .unwrap_or_else(|stop| panic!("{stop}"));
    }
    td.take_journal();
    let SimTd {
        vm,
        mut host,
        journal,
        ..
    } = td;
    let (_, teardown) = vm.into_memory(&mut host);
    assert_eq!(teardown, Ok(()));
    let calls = SimTd::seamcalls(&journal.borrow()).len();
    println!("SEAMCALLs: teardown of 1 GiB mapped 4 KiB at a time {calls}");
    assert_eq!(host.tables_in_use(), 0);
}
