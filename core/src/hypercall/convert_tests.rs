//! MEMORY_CONVERT and the conversion semantics behind it (CONV- items of
//! ../shared/specs/confidential-memory.md §H).

use super::{Outcome, Request, dispatch};
use crate::elf::tests::build_elf;
use crate::mmu::PteFormat;
use crate::testing::{FakeHost, TestFormat, TestVendor};
use crate::vm::{Pinning, Vm};
use crate::vm_tests::{SHARED_GPA, TestVm, slots, spec};
use cloister_abi::hypercall::{CONVERT_TO_PRIVATE, CONVERT_TO_SHARED};
use cloister_abi::{Call, Error};

const SHARED_HOST: u64 = 0x800_0000;
const LIST: u64 = SHARED_GPA + 0x1000;

fn vm(host: &mut FakeHost) -> TestVm {
    let slots = slots(0x400_0000, false);
    let mut vm = Vm::new(
        &spec(&slots, !0, Pinning::Demand, 1),
        TestVendor::default(),
        host,
    )
    .unwrap();
    vm.launch(&build_elf(0x20_0000, 0x20_0000, b"code", 0x1000), host)
        .unwrap();
    vm
}

/// Write `ranges` as the list at LIST.
fn list(host: &mut FakeHost, ranges: &[(u64, u64)]) -> u64 {
    let page = host.frame(SHARED_HOST + 0x1000);
    for (i, &(gpa, pages)) in ranges.iter().enumerate() {
        page[i * 16..i * 16 + 8].copy_from_slice(&gpa.to_le_bytes());
        page[i * 16 + 8..i * 16 + 16].copy_from_slice(&pages.to_le_bytes());
    }
    ranges.len() as u64
}

fn convert(vm: &mut TestVm, host: &mut FakeHost, entries: u64, direction: u64, resume: u64) -> u64 {
    match dispatch(
        vm,
        Request {
            number: Call::MemoryConvert as u64,
            args: [LIST, entries, direction, resume],
        },
        host,
    ) {
        Outcome::Return(rax) => rax,
        Outcome::Stop(stop) => panic!("stopped: {stop:?}"),
    }
}

fn console(vm: &mut TestVm, host: &mut FakeHost, gpa: u64, len: u64) -> u64 {
    match dispatch(
        vm,
        Request {
            number: Call::ConsoleWrite as u64,
            args: [gpa, len, 0, 0],
        },
        host,
    ) {
        Outcome::Return(rax) => rax,
        Outcome::Stop(stop) => panic!("stopped: {stop:?}"),
    }
}

#[test]
fn conv_03_to_shared_zaps_private_mappings_scrubs_and_maps_the_same_frame_as_shared() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    let frame = vm.prefault(0x30_0000, &mut host).unwrap();
    host.frame(frame)[0] = 0x5e;
    let n = list(&mut host, &[(0x30_0000, 1)]);
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0), 1);
    assert_eq!(
        host.frame(frame)[0],
        0,
        "private contents never become visible"
    );
    assert_eq!(vm.stats().zapped, 1);
    // The same frame, now a shared (unpinned) leaf.
    assert_eq!(vm.prefault(0x30_0000, &mut host).unwrap(), frame);
    let pte = vm_leaf(&mut vm, &mut host, 0x30_0000);
    assert!(!TestFormat::is_pinned(pte));
    // The hypervisor may now read it: a console write from converted memory works.
    host.frame(frame)[..3].copy_from_slice(b"hi\n");
    assert_eq!(console(&mut vm, &mut host, 0x30_0000, 3), 3);
    assert_eq!(host.console_text(), "[t] hi\n");
}

fn vm_leaf(vm: &mut TestVm, host: &mut FakeHost, gpa: u64) -> u64 {
    vm.leaf(gpa, host).expect("mapped")
}

#[test]
fn conv_03_to_private_zaps_shared_mappings_and_the_page_comes_back_scrubbed() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    let n = list(&mut host, &[(0x30_0000, 2)]);
    convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0);
    let frame = vm.prefault(0x30_1000, &mut host).unwrap();
    host.frame(frame)[9] = 0x77; // written while shared
    let private_leaf = vm.prefault(0x20_0000, &mut host).unwrap();
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_PRIVATE, 0), 2);
    assert!(
        vm.leaf(0x30_1000, &mut host).is_none(),
        "shared mapping zapped"
    );
    assert_eq!(
        vm.prefault(0x20_0000, &mut host).unwrap(),
        private_leaf,
        "private mappings untouched"
    );
    assert_eq!(vm.prefault(0x30_1000, &mut host).unwrap(), frame);
    assert_eq!(host.frame(frame)[9], 0, "scrubbed before private reuse");
}

