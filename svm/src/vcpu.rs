//! core's `Vcpu` on SVM: a VMCB, the I/O and MSR permission maps, and the registers
//! the VMCB does not hold.

use crate::cpu::Svm;
use crate::exit::{VMMCALL_LEN, decode};
use crate::phys;
use crate::trampoline::{self, FpuAreas};
use crate::vmcb::{Vmcb, control, save};
use alloc::boxed::Box;
use cloister_core::Exit;
use cloister_core::hypercall::Request;
use cloister_core::vcpu::{EntryState, Regs, Vcpu};

/// Every bit set: intercept every port (12 KiB) and every MSR (8 KiB).
#[repr(C, align(4096))]
struct PermissionMaps {
    io: [u8; 3 * 4096],
    msr: [u8; 2 * 4096],
}

const EVENT_VALID: u64 = 1 << 31;
const EVENT_ERROR_CODE_VALID: u64 = 1 << 11;
const EVENT_TYPE_EXCEPTION: u64 = 3 << 8;

pub struct SvmVcpu<'svm> {
    svm: &'svm Svm,
    vmcb: Box<Vmcb>,
    _maps: Box<PermissionMaps>,
    fpu: Box<FpuAreas>,
    regs: Regs,
}

impl<'svm> SvmVcpu<'svm> {
    /// A vCPU that starts at `entry`, translated through the nested table at `npt_root`.
    pub fn new(svm: &'svm Svm, entry: &EntryState, npt_root: u64, asid: u32) -> Self {
        let maps = Box::new(PermissionMaps {
            io: [0xff; 3 * 4096],
            msr: [0xff; 2 * 4096],
        });
        let mut vmcb = Box::new(Vmcb::ZERO);
        vmcb.init_long_mode(entry, npt_root, asid, phys(&maps.io), phys(&maps.msr));
        let regs = Regs {
            rip: entry.rip,
            rsp: entry.rsp,
            rdi: entry.rdi,
            rflags: 0x2,
            ..Regs::default()
        };
        Self {
            svm,
            vmcb,
            _maps: maps,
            fpu: Box::new(FpuAreas::reset()),
            regs,
        }
    }
}

impl Vcpu for SvmVcpu<'_> {
    fn run(&mut self) -> Exit {
        // RAX, RSP, RIP and RFLAGS travel in the VMCB; core sees them in `regs`.
        self.vmcb.write_u64(save::RAX, self.regs.rax);
        self.vmcb.write_u64(save::RSP, self.regs.rsp);
        self.vmcb.write_u64(save::RIP, self.regs.rip);
        self.vmcb.write_u64(save::RFLAGS, self.regs.rflags);
        let vmcb_pa = phys(&*self.vmcb);
        let host_pa = phys(&*self.svm.host_vmsave_area);
        // SAFETY: `self.svm` proves SVM is enabled with a host save area and a VMSAVE of
        // the host; the VMCB was initialised by `init_long_mode` and it, the permission
        // maps and the FPU areas are owned by `self`; the nested table is owned by the VM,
        // which outlives every call to run.
        unsafe { trampoline::run(vmcb_pa, &mut self.regs, host_pa, &mut self.fpu) };
        self.regs.rax = self.vmcb.read_u64(save::RAX);
        self.regs.rsp = self.vmcb.read_u64(save::RSP);
        self.regs.rip = self.vmcb.read_u64(save::RIP);
        self.regs.rflags = self.vmcb.read_u64(save::RFLAGS);
        // An exit taken while the CPU was delivering an event (e.g. a nested page fault
        // on the workload's IDT or stack) cut that delivery short: deliver it again on
        // the next entry, as the APM requires.
        let interrupted = self.vmcb.read_u64(control::EXIT_INT_INFO);
        if interrupted & EVENT_VALID != 0 {
            self.vmcb.write_u64(control::EVENT_INJ, interrupted);
        }
        decode(&self.vmcb)
    }

    fn regs(&self) -> &Regs {
        &self.regs
    }

    fn regs_mut(&mut self) -> &mut Regs {
        &mut self.regs
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        let mut event = EVENT_VALID | EVENT_TYPE_EXCEPTION | u64::from(vector);
        if let Some(code) = error_code {
            event |= EVENT_ERROR_CODE_VALID | (u64::from(code) << 32);
        }
        self.vmcb.write_u64(control::EVENT_INJ, event);
    }

    /// The VMMCALL transport: number in RAX, arguments in RBX, RCX, RDX, RSI.
    fn hypercall(&self) -> Request {
        let r = &self.regs;
        Request {
            number: r.rax,
            args: [r.rbx, r.rcx, r.rdx, r.rsi],
        }
    }

    /// The result goes in RAX.
    fn complete_hypercall(&mut self, value: u64) {
        self.regs.rax = value;
        self.regs.rip = self.regs.rip.wrapping_add(VMMCALL_LEN);
    }
}
