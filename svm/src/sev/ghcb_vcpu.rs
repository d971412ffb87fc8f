//! An SVM vCPU whose workload talks over the GHCB: the SEV-SNP model's transport under
//! QEMU. The GHCB MSR is intercepted (every MSR is) and VMGEXIT, outside an SEV-ES
//! guest, exits as VMMCALL; they stand for SEV-ES hardware's VMGEXIT exit and the
//! VMCB's GHCB field. A separate type, so the plain SVM vCPU pays nothing for it.

use super::ghcb_transport::{GhcbTransport, Vmgexit};
use crate::exit::VMGEXIT_LEN;
use crate::vcpu::SvmVcpu;
use cloister_abi::ghcb::GHCB_MSR;
use cloister_core::Exit;
use cloister_core::hypercall::Request;
use cloister_core::vcpu::{ConvertReply, PageCall, PageReply, REQUEST_PAGE_SIZE, Regs, Vcpu};

/// GHCB MSR accesses and VMGEXITs answered without core, in a row, before core gets
/// control back (as after an interrupt) to keep its counters and limits.
const INNER_EXITS: u32 = 64;

pub struct GhcbVcpu<'svm> {
    vcpu: SvmVcpu<'svm>,
    ghcb: GhcbTransport,
}

impl<'svm> GhcbVcpu<'svm> {
    pub fn new(vcpu: SvmVcpu<'svm>) -> Self {
        Self {
            vcpu,
            ghcb: GhcbTransport::new(),
        }
    }

    fn past_vmgexit(&mut self, action: Vmgexit) {
        if action == Vmgexit::Resume {
            let regs = self.vcpu.regs_mut();
            regs.rip = regs.rip.wrapping_add(VMGEXIT_LEN);
        }
    }
}

impl Vcpu for GhcbVcpu<'_> {
    /// Answer GHCB MSR accesses and MSR-protocol VMGEXITs here; anything else goes to
    /// core.
    fn run(&mut self) -> Exit {
        for _ in 0..INNER_EXITS {
            let exit = self.vcpu.run();
            let regs = self.vcpu.regs_mut();
            match exit {
                Exit::Msr { write, insn_len } if regs.rcx as u32 == GHCB_MSR => {
                    if write {
                        self.ghcb
                            .write_msr((regs.rdx << 32) | (regs.rax & 0xffff_ffff));
                    } else {
                        regs.rax = self.ghcb.msr() & 0xffff_ffff;
                        regs.rdx = self.ghcb.msr() >> 32;
                    }
                    regs.rip = regs.rip.wrapping_add(insn_len);
                }
                Exit::Hypercall => match self.ghcb.vmgexit() {
                    Vmgexit::Resume => regs.rip = regs.rip.wrapping_add(VMGEXIT_LEN),
                    Vmgexit::Repeat => {}
                    Vmgexit::Exit(exit) => return exit,
                },
                other => return other,
            }
        }
        Exit::Interrupt
    }

    fn regs(&self) -> &Regs {
        self.vcpu.regs()
    }

    fn regs_mut(&mut self) -> &mut Regs {
        self.vcpu.regs_mut()
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        self.vcpu.inject_exception(vector, error_code);
    }

    /// Never asked: every VMGEXIT becomes another exit (see [`GhcbVcpu::run`]).
    fn hypercall(&self) -> Request {
        self.vcpu.hypercall()
    }

    fn complete_hypercall(&mut self, value: u64) {
        self.vcpu.complete_hypercall(value);
    }

    /// An MSR-protocol Page State Change: the answer goes in the GHCB MSR.
    fn complete_convert(&mut self, reply: ConvertReply) {
        let action = self.ghcb.complete_msr_conversion(reply);
        self.past_vmgexit(action);
    }

    fn page_call(&mut self, page: &mut [u8; REQUEST_PAGE_SIZE]) -> PageCall {
        let call = self.ghcb.page_call(page);
        if call == PageCall::Answered {
            self.past_vmgexit(Vmgexit::Resume);
        }
        call
    }

    fn complete_page_call(&mut self, page: &mut [u8; REQUEST_PAGE_SIZE], reply: PageReply) {
        self.ghcb.complete_page_call(page, reply);
        self.past_vmgexit(Vmgexit::Resume);
    }
}
