//! Demand pinning through the VM: the conformance items of
//! ../shared/specs/confidential-memory.md §H that concern the VM and its nested table.

use crate::elf::tests::build_elf;
use crate::exit::{Access, Exit};
use crate::mmu::Scope;
use crate::stop::Stop;
use crate::testing::{FakeHost, ScriptedVcpu, TestVendor};
use crate::vm::{Pinning, Vm};
use crate::vm_tests::{TestVm, slots, spec};
use std::vec::Vec;

const PRIVATE_HOST: u64 = 0x100_0000;

fn fault(gpa: u64) -> impl FnMut(&mut crate::vcpu::Regs) -> Exit {
    move |_| Exit::NestedPageFault {
        gpa,
        access: Access::Write,
        present: false,
    }
}

fn run_faults(vm: &mut TestVm, host: &mut FakeHost, gpas: &[u64]) {
    let mut vcpu = ScriptedVcpu::default();
    for &gpa in gpas {
        vcpu = vcpu.step(fault(gpa));
    }
    vcpu = vcpu.step(|_| Exit::Shutdown);
    assert_eq!(vm.run(&mut vcpu, host), Stop::TripleFault { rip: 0 });
}

fn new_vm(host: &mut FakeHost, size: u64, huge: bool, pinning: Pinning) -> TestVm {
    let slots = slots(size, huge);
    Vm::new(&spec(&slots, !0, pinning, 1), TestVendor::default(), host).unwrap()
}

#[test]
fn pin_03_a_zapped_private_page_refaults_to_the_same_frame_without_preparing_again() {
    let mut host = FakeHost::new(64);
    let mut vm = new_vm(&mut host, 0x40_0000, false, Pinning::Demand);
    run_faults(&mut vm, &mut host, &[0x5000]);
    let frame = vm.prefault(0x5000, &mut host).unwrap();
    host.frame(frame)[0] = 0x42;
    assert_eq!(vm.zap(0, 0x40_0000, Scope::Private, &mut host), 1);
    run_faults(&mut vm, &mut host, &[0x5000]);
    assert_eq!(vm.prefault(0x5000, &mut host).unwrap(), frame);
    assert_eq!(host.frame(frame)[0], 0x42, "not scrubbed again");
    let stats = vm.stats();
    assert_eq!(
        (stats.fault_prepared, stats.refaults, stats.zapped),
        (1, 1, 1)
    );
}

