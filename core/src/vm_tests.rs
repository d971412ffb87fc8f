//! The VM's launch and exit handling, driven by scripted vCPUs on a fake host.

use crate::elf::tests::build_elf;
use crate::exit::{Access, Exit};
use crate::memslot::SlotSpec;
use crate::stop::Stop;
use crate::testing::{FakeHost, ScriptedVcpu, TestFormat, TestVendor};
use crate::vcpu::vector;
use crate::vm::{Pinning, Vm, VmSpec};
use cloister_abi::boot::{self, BOOT_INFO_MAGIC};
use cloister_abi::{Call, Error, MemoryKind};

const PRIVATE_HOST: u64 = 0x100_0000;
pub(crate) const SHARED_GPA: u64 = 0x4000_0000;
const SHARED_HOST: u64 = 0x800_0000;
const ALL_CALLS: u64 = !0;

pub(crate) type TestVm = Vm<TestFormat, TestVendor>;

pub(crate) fn slots(private_size: u64, huge: bool) -> [SlotSpec; 2] {
    [
        SlotSpec {
            gpa: 0,
            size: private_size,
            kind: MemoryKind::Private,
            host_base: PRIVATE_HOST,
            huge,
        },
        SlotSpec {
            gpa: SHARED_GPA,
            size: 0x20_0000,
            kind: MemoryKind::Shared,
            host_base: SHARED_HOST,
            huge: false,
        },
    ]
}

pub(crate) fn spec<'a>(
    slots: &'a [SlotSpec],
    allowed_calls: u64,
    pinning: Pinning,
    instance: u64,
) -> VmSpec<'a> {
    VmSpec {
        name: "t",
        slots,
        allowed_calls,
        pinning,
        instance,
    }
}

fn vm(host: &mut FakeHost, private_size: u64, allowed_calls: u64) -> TestVm {
    let slots = slots(private_size, false);
    Vm::new(
        &spec(&slots, allowed_calls, Pinning::Demand, 1),
        TestVendor::default(),
        host,
    )
    .unwrap()
}

fn hypercall(call: u64, rbx: u64, rcx: u64) -> impl FnMut(&mut crate::vcpu::Regs) -> Exit {
    move |regs| {
        regs.rax = call;
        regs.rbx = rbx;
        regs.rcx = rcx;
        Exit::Hypercall
    }
}

fn exit_with(status: u64) -> impl FnMut(&mut crate::vcpu::Regs) -> Exit {
    hypercall(Call::Exit as u64, status, 0)
}

fn read_u64(vm: &mut TestVm, host: &mut FakeHost, gpa: u64) -> u64 {
    let pa = vm.fault_in(gpa, host).ok().unwrap().pa;
    let at = (gpa % 4096) as usize;
    u64::from_le_bytes(host.frame(pa)[at..at + 8].try_into().unwrap())
}

#[test]
fn launch_loads_image_boot_info_and_identity_map() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, 0b110);
    let elf = build_elf(
        0x20_0008,
        0x20_0000,
        &0x1122_3344_5566_7788u64.to_le_bytes(),
        0x10_0000,
    );
    let entry = vm.launch(&elf, &mut host).unwrap();
    assert_eq!(
        (entry.rip, entry.rsp, entry.rdi, entry.cr3),
        (0x20_0008, 0x20_0000, 0x1000, 0x2000)
    );
    assert_eq!(
        read_u64(&mut vm, &mut host, 0x20_0000),
        0x1122_3344_5566_7788
    );
    assert_eq!(
        read_u64(&mut vm, &mut host, boot::BOOT_INFO_GPA),
        BOOT_INFO_MAGIC
    );
    assert_eq!(
        read_u64(&mut vm, &mut host, boot::BOOT_INFO_GPA + 16),
        0b110,
        "allowed calls"
    );
    assert_eq!(read_u64(&mut vm, &mut host, 0x2000), 0x3000 | 0b11);
    assert_eq!(
        read_u64(&mut vm, &mut host, 0x3000 + 8 * 5),
        (5 << 30) | 0x83
    );
    // Image page, boot info, PML4, PDPT: the .bss tail was not touched.
    assert_eq!(vm.stats().launch_prepared, 4);
}

