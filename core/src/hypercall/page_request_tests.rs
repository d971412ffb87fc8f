//! Requests left in a shared page: copied in, answered, copied back; a page that is
//! not shared memory stops the workload.

use crate::exit::Exit;
use crate::hypercall::Request;
use crate::stop::Stop;
use crate::testing::{FakeHost, ScriptedVcpu};
use crate::vcpu::{ConvertReply, PageCall, PageReply, REQUEST_PAGE_SIZE, Regs, Vcpu};
use crate::vm::{Pinning, Vm};
use crate::vm_tests::{SHARED_GPA, TestVm, slots, spec};
use alloc::vec::Vec;
use cloister_abi::Call;

/// A transport whose page holds a call number and one argument at offsets 0 and 8,
/// and gets the answer at offset 16; numbers 0xc0 and 0xc1 convert a page to shared and
/// to private.
struct PageVcpu {
    script: ScriptedVcpu,
    replies: Vec<PageReply>,
}

impl Vcpu for PageVcpu {
    fn run(&mut self) -> Exit {
        self.script.run()
    }
    fn regs(&self) -> &Regs {
        self.script.regs()
    }
    fn regs_mut(&mut self) -> &mut Regs {
        self.script.regs_mut()
    }
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        self.script.inject_exception(vector, error_code);
    }
    fn hypercall(&self) -> Request {
        unreachable!("this transport has no register calls")
    }
    fn complete_hypercall(&mut self, _value: u64) {
        unreachable!("this transport has no register calls")
    }
    fn page_call(&mut self, page: &mut [u8; REQUEST_PAGE_SIZE]) -> PageCall {
        let word = |i: usize| u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().unwrap());
        match word(0) {
            number @ (0xc0 | 0xc1) => PageCall::Convert {
                gpa: word(1),
                len: 0x1000,
                to_private: number == 0xc1,
            },
            0xee => PageCall::Refused {
                what: "bad request",
            },
            number => PageCall::Hypercall(Request {
                number,
                args: [word(1), 0, 0, 0],
            }),
        }
    }
    fn complete_page_call(&mut self, page: &mut [u8; REQUEST_PAGE_SIZE], reply: PageReply) {
        let value = match reply {
            PageReply::Hypercall(value) => value,
            PageReply::Convert(ConvertReply::Done) => 1,
            PageReply::Convert(_) => 2,
        };
        page[16..24].copy_from_slice(&value.to_le_bytes());
        self.replies.push(reply);
    }
}

fn vm(host: &mut FakeHost) -> TestVm {
    let slots = slots(0x400_0000, false);
    Vm::new(
        &spec(&slots, !0, Pinning::Demand, 1),
        Default::default(),
        host,
    )
    .unwrap()
}

fn request(host: &mut FakeHost, vm: &mut TestVm, gpa: u64, words: [u64; 2]) {
    let pa = vm.fault_in(gpa, host).ok().unwrap().pa;
    host.frame(pa)[..8].copy_from_slice(&words[0].to_le_bytes());
    host.frame(pa)[8..16].copy_from_slice(&words[1].to_le_bytes());
}

fn answer(host: &mut FakeHost, vm: &mut TestVm, gpa: u64) -> u64 {
    let pa = vm.fault_in(gpa, host).ok().unwrap().pa;
    u64::from_le_bytes(host.frame(pa)[16..24].try_into().unwrap())
}

fn page_request(gpa: u64) -> impl FnMut(&mut Regs) -> Exit {
    move |_| Exit::PageRequest { gpa }
}

#[test]
fn a_call_in_the_shared_page_is_dispatched_and_answered_in_the_page() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    // INFO with a null buffer is refused with an error: the answer lands in the page.
    request(&mut host, &mut vm, SHARED_GPA, [Call::Info as u64, 0]);
    let mut vcpu = PageVcpu {
        script: ScriptedVcpu::default()
            .step(page_request(SHARED_GPA))
            .step(|_| Exit::Hlt),
        replies: Vec::new(),
    };
    assert!(matches!(vm.run(&mut vcpu, &mut host), Stop::Halted { .. }));
    let [PageReply::Hypercall(value)] = vcpu.replies[..] else {
        panic!("one hypercall reply: {:?}", vcpu.replies);
    };
    assert_eq!(answer(&mut host, &mut vm, SHARED_GPA), value);
    assert_eq!(vm.stats().hypercalls, 1);
}

#[test]
fn exit_through_the_page_stops_the_workload() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    request(&mut host, &mut vm, SHARED_GPA, [Call::Exit as u64, 7]);
    let mut vcpu = PageVcpu {
        script: ScriptedVcpu::default().step(page_request(SHARED_GPA)),
        replies: Vec::new(),
    };
    assert_eq!(vm.run(&mut vcpu, &mut host), Stop::Exited { status: 7 });
}

#[test]
fn a_conversion_is_answered_in_the_page_unless_it_took_the_page_away() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    request(&mut host, &mut vm, SHARED_GPA, [0xc0, 0x30_0000]);
    let mut vcpu = PageVcpu {
        script: ScriptedVcpu::default()
            .step(page_request(SHARED_GPA))
            .step(|_| Exit::Hlt),
        replies: Vec::new(),
    };
    assert!(matches!(vm.run(&mut vcpu, &mut host), Stop::Halted { .. }));
    assert_eq!(vcpu.replies, [PageReply::Convert(ConvertReply::Done)]);
    assert_eq!(answer(&mut host, &mut vm, SHARED_GPA), 1);
    // 0x30_0000 is shared now and may hold requests; one converting it back to private
    // leaves its answer nowhere.
    request(&mut host, &mut vm, 0x30_0000, [0xc1, 0x30_0000]);
    let mut vcpu = PageVcpu {
        script: ScriptedVcpu::default().step(page_request(0x30_0000)),
        replies: Vec::new(),
    };
    assert!(matches!(
        vm.run(&mut vcpu, &mut host),
        Stop::BadTransport { .. }
    ));
    assert_eq!(vcpu.replies, [PageReply::Convert(ConvertReply::Done)]);
}

#[test]
fn a_request_page_in_private_memory_or_unaligned_is_refused() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    for gpa in [0x30_0000, SHARED_GPA + 8] {
        let mut vcpu = PageVcpu {
            script: ScriptedVcpu::default().step(page_request(gpa)),
            replies: Vec::new(),
        };
        assert!(matches!(
            vm.run(&mut vcpu, &mut host),
            Stop::BadTransport { .. }
        ));
        assert!(vcpu.replies.is_empty());
    }
}

#[test]
fn a_request_the_backend_refuses_stops_with_its_reason() {
    let mut host = FakeHost::new(64);
    let mut vm = vm(&mut host);
    request(&mut host, &mut vm, SHARED_GPA, [0xee, 0]);
    let mut vcpu = PageVcpu {
        script: ScriptedVcpu::default().step(page_request(SHARED_GPA)),
        replies: Vec::new(),
    };
    assert_eq!(
        vm.run(&mut vcpu, &mut host),
        Stop::BadTransport {
            what: "bad request",
            rip: 0
        }
    );
}