#[test]
fn pin_02_rebuilding_the_vm_keeps_every_pinned_frame() {
    let mut host = FakeHost::new(64);
    let slots = slots(0x40_0000, false);
    let mut vm = Vm::new(
        &spec(&slots, !0, Pinning::Demand, 1),
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    run_faults(&mut vm, &mut host, &[0x1000, 0x9000, 0x20_0000]);
    let before: Vec<u64> = [0x1000, 0x9000, 0x20_0000]
        .iter()
        .map(|&g| vm.prefault(g, &mut host).unwrap())
        .collect();
    let (memory, teardown) = vm.into_memory(&mut host);
    assert_eq!(teardown, Ok(()));
    assert_eq!(memory[0].prepared_frames(), 3);
    // A new instance (a restart) on a fresh nested table binds the same objects.
    let mut vm = Vm::with_memory(
        &spec(&slots, !0, Pinning::Demand, 2),
        memory,
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    run_faults(&mut vm, &mut host, &[0x1000, 0x9000, 0x20_0000]);
    let after: Vec<u64> = [0x1000, 0x9000, 0x20_0000]
        .iter()
        .map(|&g| vm.prefault(g, &mut host).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(vm.stats().fault_prepared, 0, "nothing prepared again");
    assert_eq!(vm.stats().refaults, 3);
    assert_eq!(vm.prepared_frames(), 3);
}

#[test]
fn pin_08_demand_launch_prepares_the_same_frames_whatever_the_size_upfront_prepares_all() {
    let elf = build_elf(0x20_0000, 0x20_0000, &[0x90; 10_000], 0x10_0000);
    let launch = |size, pinning| {
        let mut host = FakeHost::new(64);
        let mut vm = new_vm(&mut host, size, true, pinning);
        vm.launch(&elf, &mut host).unwrap();
        vm.stats().launch_prepared
    };
    assert_eq!(
        launch(64 << 20, Pinning::Demand),
        launch(1 << 30, Pinning::Demand)
    );
    assert_eq!(launch(16 << 20, Pinning::Upfront), (16 << 20) / 4096);
    assert_eq!(launch(64 << 20, Pinning::Upfront), (64 << 20) / 4096);
}

#[test]
fn pool_04_punch_hole_unmaps_then_releases_and_a_later_touch_scrubs_again() {
    let mut host = FakeHost::new(64);
    let mut vm = new_vm(&mut host, 0x40_0000, false, Pinning::Demand);
    run_faults(&mut vm, &mut host, &[0x3000]);
    let frame = vm.prefault(0x3000, &mut host).unwrap();
    host.frame(frame)[7] = 9;
    assert_eq!(vm.punch_hole(0x2000, 0x2000, &mut host), Ok(1));
    assert_eq!(vm.stats().zapped, 1, "the mapping went with the frame");
    assert_eq!(vm.prepared_frames(), 0);
    run_faults(&mut vm, &mut host, &[0x3000]);
    assert_eq!(host.frame(frame)[7], 0, "scrubbed before reuse");
    assert_eq!(vm.stats().fault_prepared, 2);
}

#[test]
fn private_memory_is_mapped_2m_where_the_pool_prefers_it_and_the_block_is_uniform() {
    let mut host = FakeHost::new(64);
    let mut vm = new_vm(&mut host, 0x60_0000, true, Pinning::Demand);
    run_faults(&mut vm, &mut host, &[0x20_1234]);
    assert_eq!(vm.stats().huge_maps, 1);
    assert_eq!(vm.stats().fault_prepared, 512);
    assert_eq!(
        vm.prefault(0x3f_f000, &mut host).unwrap(),
        PRIVATE_HOST + 0x3f_f000
    );
    // A block with a hole punched in it is no longer uniform: 4 KiB from then on.
    vm.punch_hole(0x20_0000, 0x1000, &mut host).unwrap();
    run_faults(&mut vm, &mut host, &[0x20_0000, 0x20_1000]);
    assert_eq!(vm.stats().huge_maps, 1);
    assert_eq!(
        vm.stats().fault_prepared,
        513,
        "only the punched page is prepared again"
    );
}

#[test]
fn zaps_name_their_scope() {
    let mut host = FakeHost::new(64);
    let mut vm = new_vm(&mut host, 0x40_0000, false, Pinning::Demand);
    run_faults(&mut vm, &mut host, &[0x1000, crate::vm_tests::SHARED_GPA]);
    assert_eq!(vm.zap(0, u64::MAX, Scope::Shared, &mut host), 1);
    assert_eq!(vm.zap(0, u64::MAX, Scope::Shared, &mut host), 0);
    assert_eq!(vm.zap(0, u64::MAX, Scope::Private, &mut host), 1);
}

#[test]
fn restart_frees_every_table_and_refuses_objects_that_do_not_fit_without_losing_them() {
    let mut host = FakeHost::new(64);
    let slots = slots(0x40_0000, false);
    let mut vm = Vm::new(
        &spec(&slots, !0, Pinning::Demand, 1),
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    run_faults(
        &mut vm,
        &mut host,
        &[0x1000, 0x30_0000, crate::vm_tests::SHARED_GPA],
    );
    let (memory, teardown) = vm.into_memory(&mut host);
    assert_eq!(teardown, Ok(()));
    assert_eq!(
        host.freed_tables.len(),
        host.tables_allocated(),
        "every table page freed"
    );
    // Objects for a different layout are refused and handed back, prepared frames intact.
    let other = crate::vm_tests::slots(0x80_0000, false);
    let refused = Vm::<crate::testing::TestFormat, TestVendor>::with_memory(
        &spec(&other, !0, Pinning::Demand, 2),
        memory,
        TestVendor::default(),
        &mut host,
    );
    let Err((error, memory)) = refused else {
        panic!("objects for another layout were accepted")
    };
    assert_eq!(error, crate::vm::CreateError::MemoryMismatch);
    assert_eq!(memory[0].prepared_frames(), 2);
    let vm: TestVm = Vm::with_memory(
        &spec(&slots, !0, Pinning::Demand, 2),
        memory,
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    assert_eq!(vm.prepared_frames(), 2);
}

/// An instance that touched private pages, wrote a marker into one and converted
/// another to shared, torn down for a restart with `memory`; then the next instance.
fn restarted(memory: crate::vm::RestartMemory) -> (TestVm, FakeHost) {
    let mut host = FakeHost::new(64);
    let slots = slots(0x40_0000, false);
    let mut vm = Vm::new(
        &spec(&slots, !0, Pinning::Demand, 1),
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    run_faults(&mut vm, &mut host, &[0x1000, 0x9000, 0x20_0000]);
    let marked = vm.prefault(0x9000, &mut host).unwrap();
    host.frame(marked)[0] = 0xa5;
    vm.convert(
        0x20_0000,
        0x1000,
        cloister_abi::MemoryKind::Shared,
        &mut host,
    )
    .unwrap();
    let (objects, teardown) = vm.into_restart_memory(memory, &mut host);
    assert_eq!(teardown, Ok(()));
    assert_eq!(
        host.freed_tables.len(),
        host.tables_allocated(),
        "every table page freed"
    );
    let vm = Vm::with_memory(
        &spec(&slots, !0, Pinning::Demand, 2),
        objects,
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    (vm, host)
}

#[test]
fn a_restart_keeping_memory_keeps_private_contents_and_undoes_conversions() {
    let (mut vm, mut host) = restarted(crate::vm::RestartMemory::Keep);
    assert_eq!(vm.prepared_frames(), 2, "the two pages still private");
    let marked = vm.prefault(0x9000, &mut host).unwrap();
    assert_eq!(host.frame(marked)[0], 0xa5, "contents kept");
    assert!(!vm.is_shared_page(0x20_0000), "private again, as at launch");
    vm.prefault(0x20_0000, &mut host).unwrap();
    assert_eq!(
        vm.stats().launch_prepared,
        1,
        "only the converted page again"
    );
}

#[test]
fn a_fresh_restart_gives_every_frame_back_and_starts_from_zeroed_memory() {
    let (mut vm, mut host) = restarted(crate::vm::RestartMemory::Fresh);
    assert_eq!(vm.prepared_frames(), 0);
    let frame = vm.prefault(0x9000, &mut host).unwrap();
    assert_eq!(host.frame(frame)[0], 0, "scrubbed before reuse");
    assert_eq!(
        (vm.stats().launch_prepared, vm.stats().refaults),
        (1, 0),
        "prepared anew, not refaulted"
    );
    assert!(!vm.is_shared_page(0x20_0000));
}