#[test]
fn pin_08_launch_populates_the_same_pages_whatever_the_memory_size() {
    let elf = build_elf(0x20_0000, 0x20_0000, &[0x90; 10_000], 0x100_0000);
    let pages = |size| {
        let mut host = FakeHost::new(64);
        let mut vm = vm(&mut host, size, ALL_CALLS);
        vm.launch(&elf, &mut host).unwrap();
        vm.stats().launch_prepared
    };
    assert_eq!(pages(64 << 20), pages(2 << 30));
}

#[test]
fn launch_refuses_images_outside_private_memory() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let low = build_elf(0x1000, 0x1000, b"x", 1);
    assert_eq!(
        vm.launch(&low, &mut host),
        Err(Stop::ImageOutsideMemory {
            gpa: 0x1000,
            size: 1
        })
    );
    let shared = build_elf(SHARED_GPA, SHARED_GPA, b"x", 1);
    assert!(matches!(
        vm.launch(&shared, &mut host),
        Err(Stop::ImageOutsideMemory { .. })
    ));
    assert!(matches!(
        vm.launch(b"not an elf", &mut host),
        Err(Stop::BadImage { .. })
    ));
}

#[test]
fn first_touch_maps_a_zeroed_frame_and_later_touches_reuse_it() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let mut vcpu = ScriptedVcpu::default()
        .step(|_| Exit::NestedPageFault {
            gpa: 0x30_0123,
            access: Access::Write,
            present: false,
        })
        .step(exit_with(0));
    assert_eq!(vm.run(&mut vcpu, &mut host), Stop::Exited { status: 0 });
    let pa = vm.fault_in(0x30_0000, &mut host).ok().unwrap().pa;
    assert!(
        host.frame(pa).iter().all(|&b| b == 0),
        "scrubbed before use"
    );
    assert_eq!(
        vm.fault_in(0x30_0fff, &mut host).ok().map(|p| p.pa),
        Some(pa)
    );
    assert_eq!(
        (vm.stats().npf, vm.stats().exits, vm.stats().hypercalls),
        (1, 2, 1)
    );
}

#[test]
fn an_access_outside_the_memory_map_stops_the_workload_with_the_gpa() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let mut vcpu = ScriptedVcpu::default().step(|regs| {
        regs.rip = 0x20_0042;
        Exit::NestedPageFault {
            gpa: 0x1_0000_0000,
            access: Access::Read,
            present: false,
        }
    });
    let stop = vm.run(&mut vcpu, &mut host);
    assert_eq!(
        stop,
        Stop::OutsideMemory {
            gpa: 0x1_0000_0000,
            access: Access::Read,
            rip: 0x20_0042
        }
    );
    assert!(std::format!("{stop}").contains("gpa=0x100000000"));
}

#[test]
fn a_gpa_wider_than_the_table_cannot_alias_a_low_mapping() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let alias = (1 << 48) | 0x30_0000;
    let mut vcpu = ScriptedVcpu::default()
        .step(|_| Exit::NestedPageFault {
            gpa: 0x30_0000,
            access: Access::Write,
            present: false,
        })
        .step(move |_| Exit::NestedPageFault {
            gpa: alias,
            access: Access::Read,
            present: false,
        });
    let stop = vm.run(&mut vcpu, &mut host);
    assert_eq!(
        stop,
        Stop::OutsideMemory {
            gpa: alias,
            access: Access::Read,
            rip: 0
        }
    );
}

#[test]
fn running_out_of_page_tables_stops_cleanly_and_keeps_the_frame_prepared() {
    // Root only: the first fault needs three more tables.
    let mut host = FakeHost::new(1);
    let mut vm = vm(&mut host, 0x2000, ALL_CALLS);
    let mut vcpu = ScriptedVcpu::default().step(|_| Exit::NestedPageFault {
        gpa: 0x1000,
        access: Access::Write,
        present: false,
    });
    let stop = vm.run(&mut vcpu, &mut host);
    assert!(matches!(stop, Stop::Mmu { gpa: 0x1000, .. }), "{stop:?}");
    // The frame was prepared before the map failed; its state lives in the object, so
    // it is neither leaked nor prepared twice.
    assert_eq!(vm.prepared_frames(), 1);
}