#[test]
fn conv_06_to_private_is_busy_while_a_console_write_drains_from_the_range() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    let n = list(&mut host, &[(0x30_0000, 1)]);
    convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0);
    let frame = vm.prefault(0x30_0000, &mut host).unwrap();
    host.frame(frame).fill(b'x');
    assert_eq!(console(&mut vm, &mut host, 0x30_0000, 4096), 4096);
    assert_eq!(host.console.len(), 4 + 256, "one bounded slice per exit");
    assert_eq!(
        convert(&mut vm, &mut host, n, CONVERT_TO_PRIVATE, 0),
        Error::Busy.to_rax()
    );
    assert_eq!(
        console(&mut vm, &mut host, SHARED_GPA, 1),
        Error::Busy.to_rax(),
        "one write at a time"
    );
    // Each exit drains a slice; once the write is out, the conversion goes through.
    for _ in 0..15 {
        crate::hypercall::console::drain(&mut vm, &mut host, 256);
    }
    assert_eq!(host.console.iter().filter(|&&b| b == b'x').count(), 4096);
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_PRIVATE, 0), 1);
}

#[test]
fn conv_07_big_requests_convert_at_most_2_mib_per_call_and_resume() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    let n = list(&mut host, &[(0x40_0000, 300), (0x80_0000, 300)]);
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0), 512);
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 512), 600);
    // Idempotent: a repeated call (e.g. after BUSY) does no harm.
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 512), 600);
    assert!(vm.is_shared_page(0x80_0000 + 299 * 4096));
    assert!(!vm.is_shared_page(0x80_0000 + 300 * 4096));
}

#[test]
fn conv_08_contiguous_entries_are_merged_into_one_step() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    for page in 0..4 {
        vm.prefault(0x30_0000 + page * 4096, &mut host).unwrap();
    }
    let zaps = vm.vendor().zaps;
    let n = list(&mut host, &[(0x30_0000, 1), (0x30_1000, 1), (0x30_2000, 2)]);
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0), 4);
    assert_eq!(vm.vendor().zaps - zaps, 1, "one zap for the merged range");
}

#[test]
fn conv_09_every_bad_list_is_refused_before_anything_changes() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    let invalid = Error::InvalidArgument.to_rax();
    let cases: [(&str, &[(u64, u64)]); 6] = [
        ("misaligned", &[(0x30_0800, 1)]),
        ("zero pages", &[(0x30_0000, 0)]),
        ("wrapping", &[(0xffff_ffff_ffff_f000, 2)]),
        ("overlapping", &[(0x30_0000, 4), (0x30_2000, 1)]),
        ("shared slot", &[(SHARED_GPA, 1)]),
        ("outside memory", &[(0x3_0000_0000, 1)]),
    ];
    for (what, ranges) in cases {
        let n = list(
            &mut host,
            &[(0x31_0000, 1)]
                .iter()
                .chain(ranges)
                .copied()
                .collect::<std::vec::Vec<_>>(),
        );
        assert_eq!(
            convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0),
            invalid,
            "{what}"
        );
        assert!(
            !vm.is_shared_page(0x31_0000),
            "{what}: the valid entry was not converted either"
        );
    }
    let n = list(&mut host, &[(0x30_0000, 1)]);
    assert_eq!(
        convert(&mut vm, &mut host, n, 3, 0),
        invalid,
        "bad direction"
    );
    assert_eq!(
        convert(&mut vm, &mut host, 0, CONVERT_TO_SHARED, 0),
        invalid,
        "no entries"
    );
    assert_eq!(
        convert(&mut vm, &mut host, 257, CONVERT_TO_SHARED, 0),
        invalid,
        "too many entries"
    );
    assert_eq!(
        convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 2),
        invalid,
        "resume past the end"
    );
    let private_list = dispatch(
        &mut vm,
        Request {
            number: Call::MemoryConvert as u64,
            args: [0x30_0000, 1, CONVERT_TO_SHARED, 0],
        },
        &mut host,
    );
    assert_eq!(
        private_list,
        Outcome::Return(Error::NotShared.to_rax()),
        "the list must be in shared memory"
    );
}

#[test]
fn entries_that_touch_across_two_private_slots_are_converted_each_in_its_own_slot() {
    // Private slots A [0, 4 MiB) and B [4 MiB, 8 MiB), adjacent; shared after them.
    let slots = [
        crate::memslot::SlotSpec {
            gpa: 0,
            size: 0x40_0000,
            kind: cloister_abi::MemoryKind::Private,
            host_base: 0x100_0000,
            huge: false,
        },
        crate::memslot::SlotSpec {
            gpa: 0x40_0000,
            size: 0x40_0000,
            kind: cloister_abi::MemoryKind::Private,
            host_base: 0x200_0000,
            huge: false,
        },
        slots(0x40_0000, false)[1],
    ];
    let mut host = FakeHost::new(64);
    let mut vm: TestVm = Vm::new(
        &spec(&slots, !0, Pinning::Demand, 1),
        TestVendor::default(),
        &mut host,
    )
    .unwrap();
    // A lone page, then A's last page and B's first: valid entries each, contiguous.
    let n = list(&mut host, &[(0x10_0000, 1), (0x3f_f000, 1), (0x40_0000, 1)]);
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_SHARED, 0), 3);
    for gpa in [0x10_0000, 0x3f_f000, 0x40_0000] {
        assert!(vm.is_shared_page(gpa), "{gpa:#x}");
    }
    assert_eq!(convert(&mut vm, &mut host, n, CONVERT_TO_PRIVATE, 0), 3);
    assert!(!vm.is_shared_page(0x3f_f000) && !vm.is_shared_page(0x40_0000));
}
