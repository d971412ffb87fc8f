//! Every call's validation and error paths, through the transport-neutral dispatcher.

use super::{Outcome, Request, dispatch};
use crate::elf::tests::build_elf;
use crate::stop::Stop;
use crate::testing::{FakeHost, TestVendor};
use crate::vm::{Pinning, Vm};
use crate::vm_tests::{SHARED_GPA, TestVm, slots, spec};
use cloister_abi::boot::{BOOT_INFO_MAGIC, BOOT_INFO_SIZE};
use cloister_abi::hypercall::{FEATURES, MEASUREMENT_SIZE};
use cloister_abi::{ABI_VERSION, Call, Error};
use std::vec::Vec;

const SHARED_HOST: u64 = 0x800_0000;
const ALL: u64 = !0;

fn launched(host: &mut FakeHost, allowed: u64, image: &[u8]) -> TestVm {
    let slots = slots(0x40_0000, false);
    let mut vm = Vm::new(
        &spec(&slots, allowed, Pinning::Demand, 1),
        TestVendor::default(),
        host,
    )
    .unwrap();
    vm.launch(image, host).unwrap();
    vm
}

fn image() -> Vec<u8> {
    build_elf(0x20_0000, 0x20_0000, b"workload code", 0x1000)
}

fn call(vm: &mut TestVm, host: &mut FakeHost, call: u64, args: [u64; 4]) -> Outcome {
    dispatch(vm, Request { number: call, args }, host)
}

fn returns(vm: &mut TestVm, host: &mut FakeHost, c: Call, args: [u64; 4]) -> u64 {
    match call(vm, host, c as u64, args) {
        Outcome::Return(rax) => rax,
        Outcome::Stop(stop) => panic!("{c:?} stopped the workload: {stop:?}"),
    }
}

fn shared(host: &mut FakeHost, offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..len as u64 {
        let pa = SHARED_HOST + offset + i;
        out.push(host.frame(pa & !0xfff)[(pa & 0xfff) as usize]);
    }
    out
}

#[test]
fn abi_03_unknown_numbers_fail_without_side_effects() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, ALL, &image());
    for number in [0, 6, 99, u64::MAX] {
        assert_eq!(
            call(&mut vm, &mut host, number, [SHARED_GPA, 64, 0, 0]),
            Outcome::Return(Error::UnknownCall.to_rax())
        );
    }
    assert!(host.console.is_empty());
    assert_eq!(shared(&mut host, 0, 64), [0xa5; 64], "nothing written");
}

#[test]
fn every_call_is_denied_unless_the_configuration_allows_it() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, 0, &image());
    for c in Call::ALL {
        assert_eq!(
            call(&mut vm, &mut host, c as u64, [SHARED_GPA, 4096, 0, 0]),
            Outcome::Return(Error::Denied.to_rax()),
            "{c:?}"
        );
    }
}

#[test]
fn exit_reports_the_low_32_bits_of_its_status() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, ALL, &image());
    assert_eq!(
        call(
            &mut vm,
            &mut host,
            Call::Exit as u64,
            [0x1_0000_0007, 0, 0, 0]
        ),
        Outcome::Stop(Stop::Exited { status: 7 })
    );
}

#[test]
fn info_writes_the_boot_info_to_shared_memory() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, ALL, &image());
    assert_eq!(
        returns(
            &mut vm,
            &mut host,
            Call::Info,
            [SHARED_GPA + 0xff0, 4096, 0, 0]
        ),
        BOOT_INFO_SIZE as u64
    );
    let bytes = shared(&mut host, 0xff0, BOOT_INFO_SIZE);
    assert_eq!(
        u64::from_le_bytes(bytes[..8].try_into().unwrap()),
        BOOT_INFO_MAGIC
    );
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        ABI_VERSION
    );
    assert_eq!(
        u32::from_le_bytes(bytes[12..16].try_into().unwrap()),
        2,
        "two regions"
    );
    assert_eq!(
        u64::from_le_bytes(bytes[24..32].try_into().unwrap()),
        FEATURES
    );
    assert_eq!(
        shared(&mut host, 0xff0 + BOOT_INFO_SIZE as u64, 1),
        [0xa5],
        "nothing past the structure"
    );
}