#[test]
fn shared_memory_is_mapped_with_2m_leaves_when_aligned() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let mut vcpu = ScriptedVcpu::default()
        .step(|_| Exit::NestedPageFault {
            gpa: SHARED_GPA + 0x1_2345,
            access: Access::Write,
            present: false,
        })
        .step(exit_with(0));
    vm.run(&mut vcpu, &mut host);
    assert_eq!(
        vm.fault_in(SHARED_GPA + 0x1f_f000, &mut host)
            .ok()
            .map(|p| p.pa),
        Some(SHARED_HOST + 0x1f_f000)
    );
    // Root, PDPT, PD: no last-level table was needed for the shared slot.
    assert_eq!(host.tables_allocated(), 3);
    assert_eq!(vm.stats().npf, 1);
}

#[test]
fn console_write_prefixes_lines_and_requires_shared_memory() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let msg = b"hello\nwor";
    host.frame(SHARED_HOST + 0x1000)[0xffc..].copy_from_slice(&msg[..4]);
    host.frame(SHARED_HOST + 0x2000)[..5].copy_from_slice(&msg[4..]);
    const CONSOLE: u64 = Call::ConsoleWrite as u64;
    let mut vcpu = ScriptedVcpu::default()
        .step(hypercall(CONSOLE, SHARED_GPA + 0x1ffc, 9))
        .step(|regs| {
            assert_eq!(regs.rax, 9, "bytes written");
            hypercall(CONSOLE, 0x20_0000, 4)(regs)
        })
        .step(|regs| {
            assert_eq!(
                regs.rax,
                Error::NotShared.to_rax(),
                "private buffer refused"
            );
            hypercall(CONSOLE, SHARED_GPA + 0x1f_fff0, 0x20)(regs)
        })
        .step(|regs| {
            assert_eq!(
                regs.rax,
                Error::NotShared.to_rax(),
                "buffer running off the region"
            );
            hypercall(CONSOLE, SHARED_GPA, 4097)(regs)
        })
        .step(|regs| {
            assert_eq!(regs.rax, Error::InvalidArgument.to_rax());
            hypercall(0xdead, 0, 0)(regs)
        })
        .step(|regs| {
            assert_eq!(regs.rax, Error::UnknownCall.to_rax());
            assert_eq!(regs.rip, 15, "every hypercall skipped its instruction");
            exit_with(7)(regs)
        });
    assert_eq!(vm.run(&mut vcpu, &mut host), Stop::Exited { status: 7 });
    assert_eq!(host.console_text(), "[t] hello\n[t] wor");
}

#[test]
fn calls_outside_the_allowed_set_are_denied() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, Call::Exit.mask());
    let mut vcpu = ScriptedVcpu::default()
        .step(hypercall(Call::ConsoleWrite as u64, SHARED_GPA, 1))
        .step(|regs| {
            assert_eq!(regs.rax, Error::Denied.to_rax());
            exit_with(0)(regs)
        });
    assert!(vm.run(&mut vcpu, &mut host).is_clean());
    assert!(host.console.is_empty());
}

#[test]
fn port_reads_float_high_msrs_raise_gp_and_cpuid_is_filtered() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let mut vcpu = ScriptedVcpu::default()
        .step(|regs| {
            regs.rax = 0x1234_5678_9abc_def0;
            Exit::Io {
                port: 0x60,
                size: 1,
                write: false,
                string: false,
                next_rip: 0x10,
            }
        })
        .step(|regs| {
            assert_eq!((regs.rax, regs.rip), (0x1234_5678_9abc_deff, 0x10));
            Exit::Msr {
                write: false,
                insn_len: 2,
            }
        })
        .step(|regs| {
            regs.rax = 0x8000_0001;
            Exit::Cpuid { insn_len: 2 }
        })
        .step(|regs| {
            assert_eq!(regs.rcx & (1 << 2), 0, "SVM hidden");
            assert_eq!(regs.rip, 0x12);
            Exit::Hlt
        });
    assert_eq!(vm.run(&mut vcpu, &mut host), Stop::Halted { rip: 0x12 });
    assert_eq!(vcpu.injected, [(vector::GP, Some(0))]);
}

