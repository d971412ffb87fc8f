//! The hypervisor's side of the GHCB (spec digest D.3; docs/abi.md, Transports): what
//! a VMGEXIT asks for, from the GHCB MSR value and the GHCB page, and how the answer
//! goes back. Independent of how the MSR value arrives (the SNP model under QEMU
//! intercepts the MSR; SEV-ES hardware keeps it in the VMCB), so it is host-tested.
//!
//! MSR-protocol requests are answered here, except Page State Change, which core
//! converts. A request in the page goes to core as a [`PageCall`] and its answer is
//! written back with [`GhcbTransport::complete_page_call`].

use cloister_abi::ghcb::msr::{MsrRequest, MsrResponse, MsrValue, PSC_RESP_ERROR_GENERIC};
use cloister_abi::ghcb::page::{ERR_INVALID_EVENT, ERR_INVALID_INPUT};
use cloister_abi::ghcb::psc::{PSC_ERROR_GENERIC, PSC_ERROR_INVALID_ENTRY};
use cloister_abi::ghcb::{
    GHCB_SIZE, Ghcb, PscDescriptor, PscOp, PscRange, SVM_EXIT_VMMCALL, SVM_VMGEXIT_PSC,
};
use cloister_core::Exit;
use cloister_core::hypercall::Request;
use cloister_core::vcpu::{ConvertReply, PageCall, PageReply};

/// C-bit position reported in SEV_INFO (the model's; nothing in the guest uses it).
const C_BIT: u8 = 51;
const PAGE: u64 = 4096;

/// What the vCPU does after a VMGEXIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmgexit {
    /// Answered in the MSR: resume after the VMGEXIT.
    Resume,
    /// Resume at the VMGEXIT itself, so the workload asks again (a conversion the
    /// hypervisor cannot make yet).
    Repeat,
    /// Core must handle it.
    Exit(Exit),
}

/// What the last VMGEXIT left for core to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    MsrConversion,
    Hypercall,
    Conversion { range: PscRange },
}

/// One vCPU's GHCB state.
#[derive(Debug)]
pub struct GhcbTransport {
    msr: u64,
    registered: Option<u64>,
    pending: Pending,
}

impl Default for GhcbTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl GhcbTransport {
    pub const fn new() -> Self {
        Self {
            msr: 0,
            registered: None,
            pending: Pending::None,
        }
    }

    /// The GHCB MSR as the workload reads it.
    pub fn msr(&self) -> u64 {
        self.msr
    }

    /// The workload wrote the GHCB MSR.
    pub fn write_msr(&mut self, value: u64) {
        self.msr = value;
    }

    /// The registered GHCB page, if any.
    pub fn registered(&self) -> Option<u64> {
        self.registered
    }

    /// A VMGEXIT: act on the MSR value.
    pub fn vmgexit(&mut self) -> Vmgexit {
        self.pending = Pending::None;
        let request = match MsrValue::decode(self.msr) {
            MsrValue::GhcbGpa(gpa) => return Vmgexit::Exit(Exit::PageRequest { gpa }),
            MsrValue::Request(request) => request,
        };
        match request {
            MsrRequest::SevInfo => {
                self.msr = MsrResponse::sev_info(C_BIT).encode();
                Vmgexit::Resume
            }
            MsrRequest::RegisterGhcb { gfn } => {
                self.registered = Some(gfn * PAGE);
                self.msr = MsrResponse::RegisterGhcb { gfn }.encode();
                Vmgexit::Resume
            }
            MsrRequest::PageStateChange { gfn, op } if op.converts() => {
                self.pending = Pending::MsrConversion;
                Vmgexit::Exit(Exit::ConvertRequest {
                    gpa: gfn * PAGE,
                    len: PAGE,
                    to_private: op == PscOp::PRIVATE,
                })
            }
            MsrRequest::PageStateChange { .. } => {
                self.msr = MsrResponse::PageStateChange {
                    error: PSC_RESP_ERROR_GENERIC,
                }
                .encode();
                Vmgexit::Resume
            }
            MsrRequest::Terminate { set, reason } => Vmgexit::Exit(Exit::TerminationRequest {
                reason: (u64::from(set) << 8) | u64::from(reason),
            }),
            MsrRequest::Other { code } => Vmgexit::Exit(Exit::Unknown {
                code: u64::from(code),
                info1: self.msr,
                info2: 0,
            }),
        }
    }