#[test]
fn info_refuses_short_private_and_overrunning_buffers() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, ALL, &image());
    let short = BOOT_INFO_SIZE as u64 - 1;
    assert_eq!(
        returns(&mut vm, &mut host, Call::Info, [SHARED_GPA, short, 0, 0]),
        Error::InvalidArgument.to_rax()
    );
    assert_eq!(
        returns(&mut vm, &mut host, Call::Info, [0x30_0000, 4096, 0, 0]),
        Error::NotShared.to_rax()
    );
    let tail = SHARED_GPA + 0x20_0000 - 16;
    assert_eq!(
        returns(&mut vm, &mut host, Call::Info, [tail, 4096, 0, 0]),
        Error::NotShared.to_rax()
    );
    assert_eq!(
        returns(&mut vm, &mut host, Call::Info, [u64::MAX - 8, 4096, 0, 0]),
        Error::NotShared.to_rax()
    );
}

#[test]
fn measurement_is_48_bytes_written_to_shared_memory() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, ALL, &image());
    assert_eq!(
        returns(
            &mut vm,
            &mut host,
            Call::Measurement,
            [SHARED_GPA + 0x10, 64, 0, 0]
        ),
        MEASUREMENT_SIZE
    );
    assert_eq!(shared(&mut host, 0x10, 48), vm.measurement());
    assert_ne!(vm.measurement(), &[0; 48]);
    assert_eq!(shared(&mut host, 0x40, 1), [0xa5], "exactly 48 bytes");
    assert_eq!(
        returns(
            &mut vm,
            &mut host,
            Call::Measurement,
            [SHARED_GPA, 47, 0, 0]
        ),
        Error::InvalidArgument.to_rax()
    );
    assert_eq!(
        returns(&mut vm, &mut host, Call::Measurement, [0x1000, 48, 0, 0]),
        Error::NotShared.to_rax()
    );
    assert_eq!(
        returns(
            &mut vm,
            &mut host,
            Call::Measurement,
            [0x1_0000_0000, 48, 0, 0]
        ),
        Error::NotShared.to_rax()
    );
}

#[test]
fn the_measurement_is_repeatable_and_covers_the_image_and_the_configuration() {
    let measure = |allowed: u64, image: &[u8]| {
        let mut host = FakeHost::new(64);
        *launched(&mut host, allowed, image).measurement()
    };
    let base = measure(ALL, &image());
    assert_eq!(
        base,
        measure(ALL, &image()),
        "same image and configuration, same digest"
    );
    let other_code = build_elf(0x20_0000, 0x20_0000, b"workload cod3", 0x1000);
    assert_ne!(
        base,
        measure(ALL, &other_code),
        "one changed byte in the image"
    );
    assert_ne!(
        base,
        measure(Call::Exit.mask(), &image()),
        "different permitted calls"
    );
}

#[test]
fn console_write_errors() {
    let mut host = FakeHost::new(64);
    let mut vm = launched(&mut host, ALL, &image());
    assert_eq!(
        returns(
            &mut vm,
            &mut host,
            Call::ConsoleWrite,
            [SHARED_GPA, 4097, 0, 0]
        ),
        Error::InvalidArgument.to_rax()
    );
    assert_eq!(
        returns(&mut vm, &mut host, Call::ConsoleWrite, [0x20_0000, 4, 0, 0]),
        Error::NotShared.to_rax()
    );
    assert_eq!(
        returns(&mut vm, &mut host, Call::ConsoleWrite, [u64::MAX, 2, 0, 0]),
        Error::NotShared.to_rax()
    );
    assert_eq!(
        returns(
            &mut vm,
            &mut host,
            Call::ConsoleWrite,
            [SHARED_GPA, 0, 0, 0]
        ),
        0
    );
    assert!(host.console.is_empty());
}