#[test]
fn failed_entry_and_unknown_exits_stop_with_their_codes() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let mut vcpu = ScriptedVcpu::default().step(|_| Exit::VmrunFailed { code: 0xffff_ffff });
    assert_eq!(
        vm.run(&mut vcpu, &mut host),
        Stop::VmrunFailed { code: 0xffff_ffff }
    );
    let mut vcpu = ScriptedVcpu::default().step(|_| Exit::Unknown {
        code: 0x8d,
        info1: 1,
        info2: 2,
    });
    assert_eq!(
        vm.run(&mut vcpu, &mut host),
        Stop::UnknownExit {
            code: 0x8d,
            info1: 1,
            info2: 2,
            rip: 0
        }
    );
}

#[test]
fn prepare_names_the_guest_physical_address_of_the_frames() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let pa = vm.fault_in(0x30_5000, &mut host).ok().unwrap().pa;
    assert_eq!(pa, PRIVATE_HOST + 0x30_5000);
    assert_eq!(vm.vendor_mut().prepared_at, [(0x30_5000, pa)]);
}

/// A VM whose private slot prefers 2 MiB leaves.
fn huge_vm(host: &mut FakeHost) -> TestVm {
    let slots = slots(0x400_0000, true);
    Vm::new(
        &spec(&slots, ALL_CALLS, Pinning::Demand, 1),
        TestVendor::default(),
        host,
    )
    .unwrap()
}

fn touch(gpa: u64) -> impl FnMut(&mut crate::vcpu::Regs) -> Exit {
    move |_| Exit::NestedPageFault {
        gpa,
        access: Access::Write,
        present: false,
    }
}

#[test]
fn snp_05_a_size_mismatch_splits_the_entry_and_zaps_the_2m_range_to_refault_at_4k() {
    let mut host = FakeHost::new(64);
    let mut vm = huge_vm(&mut host);
    let block_pa = PRIVATE_HOST + 0x20_0000;
    let mut vcpu = ScriptedVcpu::default()
        .step(touch(0x20_3000))
        .step(|_| Exit::OwnershipFault {
            gpa: 0x20_3000,
            size_mismatch: true,
            code: 0,
        })
        .step(exit_with(0));
    assert_eq!(vm.run(&mut vcpu, &mut host), Stop::Exited { status: 0 });
    assert_eq!(vm.stats().huge_maps, 1, "first mapped with a 2 MiB leaf");
    assert_eq!(vm.vendor_mut().splits, [block_pa]);
    assert_eq!(
        vm.leaf(0x20_3000, &mut host),
        None,
        "the 2 MiB range was zapped"
    );
    // The vendor now caps the block at 4 KiB: the refault maps the same frame, small.
    vm.vendor_mut().small_leaves.push(block_pa);
    assert_eq!(
        vm.fault_in(0x20_3000, &mut host)
            .ok()
            .map(|p| (p.pa, p.prepared)),
        Some((block_pa + 0x3000, 0))
    );
    assert_eq!(vm.stats().huge_maps, 1, "no second 2 MiB leaf");
    assert_eq!(vm.private_leaves(&mut host).len(), 1);
}

#[test]
fn an_ownership_fault_outside_prepared_private_memory_or_not_about_size_stops_with_it() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let error = crate::mmu::VendorError::failed(0x8000_0004, crate::vm::HARDWARE_OWNERSHIP_FAULT);
    let mut vcpu = ScriptedVcpu::default().step(move |_| Exit::OwnershipFault {
        gpa: 0x10_0000,
        size_mismatch: false,
        code: 0x8000_0004,
    });
    let stop = vm.run(&mut vcpu, &mut host);
    assert_eq!(
        stop,
        Stop::OwnershipFault {
            gpa: 0x10_0000,
            error,
            rip: 0
        }
    );
    assert_eq!(
        alloc::format!("{stop}"),
        "stopped: ownership fault reported by the hardware (0x80000004) at gpa=0x100000 (rip=0x0)"
    );
    // A size mismatch on a page never prepared is not the hypervisor's to split.
    let mut vcpu = ScriptedVcpu::default().step(move |_| Exit::OwnershipFault {
        gpa: 0x10_0000,
        size_mismatch: true,
        code: 0x8000_0004,
    });
    assert!(matches!(
        vm.run(&mut vcpu, &mut host),
        Stop::OwnershipFault { gpa: 0x10_0000, .. }
    ));
    assert!(vm.vendor_mut().splits.is_empty());
}