    /// Answer an MSR-protocol Page State Change: `Repeat` when the page could not be
    /// converted yet (it is in use), so the workload's VMGEXIT runs again.
    pub fn complete_msr_conversion(&mut self, reply: ConvertReply) -> Vmgexit {
        if core::mem::replace(&mut self.pending, Pending::None) != Pending::MsrConversion {
            return Vmgexit::Resume;
        }
        let error = match reply {
            ConvertReply::Done => 0,
            ConvertReply::Retry { .. } => return Vmgexit::Repeat,
            ConvertReply::Invalid | ConvertReply::Misaligned => PSC_RESP_ERROR_GENERIC,
        };
        self.msr = MsrResponse::PageStateChange { error }.encode();
        Vmgexit::Resume
    }

    /// The request in the copy of the GHCB page at `gpa`.
    pub fn page_call(&mut self, page: &mut [u8; GHCB_SIZE]) -> PageCall {
        self.pending = Pending::None;
        let Some(gpa) = self.registered.filter(|&g| g == self.msr) else {
            return PageCall::Refused {
                what: "VMGEXIT with a GHCB page that was never registered",
            };
        };
        let mut ghcb = Ghcb::new(page);
        let code = match ghcb.exit_code() {
            Ok(code) => code,
            Err(reason) => return refuse(&mut ghcb, reason),
        };
        match code {
            SVM_EXIT_VMMCALL => match ghcb.hypercall_request() {
                Ok(call) => {
                    self.pending = Pending::Hypercall;
                    PageCall::Hypercall(Request {
                        number: call.number,
                        args: call.args,
                    })
                }
                Err(reason) => refuse(&mut ghcb, reason),
            },
            SVM_VMGEXIT_PSC => self.page_state_change(&mut ghcb, gpa),
            _ => refuse(&mut ghcb, ERR_INVALID_EVENT),
        }
    }

    fn page_state_change(&mut self, ghcb: &mut Ghcb<&mut [u8; GHCB_SIZE]>, gpa: u64) -> PageCall {
        let scratch = match ghcb.scratch_buffer_mut(gpa) {
            Ok(scratch) => scratch,
            Err(reason) => return refuse(ghcb, reason),
        };
        let next = PscDescriptor::parse(&mut *scratch).map(|mut psc| psc.next_range());
        match next {
            Err(error) => answer(ghcb, error.code()),
            // Nothing left that converts (PSMASH and UNSMASH entries complete here).
            Ok(None) => answer(ghcb, 0),
            Ok(Some(range)) => {
                self.pending = Pending::Conversion { range };
                PageCall::Convert {
                    gpa: range.gpa,
                    len: range.len(),
                    to_private: range.to_private(),
                }
            }
        }
    }

    /// Write core's answer to the last [`GhcbTransport::page_call`] into the copy.
    pub fn complete_page_call(&mut self, page: &mut [u8; GHCB_SIZE], reply: PageReply) {
        let pending = core::mem::replace(&mut self.pending, Pending::None);
        let gpa = self.registered.unwrap_or_default();
        let mut ghcb = Ghcb::new(page);
        match (pending, reply) {
            (Pending::Hypercall, PageReply::Hypercall(value)) => {
                ghcb.write_hypercall_result(value);
            }
            (Pending::Conversion { range }, PageReply::Convert(reply)) => {
                let error = match reply {
                    ConvertReply::Done => Some(range.pages),
                    // Part done: the workload asks again for the rest.
                    ConvertReply::Retry { next } => Some(range.pages_before(next)),
                    ConvertReply::Invalid | ConvertReply::Misaligned => None,
                };
                let result = match error {
                    Some(pages) => match ghcb.scratch_buffer_mut(gpa) {
                        Ok(scratch) => match PscDescriptor::parse(scratch) {
                            Ok(mut psc) => {
                                psc.complete(&range, pages);
                                0
                            }
                            Err(_) => PSC_ERROR_GENERIC,
                        },
                        Err(_) => PSC_ERROR_GENERIC,
                    },
                    None => PSC_ERROR_INVALID_ENTRY,
                };
                ghcb.write_exit_result(result);
            }
            _ => {
                ghcb.clear_valid_bitmap();
                ghcb.set_error(ERR_INVALID_INPUT);
            }
        }
    }
}

fn refuse(ghcb: &mut Ghcb<&mut [u8; GHCB_SIZE]>, reason: u64) -> PageCall {
    ghcb.clear_valid_bitmap();
    ghcb.set_error(reason);
    PageCall::Answered
}

fn answer(ghcb: &mut Ghcb<&mut [u8; GHCB_SIZE]>, exit_info_2: u64) -> PageCall {
    ghcb.write_exit_result(exit_info_2);
    PageCall::Answered
}

#[cfg(test)]
#[path = "ghcb_transport_tests.rs"]
mod tests;