#[test]
fn a_private_leaf_the_ownership_check_refuses_is_not_installed_and_stops_the_vm() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let error = crate::mmu::VendorError::failed(4, "RMP check: wrong ASID");
    vm.vendor_mut().refuse_leaves = Some(error);
    let mut vcpu = ScriptedVcpu::default().step(touch(0x30_0000));
    assert_eq!(
        vm.run(&mut vcpu, &mut host),
        Stop::OwnershipFault {
            gpa: 0x30_0000,
            error,
            rip: 0
        }
    );
    assert!(vm.private_leaves(&mut host).is_empty());
}

#[test]
fn a_block_the_vendor_caps_at_4k_once_prepared_is_mapped_small_and_counted_whole() {
    let mut host = FakeHost::new(64);
    let mut vm = huge_vm(&mut host);
    // The vendor would take the block whole, but its prepare ends with 4 KiB entries.
    let block_pa = PRIVATE_HOST + 0x20_0000;
    vm.vendor_mut().small_leaves.push(block_pa);
    vm.vendor_mut().cap_after_prepare = true;
    let populated = vm.fault_in(0x20_3000, &mut host).ok().unwrap();
    assert_eq!((populated.pa, populated.prepared), (block_pa + 0x3000, 512));
    assert_eq!(vm.stats().huge_maps, 0);
    // The rest of the block was prepared with it: its first touch is no new preparation.
    let next = vm.fault_in(0x20_4000, &mut host).ok().unwrap();
    assert_eq!((next.pa, next.prepared), (block_pa + 0x4000, 0));
}

/// A vCPU that only ever takes the preemption tick, as a workload spinning with its
/// interrupts off would, after `hypercalls` console-free calls (unknown numbers).
fn spinner(hypercalls_then_ticks: &[(u32, u32)]) -> ScriptedVcpu {
    let mut vcpu = ScriptedVcpu::default();
    for &(calls, ticks) in hypercalls_then_ticks {
        for _ in 0..calls {
            vcpu = vcpu.step(hypercall(0xdead, 0, 0));
        }
        for _ in 0..ticks {
            vcpu = vcpu.step(|regs| {
                regs.rip = 0x40_1000;
                Exit::Interrupt
            });
        }
    }
    vcpu
}

#[test]
fn the_watchdog_stops_a_workload_that_makes_no_hypercall_for_its_limit() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    vm.set_watchdog(crate::watchdog::WatchdogSetting {
        limit_ms: 30,
        tick_ms: 10,
    });
    // Two quiet ticks, a call, then three quiet ticks: the count restarts at the call.
    let mut vcpu = spinner(&[(0, 2), (1, 3)]);
    let stop = vm.run(&mut vcpu, &mut host);
    assert_eq!(
        stop,
        Stop::Unresponsive {
            limit_ms: 30,
            rip: 0x40_1000
        }
    );
    assert_eq!(vm.stats().exits, 6, "stopped at the third quiet tick");
    assert!(
        std::format!("{stop}").contains("no hypercall for 30 ms (watchdog)"),
        "{stop}"
    );
}

#[test]
fn without_a_watchdog_ticks_only_resume_the_workload() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host, 0x400_0000, ALL_CALLS);
    let mut vcpu = spinner(&[(0, 100)]).step(exit_with(0));
    assert_eq!(vm.run(&mut vcpu, &mut host), Stop::Exited { status: 0 });
    assert_eq!(vm.stats().exits, 101);
}
