//! Hypercall decoding and validation: the REAL `cloister_core::vm::Vm` over core's test
//! doubles (`FakeHost`, `TestFormat`, `TestVendor`), driven one exit at a time through
//! `Vm::step` by a vCPU that speaks all three transports with their real decoders:
//!
//! - VMMCALL: the call number and RBX, RCX, RDX, RSI straight from the input;
//! - TDVMCALL: R10 to R14 through `cloister_tdx::transport::decode_vmcall` (Cloister
//!   calls and MapGPA conversions), answered by its `complete_*`;
//! - GHCB: MSR values through `GhcbTransport::vmgexit` (registration, SEV info,
//!   page state changes, termination, anything else), and requests in a GHCB page the
//!   workload fills with the guest side's helpers (`cloister_abi::ghcb`) and then edits
//!   byte by byte, read by `GhcbTransport::page_call` from core's copy of the page.
//!
//! The workload writes fuzzer-chosen bytes into its shared memory (MEMORY_CONVERT lists,
//! console text, GHCB pages), faults at fuzzer-chosen GPAs, and makes other exits. After
//! every exit the harness checks:
//!
//! - the stop, if any, is one the exit can cause (an EXIT call with its status, a GHCB
//!   the transport refuses, a GPA outside the memory map, ...), never another;
//! - a call's result is a value or one of `cloister_abi::Error`'s codes; an unknown call
//!   gets UNKNOWN_CALL and a call the configuration forbids gets DENIED; a successful
//!   call's value is what the ABI says, and every buffer a successful call used was
//!   shared memory when the call was made (the hypervisor never reads private memory);
//! - a conversion answered "done" (or "retry from X") left every page it covered in the
//!   state asked for;
//! - no entry of the second-level table is left frozen;
//! - no frame is prepared twice or released unprepared, and the VM's count of prepared
//!   frames equals the vendor's;
//! - every private (pinned) leaf maps a private page to a prepared frame, every shared
//!   leaf maps shared memory to its own frame;
//! - at the end, tearing the VM down leaves no leaf and keeps every prepared frame.
//!
//! Set `CLOISTER_FUZZ_TRACE=1` to print each operation as it runs (to read a finding).

use crate::pick_or_raw;
use arbitrary::{Result, Unstructured};
use cloister_abi::boot::BOOT_INFO_SIZE;
use cloister_abi::ghcb::msr::{MsrRequest, MsrResponse};
use cloister_abi::ghcb::page::{SHARED_BUFFER_OFFSET, SHARED_BUFFER_SIZE};
use cloister_abi::ghcb::{
    Field, GHCB_SIZE, Ghcb, PscBuilder, PscOp, SVM_EXIT_VMMCALL, SVM_VMGEXIT_PSC,
    SVM_VMGEXIT_TERM_REQUEST, SVM_VMGEXIT_UNSUPPORTED_EVENT,
};
use cloister_abi::hypercall::{
    CONSOLE_WRITE_MAX, CONVERT_MAX_ENTRIES, CONVERT_MAX_PAGES_PER_CALL, CONVERT_RANGE_SIZE,
    CONVERT_TO_PRIVATE, CONVERT_TO_SHARED, MEASUREMENT_SIZE, bench, decode_result,
};
use cloister_abi::{Call, Error, MemoryKind};
use cloister_core::Stop;
use cloister_core::exit::{Access, Exit};
use cloister_core::hypercall::Request;
use cloister_core::memslot::SlotSpec;
use cloister_core::mmu::PteFormat;
use cloister_core::reference_models::vm_memory::{POOL, SHARED_GPA, SHARED_HOST, SHARED_SIZE};
use cloister_core::testing::{FakeHost, TestFormat, TestVendor, table_leaves};
use cloister_core::vcpu::{ConvertReply, PageCall, PageReply, REQUEST_PAGE_SIZE, Regs, Vcpu};
use cloister_core::vm::{Pinning, Vm, VmSpec};
use cloister_svm::sev::ghcb_transport::{GhcbTransport, Vmgexit};
use cloister_tdx::abi::{SHARED_BIT_4_LEVEL, tdcall};
use cloister_tdx::transport as tdvmcall;
use std::collections::BTreeSet;
use std::sync::OnceLock;

const PAGE: u64 = 4096;
const HUGE: u64 = 0x20_0000;
/// Private slot sizes (at GPA 0): 4 MiB, and 6 MiB with a 12 KiB tail too short for a
/// 2 MiB block.
const PRIVATE_SIZES: [u64; 2] = [0x40_0000, 0x60_3000];
/// Far more table pages than any input can use: running out is never the finding.
const TABLE_BUDGET: usize = 1 << 16;
/// Exits one input makes at most.
pub const MAX_OPS: usize = 48;
/// The length of VMMCALL, by which a completed call moves RIP.
const VMMCALL_LEN: u64 = 3;
/// Bytes one workload write puts in memory at most.
const MAX_WRITE: usize = 64;

type TestVm = Vm<TestFormat, TestVendor>;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mut harness) = Harness::new(&mut u) else {
        return;
    };
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = harness.decode(&mut u) else {
            break;
        };
        if trace() {
            eprintln!("hypercall: {op:?}");
        }
        if harness.execute(op) == Flow::Stopped {
            break;
        }
        harness.check_invariants();
    }
    harness.teardown();
}

/// Whether `CLOISTER_FUZZ_TRACE` asks for each operation to be printed.
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CLOISTER_FUZZ_TRACE").is_some())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The workload stopped (as it may): nothing more runs on this VM.
    Stopped,
}

/// One thing the workload does.
#[derive(Clone, Debug)]
enum Op {
    /// Store `bytes` at `gpa`. Only shared memory lands where the hypervisor can see
    /// it; a store to private memory is invisible to it, so it is skipped.
    Write { gpa: u64, bytes: Vec<u8> },
    /// VMMCALL with RAX = `number` and RBX, RCX, RDX, RSI = `args`.
    Vmmcall { number: u64, args: [u64; 4] },
    /// MEMORY_CONVERT of a list the workload writes at `list_gpa` first, over VMMCALL
    /// or in a GHCB page.
    Convert {
        list_gpa: u64,
        ranges: Vec<(u64, u64)>,
        entries: u64,
        direction: u64,
        resume: u64,
        over_ghcb: Option<u64>,
    },
    /// TDG.VP.VMCALL with R10 to R14.
    Tdvmcall { regs: [u64; 5] },
    /// WRMSR of the GHCB MSR, then VMGEXIT.
    GhcbMsr { value: u64 },
    /// A request in the GHCB page at `gpa` (registered first if `register`), written
    /// with the guest's helpers, then edited byte by byte, then VMGEXIT.
    GhcbPage {
        gpa: u64,
        register: bool,
        request: GhcbRequest,
        edits: Vec<(u16, u8)>,
    },
    /// VMGEXIT again, the page and the MSR as the last answer left them (the SDK's
    /// page state change loop).
    GhcbAgain,
    /// A nested page fault.
    Fault {
        gpa: u64,
        access: Access,
        present: bool,
    },
    /// Any other exit.
    Other(Exit),
}

#[derive(Clone, Debug)]
enum GhcbRequest {
    Hypercall {
        number: u64,
        args: [u64; 4],
    },
    /// A page state change descriptor at `scratch` bytes into the shared buffer.
    PageStateChange {
        scratch: u16,
        ranges: Vec<(u64, u64, u8)>,
    },
    /// Whatever the fuzzer makes of the save area.
    Raw {
        exit_code: u64,
        info: [u64; 2],
        usage: u32,
        version: u16,
        fields: Vec<(u8, u64)>,
    },
}

/// What the transport last asked core and what core answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Vmmcall,
    Tdvmcall,
    Ghcb,
}

/// A vCPU that returns the exit the harness set, and answers core through the
/// transport that exit came from.
struct FuzzVcpu {
    regs: Regs,
    next_exit: Option<Exit>,
    transport: Transport,
    ghcb: GhcbTransport,
    /// What the last GHCB page request was decoded into, and core's answer.
    page_call: Option<PageCall>,
    page_reply: Option<PageReply>,
    /// Core's answer to the last conversion request.
    convert_reply: Option<ConvertReply>,
    /// What the GHCB transport does after answering an MSR page state change.
    msr_conversion: Option<Vmgexit>,
    injected: usize,
}

impl FuzzVcpu {
    fn new() -> Self {
        Self {
            regs: Regs::default(),
            next_exit: None,
            transport: Transport::Vmmcall,
            ghcb: GhcbTransport::new(),
            page_call: None,
            page_reply: None,
            convert_reply: None,
            msr_conversion: None,
            injected: 0,
        }
    }

    /// Make `exit` the next one `run` returns, from `transport`.
    fn prepare(&mut self, exit: Exit, transport: Transport) {
        self.next_exit = Some(exit);
        self.transport = transport;
        self.page_call = None;
        self.page_reply = None;
        self.convert_reply = None;
        self.msr_conversion = None;
    }
}

impl Vcpu for FuzzVcpu {
    fn run(&mut self) -> Exit {
        self.next_exit
            .take()
            .expect("core ran the vCPU twice for one exit")
    }

    fn regs(&self) -> &Regs {
        &self.regs
    }

    fn regs_mut(&mut self) -> &mut Regs {
        &mut self.regs
    }

    fn inject_exception(&mut self, _vector: u8, _error_code: Option<u32>) {
        self.injected += 1;
    }

    fn hypercall(&self) -> Request {
        let r = &self.regs;
        match self.transport {
            Transport::Vmmcall => Request {
                number: r.rax,
                args: [r.rbx, r.rcx, r.rdx, r.rsi],
            },
            Transport::Tdvmcall => tdvmcall::request(r),
            Transport::Ghcb => panic!("core read register hypercall arguments on the GHCB"),
        }
    }

    fn complete_hypercall(&mut self, value: u64) {
        match self.transport {
            Transport::Vmmcall => {
                self.regs.rax = value;
                self.regs.rip = self.regs.rip.wrapping_add(VMMCALL_LEN);
            }
            Transport::Tdvmcall => tdvmcall::complete_hypercall(&mut self.regs, value),
            Transport::Ghcb => panic!("core completed a register hypercall on the GHCB"),
        }
    }

    fn complete_convert(&mut self, reply: ConvertReply) {
        self.convert_reply = Some(reply);
        match self.transport {
            Transport::Tdvmcall => tdvmcall::complete_convert(&mut self.regs, reply),
            Transport::Ghcb => {
                self.msr_conversion = Some(self.ghcb.complete_msr_conversion(reply));
            }
            Transport::Vmmcall => {}
        }
    }

    fn page_call(&mut self, page: &mut [u8; REQUEST_PAGE_SIZE]) -> PageCall {
        let call = match self.transport {
            Transport::Ghcb => self.ghcb.page_call(page),
            _ => PageCall::Refused {
                what: "request page on a transport without one",
            },
        };
        self.page_call = Some(call);
        call
    }

    fn complete_page_call(&mut self, page: &mut [u8; REQUEST_PAGE_SIZE], reply: PageReply) {
        self.page_reply = Some(reply);
        if self.transport == Transport::Ghcb {
            self.ghcb.complete_page_call(page, reply);
        }
    }
}

struct Harness {
    host: FakeHost,
    vm: Option<TestVm>,
    vcpu: FuzzVcpu,
    private_size: u64,
    allowed_calls: u64,
    bench_hooks: bool,
    /// Frames prepared and not released since, from the vendor's record.
    live: BTreeSet<u64>,
    /// How much of the vendor's record `live` has taken in.
    seen_prepared: usize,
    seen_invalidated: usize,
    /// Which private pages were shared memory before the current exit.
    shared_before: Vec<bool>,
}

impl Harness {
    fn new(u: &mut Unstructured<'_>) -> Result<Self> {
        let private_size = *u.choose(&PRIVATE_SIZES)?;
        let huge = u.arbitrary()?;
        // Mostly every call allowed, so the calls themselves run.
        let allowed_calls = if u.ratio(3, 4)? { !0 } else { u.arbitrary()? };
        let bench_hooks = u.ratio(1, 8)?;
        let slots = [
            SlotSpec {
                gpa: 0,
                size: private_size,
                kind: MemoryKind::Private,
                host_base: POOL,
                huge,
            },
            SlotSpec {
                gpa: SHARED_GPA,
                size: SHARED_SIZE,
                kind: MemoryKind::Shared,
                host_base: SHARED_HOST,
                huge: false,
            },
        ];
        let spec = VmSpec {
            name: "fuzz",
            slots: &slots,
            allowed_calls,
            pinning: Pinning::Demand,
            instance: 1,
        };
        let mut host = FakeHost::new(TABLE_BUDGET);
        let mut vm = Vm::new(&spec, TestVendor::default(), &mut host)
            .expect("a VM over two slots is created");
        if bench_hooks {
            vm.enable_bench_hooks();
        }
        Ok(Self {
            host,
            vm: Some(vm),
            vcpu: FuzzVcpu::new(),
            private_size,
            allowed_calls,
            bench_hooks,
            live: BTreeSet::new(),
            seen_prepared: 0,
            seen_invalidated: 0,
            shared_before: vec![false; (private_size / PAGE) as usize],
        })
    }

    fn vm(&self) -> &TestVm {
        self.vm.as_ref().expect("the VM lives until teardown")
    }

    // -----------------------------------------------------------------------------------
    // Decoding
    // -----------------------------------------------------------------------------------

    fn decode(&self, u: &mut Unstructured<'_>) -> Result<Op> {
        Ok(match u.int_in_range(0..=19u8)? {
            0..=2 => {
                let gpa = self.gpa(u)?;
                let len = u.int_in_range(1..=MAX_WRITE)?;
                let bytes = (0..len).map(|_| u.arbitrary()).collect::<Result<_>>()?;
                Op::Write { gpa, bytes }
            }
            3..=6 => Op::Vmmcall {
                number: self.call_number(u)?,
                args: [self.arg(u)?, self.arg(u)?, self.arg(u)?, self.arg(u)?],
            },
            7..=9 => self.convert(u)?,
            10..=11 => Op::Tdvmcall {
                regs: self.tdvmcall(u)?,
            },
            12 => Op::GhcbMsr {
                value: self.msr_value(u)?,
            },
            13..=15 => self.ghcb_page(u)?,
            16 => Op::GhcbAgain,
            17..=18 => Op::Fault {
                gpa: self.gpa(u)?,
                access: *u.choose(&[Access::Read, Access::Write, Access::Execute])?,
                present: u.ratio(1, 16)?,
            },
            _ => Op::Other(self.other_exit(u)?),
        })
    }

    /// A GPA: in shared memory, in private memory, at an edge of either, or any.
    fn gpa(&self, u: &mut Unstructured<'_>) -> Result<u64> {
        let unaligned = |u: &mut Unstructured<'_>| -> Result<u64> {
            Ok(if u.ratio(1, 4)? {
                u.int_in_range(0..=PAGE - 1)?
            } else {
                0
            })
        };
        Ok(match u.int_in_range(0..=7u8)? {
            0..=2 => {
                SHARED_GPA + u.int_in_range(0..=SHARED_SIZE / PAGE - 1)? * PAGE + unaligned(u)?
            }
            3..=4 => u.int_in_range(0..=self.private_size / PAGE - 1)? * PAGE + unaligned(u)?,
            5..=6 => *u.choose(&[
                0,
                HUGE,
                self.private_size - PAGE,
                self.private_size,
                SHARED_GPA - PAGE,
                SHARED_GPA + SHARED_SIZE - PAGE,
                SHARED_GPA + SHARED_SIZE - 8,
                SHARED_GPA + SHARED_SIZE,
                SHARED_BIT_4_LEVEL | SHARED_GPA,
                1 << 48,
                !(PAGE - 1),
            ])?,
            _ => u.arbitrary()?,
        })
    }

    /// A length: the ones that sit at the ABI's limits, small ones, or any.
    fn len(u: &mut Unstructured<'_>) -> Result<u64> {
        if u.ratio(1, 3)? {
            return u.int_in_range(0..=3 * PAGE);
        }
        pick_or_raw(
            u,
            &[
                0,
                1,
                8,
                MEASUREMENT_SIZE - 1,
                MEASUREMENT_SIZE,
                BOOT_INFO_SIZE as u64 - 1,
                BOOT_INFO_SIZE as u64,
                PAGE - 1,
                PAGE,
                PAGE + 1,
                CONSOLE_WRITE_MAX,
                CONSOLE_WRITE_MAX + 1,
                HUGE,
                u64::MAX,
            ],
            6,
        )
    }

    fn call_number(&self, u: &mut Unstructured<'_>) -> Result<u64> {
        pick_or_raw(u, &[0, 1, 2, 3, 4, 5, 6, bench::ZAP_PRIVATE], 8)
    }

    /// A hypercall argument: a GPA, a length, a small count or any value.
    fn arg(&self, u: &mut Unstructured<'_>) -> Result<u64> {
        match u.int_in_range(0..=3u8)? {
            0 => self.gpa(u),
            1 => Self::len(u),
            2 => u.int_in_range(0..=CONVERT_MAX_ENTRIES + 1),
            _ => u.arbitrary(),
        }
    }

    /// A MEMORY_CONVERT range: mostly private pages, sometimes anything.
    fn convert_range(&self, u: &mut Unstructured<'_>) -> Result<(u64, u64)> {
        let pages = self.private_size / PAGE;
        Ok(match u.int_in_range(0..=7u8)? {
            0..=5 => {
                let first = u.int_in_range(0..=pages - 1)?;
                let count = match u.int_in_range(0..=3u8)? {
                    0..=1 => u.int_in_range(1..=8)?,
                    2 => u.int_in_range(1..=pages - first)?,
                    _ => 512,
                };
                (first * PAGE, count)
            }
            6 => (self.gpa(u)?, u.int_in_range(0..=4)?),
            _ => (u.arbitrary()?, u.arbitrary()?),
        })
    }

    fn convert(&self, u: &mut Unstructured<'_>) -> Result<Op> {
        let n = u.int_in_range(1..=8usize)?;
        let ranges = (0..n)
            .map(|_| self.convert_range(u))
            .collect::<Result<Vec<_>>>()?;
        let list_gpa = if u.ratio(7, 8)? {
            SHARED_GPA
                + u.int_in_range(0..=SHARED_SIZE / CONVERT_RANGE_SIZE - 1)? * CONVERT_RANGE_SIZE
        } else {
            self.gpa(u)?
        };
        Ok(Op::Convert {
            list_gpa,
            entries: if u.ratio(7, 8)? {
                ranges.len() as u64
            } else {
                pick_or_raw(u, &[0, CONVERT_MAX_ENTRIES, CONVERT_MAX_ENTRIES + 1], 2)?
            },
            ranges,
            direction: pick_or_raw(u, &[CONVERT_TO_SHARED, CONVERT_TO_PRIVATE, 0, 3], 8)?,
            resume: if u.ratio(3, 4)? {
                0
            } else {
                u.int_in_range(0..=600)?
            },
            over_ghcb: if u.ratio(1, 4)? {
                Some(self.ghcb_gpa(u)?)
            } else {
                None
            },
        })
    }

    /// R10 to R14: a Cloister call, a MapGPA, or anything.
    fn tdvmcall(&self, u: &mut Unstructured<'_>) -> Result<[u64; 5]> {
        Ok(match u.int_in_range(0..=3u8)? {
            0..=1 => [
                self.call_number(u)?.max(1),
                self.arg(u)?,
                self.arg(u)?,
                self.arg(u)?,
                self.arg(u)?,
            ],
            2 => {
                let (gpa, pages) = self.convert_range(u)?;
                let shared = if u.arbitrary()? {
                    SHARED_BIT_4_LEVEL
                } else {
                    0
                };
                let size = if u.ratio(1, 8)? {
                    Self::len(u)?
                } else {
                    pages.wrapping_mul(PAGE)
                };
                [0, tdcall::MAP_GPA, gpa | shared, size, 0]
            }
            _ => [
                u.arbitrary()?,
                pick_or_raw(u, &[tdcall::MAP_GPA], 2)?,
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
            ],
        })
    }

    /// A GHCB MSR value: an MSR-protocol request or a GHCB GPA, or anything.
    fn msr_value(&self, u: &mut Unstructured<'_>) -> Result<u64> {
        let private_gfn = |u: &mut Unstructured<'_>| -> Result<u64> {
            u.int_in_range(0..=self.private_size / PAGE - 1)
        };
        Ok(match u.int_in_range(0..=6u8)? {
            0 => MsrRequest::SevInfo.encode(),
            1 => MsrRequest::RegisterGhcb {
                gfn: self.ghcb_gpa(u)? >> 12,
            }
            .encode(),
            2..=3 => MsrRequest::PageStateChange {
                gfn: if u.ratio(7, 8)? {
                    private_gfn(u)?
                } else {
                    u.arbitrary()?
                },
                op: PscOp(u.int_in_range(0..=15)?),
            }
            .encode(),
            4 => MsrRequest::Terminate {
                set: u.arbitrary()?,
                reason: u.arbitrary()?,
            }
            .encode(),
            5 => self.ghcb_gpa(u)?,
            _ => u.arbitrary()?,
        })
    }

    /// Where a GHCB page goes: mostly a page of the shared slot.
    fn ghcb_gpa(&self, u: &mut Unstructured<'_>) -> Result<u64> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=5 => SHARED_GPA + u.int_in_range(0..=SHARED_SIZE / PAGE - 1)? * PAGE,
            6 => u.int_in_range(0..=self.private_size / PAGE - 1)? * PAGE,
            _ => self.gpa(u)?,
        })
    }

    fn ghcb_page(&self, u: &mut Unstructured<'_>) -> Result<Op> {
        let gpa = self.ghcb_gpa(u)?;
        let register = !u.ratio(1, 8)?;
        let request = match u.int_in_range(0..=5u8)? {
            0..=2 => GhcbRequest::Hypercall {
                number: self.call_number(u)?,
                args: [self.arg(u)?, self.arg(u)?, self.arg(u)?, self.arg(u)?],
            },
            3..=4 => {
                let n = u.int_in_range(1..=6usize)?;
                let ranges = (0..n)
                    .map(|_| {
                        let (gpa, pages) = self.convert_range(u)?;
                        Ok((gpa, pages, u.int_in_range(0..=5)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let scratch = if u.ratio(3, 4)? {
                    0
                } else {
                    u.int_in_range(0..=SHARED_BUFFER_SIZE as u16)?
                };
                GhcbRequest::PageStateChange { scratch, ranges }
            }
            _ => {
                let n = u.int_in_range(0..=6usize)?;
                let fields = (0..n)
                    .map(|_| Ok((u.arbitrary()?, self.arg(u)?)))
                    .collect::<Result<Vec<_>>>()?;
                GhcbRequest::Raw {
                    exit_code: pick_or_raw(
                        u,
                        &[
                            SVM_EXIT_VMMCALL,
                            SVM_VMGEXIT_PSC,
                            SVM_VMGEXIT_TERM_REQUEST,
                            SVM_VMGEXIT_UNSUPPORTED_EVENT,
                            0x72,
                        ],
                        4,
                    )?,
                    info: [self.arg(u)?, self.arg(u)?],
                    usage: if u.ratio(7, 8)? { 0 } else { u.arbitrary()? },
                    version: u.int_in_range(0..=3)?,
                    fields,
                }
            }
        };
        let n = u.int_in_range(0..=4usize)?;
        let edits = (0..n)
            .map(|_| Ok((u.int_in_range(0..=GHCB_SIZE as u16 - 1)?, u.arbitrary()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Op::GhcbPage {
            gpa,
            register,
            request,
            edits,
        })
    }

    fn other_exit(&self, u: &mut Unstructured<'_>) -> Result<Exit> {
        Ok(match u.int_in_range(0..=12u8)? {
            0 => Exit::Io {
                port: u.arbitrary()?,
                size: *u.choose(&[1, 2, 4, 8])?,
                write: u.arbitrary()?,
                string: u.ratio(1, 4)?,
                next_rip: u.arbitrary()?,
            },
            1 => Exit::Cpuid {
                insn_len: u.int_in_range(0..=15)?,
            },
            2 => Exit::Msr {
                write: u.arbitrary()?,
                insn_len: u.int_in_range(0..=15)?,
            },
            3 => Exit::Interrupt,
            4 => Exit::Nmi,
            5 => Exit::OwnershipFault {
                gpa: self.gpa(u)?,
                size_mismatch: u.arbitrary()?,
                code: u.arbitrary()?,
            },
            6 => Exit::UnacceptedAccess { gpa: self.gpa(u)? },
            7 => Exit::PageRequest { gpa: self.gpa(u)? },
            8 => Exit::TerminationRequest {
                reason: u.arbitrary()?,
            },
            9 => Exit::Hlt,
            10 => Exit::Shutdown,
            11 => Exit::VmrunFailed {
                code: u.arbitrary()?,
            },
            _ => Exit::Unknown {
                code: u.arbitrary()?,
                info1: u.arbitrary()?,
                info2: u.arbitrary()?,
            },
        })
    }

    // -----------------------------------------------------------------------------------
    // The workload's memory, as the hypervisor may see it
    // -----------------------------------------------------------------------------------

    /// The host frame behind the guest page `page` if it is shared memory: a page of
    /// the shared slot, or a private page converted to shared (in place: the pool's
    /// frame at the same offset).
    fn shared_frame(&self, page: u64) -> Option<u64> {
        if (SHARED_GPA..SHARED_GPA + SHARED_SIZE).contains(&page) {
            return Some(SHARED_HOST + (page - SHARED_GPA));
        }
        if page < self.private_size && self.vm().is_shared_page(page) {
            return Some(POOL + page);
        }
        None
    }

    /// Store `bytes` at `gpa` where it is shared memory.
    fn write_guest(&mut self, gpa: u64, bytes: &[u8]) {
        for (i, &byte) in bytes.iter().enumerate() {
            let Some(at) = gpa.checked_add(i as u64) else {
                return;
            };
            if let Some(frame) = self.shared_frame(at & !(PAGE - 1)) {
                self.host.frame(frame)[(at % PAGE) as usize] = byte;
            }
        }
    }

    /// `len` bytes at `gpa`, if all of them are shared memory.
    fn read_guest(&mut self, gpa: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        for i in 0..len as u64 {
            let at = gpa.checked_add(i)?;
            let frame = self.shared_frame(at & !(PAGE - 1))?;
            out.push(self.host.frame(frame)[(at % PAGE) as usize]);
        }
        Some(out)
    }

    /// Note which private pages are shared memory now, before an exit that may read
    /// workload buffers (and convert memory).
    fn snapshot_shared(&mut self) {
        let vm = self.vm.as_ref().expect("the VM lives until teardown");
        for (i, shared) in self.shared_before.iter_mut().enumerate() {
            *shared = vm.is_shared_page(i as u64 * PAGE);
        }
    }

    /// Whether every byte of `[gpa, gpa + len)` was shared memory before this exit.
    fn was_shared(&self, gpa: u64, len: u64) -> bool {
        let Some(end) = gpa.checked_add(len) else {
            return false;
        };
        if len == 0 {
            return true;
        }
        let in_shared_slot = gpa >= SHARED_GPA && end <= SHARED_GPA + SHARED_SIZE;
        let converted = end <= self.private_size
            && (gpa / PAGE..end.div_ceil(PAGE)).all(|p| self.shared_before[p as usize]);
        in_shared_slot || converted
    }

    /// Whether every page of `[gpa, gpa + len)` is now private (or shared) memory of the
    /// private slot.
    fn pages_are(&self, gpa: u64, len: u64, to_private: bool) -> bool {
        let vm = self.vm();
        (0..len / PAGE).all(|i| vm.is_shared_page(gpa + i * PAGE) != to_private)
    }

    // -----------------------------------------------------------------------------------
    // Running
    // -----------------------------------------------------------------------------------

    /// Run one exit through the VM.
    fn step(&mut self, exit: Exit, transport: Transport) -> Option<Stop> {
        self.snapshot_shared();
        self.vcpu.prepare(exit, transport);
        let vm = self.vm.as_mut().expect("the VM lives until teardown");
        vm.step(&mut self.vcpu, &mut self.host)
    }

    fn execute(&mut self, op: Op) -> Flow {
        match op {
            Op::Write { gpa, bytes } => {
                self.write_guest(gpa, &bytes);
                Flow::Continue
            }
            Op::Vmmcall { number, args } => self.vmmcall(number, args),
            Op::Convert {
                list_gpa,
                ranges,
                entries,
                direction,
                resume,
                over_ghcb,
            } => self.memory_convert(list_gpa, &ranges, entries, direction, resume, over_ghcb),
            Op::Tdvmcall { regs } => self.tdvmcall_exit(regs),
            Op::GhcbMsr { value } => {
                self.vcpu.ghcb.write_msr(value);
                self.vmgexit()
            }
            Op::GhcbPage {
                gpa,
                register,
                request,
                edits,
            } => self.ghcb_request(gpa, register, &request, &edits),
            Op::GhcbAgain => self.vmgexit(),
            Op::Fault {
                gpa,
                access,
                present,
            } => self.fault(gpa, access, present),
            Op::Other(exit) => self.other(exit),
        }
    }

    fn vmmcall(&mut self, number: u64, args: [u64; 4]) -> Flow {
        let regs = &mut self.vcpu.regs;
        (regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi) =
            (number, args[0], args[1], args[2], args[3]);
        let rip = regs.rip;
        let stop = self.step(Exit::Hypercall, Transport::Vmmcall);
        let request = Request { number, args };
        if let Some(stop) = stop {
            self.check_call_stop(request, stop);
            return Flow::Stopped;
        }
        assert_eq!(
            self.vcpu.regs.rip,
            rip.wrapping_add(VMMCALL_LEN),
            "a completed VMMCALL moves RIP past it"
        );
        self.check_call_result(request, self.vcpu.regs.rax);
        Flow::Continue
    }

    /// A hypercall may only stop the workload by being EXIT, when allowed, with the low
    /// 32 bits of its argument.
    fn check_call_stop(&self, request: Request, stop: Stop) {
        let exit = Call::Exit;
        assert!(
            request.number == exit as u64 && self.allowed_calls & exit.mask() != 0,
            "{request:?} stopped the workload: {stop:?}"
        );
        assert_eq!(
            stop,
            Stop::Exited {
                status: request.args[0] as u32
            },
            "EXIT reports the low 32 bits of RBX"
        );
    }

    /// The ABI's promises about a call's result.
    fn check_call_result(&self, request: Request, rax: u64) {
        let Request { number, args } = request;
        if self.bench_hooks && number == bench::ZAP_PRIVATE {
            assert!((rax as i64) >= 0, "ZAP_PRIVATE returns a count: {rax:#x}");
            return;
        }
        let Some(call) = Call::from_raw(number) else {
            assert_eq!(
                rax,
                Error::UnknownCall.to_rax(),
                "unknown call {number:#x} must fail with UNKNOWN_CALL"
            );
            return;
        };
        if self.allowed_calls & call.mask() == 0 {
            assert_eq!(
                rax,
                Error::Denied.to_rax(),
                "{call:?} is not allowed: DENIED"
            );
            return;
        }
        let value = match decode_result(rax) {
            Ok(value) => value,
            Err(Ok(_error)) => return,
            Err(Err(raw)) => panic!("{call:?} returned {raw}, which is no cloister_abi::Error"),
        };
        let [gpa, len, direction, resume] = args;
        match call {
            Call::Exit => panic!("EXIT returned {value:#x}"),
            Call::ConsoleWrite => {
                assert_eq!(value, len, "CONSOLE_WRITE returns the length written");
                assert!(len <= CONSOLE_WRITE_MAX, "CONSOLE_WRITE of {len} bytes");
                assert!(
                    self.was_shared(gpa, len),
                    "CONSOLE_WRITE read [{gpa:#x}, +{len:#x}), which is not shared memory"
                );
            }
            Call::Info => {
                let size = BOOT_INFO_SIZE as u64;
                assert_eq!(value, size, "INFO returns the boot info's size");
                assert!(len >= size, "INFO into a {len}-byte buffer");
                assert!(
                    self.was_shared(gpa, size),
                    "INFO wrote [{gpa:#x}, +{size:#x}), which is not shared memory"
                );
            }
            Call::Measurement => {
                assert_eq!(
                    value, MEASUREMENT_SIZE,
                    "MEASUREMENT returns the digest size"
                );
                assert!(
                    len >= MEASUREMENT_SIZE,
                    "MEASUREMENT into a {len}-byte buffer"
                );
                assert!(
                    self.was_shared(gpa, MEASUREMENT_SIZE),
                    "MEASUREMENT wrote [{gpa:#x}, +{MEASUREMENT_SIZE:#x}), not shared memory"
                );
            }
            Call::MemoryConvert => {
                let entries = len;
                assert!(
                    (1..=CONVERT_MAX_ENTRIES).contains(&entries),
                    "MEMORY_CONVERT accepted {entries} entries"
                );
                assert!(
                    matches!(direction, CONVERT_TO_SHARED | CONVERT_TO_PRIVATE),
                    "MEMORY_CONVERT accepted direction {direction}"
                );
                assert!(
                    self.was_shared(gpa, entries * CONVERT_RANGE_SIZE),
                    "MEMORY_CONVERT read its list at {gpa:#x}, which is not shared memory"
                );
                assert!(
                    value >= resume && value - resume <= CONVERT_MAX_PAGES_PER_CALL,
                    "MEMORY_CONVERT from {resume} returned {value}"
                );
            }
        }
    }

    /// MEMORY_CONVERT: write the list, make the call, and when it reports the whole
    /// list done in one call, check every range is in the state asked for.
    fn memory_convert(
        &mut self,
        list_gpa: u64,
        ranges: &[(u64, u64)],
        entries: u64,
        direction: u64,
        resume: u64,
        over_ghcb: Option<u64>,
    ) -> Flow {
        let list: Vec<u8> = ranges
            .iter()
            .flat_map(|&(gpa, pages)| gpa.to_le_bytes().into_iter().chain(pages.to_le_bytes()))
            .collect();
        self.write_guest(list_gpa, &list);
        // What the hypervisor will read, if it reads the list at all.
        let read = (entries as usize).min(ranges.len()) * CONVERT_RANGE_SIZE as usize;
        // The GHCB page is written after the list: where they overlap, the hypervisor
        // reads a list this harness did not write.
        let list_end = list_gpa.saturating_add(read as u64);
        let overwritten =
            over_ghcb.is_some_and(|ghcb| list_gpa < ghcb.saturating_add(PAGE) && ghcb < list_end);
        let listed = if entries as usize == ranges.len() && !overwritten {
            self.read_guest(list_gpa, read)
        } else {
            None
        };
        let args = [list_gpa, entries, direction, resume];
        let number = Call::MemoryConvert as u64;
        let flow = match over_ghcb {
            Some(ghcb_gpa) => self.ghcb_request(
                ghcb_gpa,
                true,
                &GhcbRequest::Hypercall { number, args },
                &[],
            ),
            None => self.vmmcall(number, args),
        };
        if flow == Flow::Stopped {
            return flow;
        }
        let result = match over_ghcb {
            Some(_) => match self.vcpu.page_reply {
                Some(PageReply::Hypercall(rax)) => rax,
                _ => return flow,
            },
            None => self.vcpu.regs.rax,
        };
        let Some(listed) = listed else {
            return flow;
        };
        let ranges: Vec<(u64, u64)> = listed
            .chunks_exact(CONVERT_RANGE_SIZE as usize)
            .map(|e| {
                let word = |i: usize| u64::from_le_bytes(e[i..i + 8].try_into().unwrap());
                (word(0), word(8))
            })
            .collect();
        let total: u64 = ranges.iter().map(|r| r.1).fold(0, u64::saturating_add);
        if resume == 0 && decode_result(result) == Ok(total) {
            let to_private = direction == CONVERT_TO_PRIVATE;
            for &(gpa, pages) in &ranges {
                assert!(
                    self.pages_are(gpa, pages * PAGE, to_private),
                    "MEMORY_CONVERT said all {total} pages are done, but [{gpa:#x}, +{pages} \
                     pages) is not {}",
                    if to_private { "private" } else { "shared" }
                );
            }
        }
        flow
    }

    fn tdvmcall_exit(&mut self, regs: [u64; 5]) -> Flow {
        let r = &mut self.vcpu.regs;
        (r.r10, r.r11, r.r12, r.r13, r.r14) = (regs[0], regs[1], regs[2], regs[3], regs[4]);
        let exit = match tdvmcall::decode_vmcall(r) {
            Ok(exit) => exit,
            Err(reply) => {
                // Malformed: answered at once, core never sees it.
                assert!(
                    matches!(reply, ConvertReply::Invalid | ConvertReply::Misaligned),
                    "a malformed TDVMCALL answered {reply:?}"
                );
                tdvmcall::complete_convert(r, reply);
                assert!(
                    matches!(
                        r.r10,
                        tdcall::VMCALL_INVALID_OPERAND | tdcall::VMCALL_ALIGN_ERROR
                    ),
                    "a malformed TDVMCALL got R10 = {:#x}",
                    r.r10
                );
                return Flow::Continue;
            }
        };
        match exit {
            Exit::Hypercall => {
                let request = tdvmcall::request(&self.vcpu.regs);
                assert_eq!(request.number, regs[0], "the call number is R10");
                if let Some(stop) = self.step(exit, Transport::Tdvmcall) {
                    self.check_call_stop(request, stop);
                    return Flow::Stopped;
                }
                self.check_call_result(request, self.vcpu.regs.r10);
                Flow::Continue
            }
            Exit::ConvertRequest {
                gpa,
                len,
                to_private,
            } => {
                assert!(
                    len > 0 && gpa % PAGE == 0 && len % PAGE == 0 && gpa & SHARED_BIT_4_LEVEL == 0,
                    "MapGPA decoded into {exit:?}"
                );
                if let Some(stop) = self.step(exit, Transport::Tdvmcall) {
                    panic!("MapGPA {exit:?} stopped the workload: {stop:?}");
                }
                let reply = self.vcpu.convert_reply.expect("MapGPA was answered");
                self.check_conversion(gpa, len, to_private, reply);
                let r10 = self.vcpu.regs.r10;
                assert!(
                    matches!(
                        r10,
                        tdcall::VMCALL_SUCCESS
                            | tdcall::VMCALL_RETRY
                            | tdcall::VMCALL_INVALID_OPERAND
                            | tdcall::VMCALL_ALIGN_ERROR
                    ),
                    "MapGPA answered R10 = {r10:#x}"
                );
                Flow::Continue
            }
            other => panic!("decode_vmcall made {other:?} of {regs:x?}"),
        }
    }

    /// What a conversion answer promises: "done" means every page is in the state
    /// asked for, "retry from X" that every page before X is.
    fn check_conversion(&self, gpa: u64, len: u64, to_private: bool, reply: ConvertReply) {
        let done = match reply {
            ConvertReply::Done => len,
            ConvertReply::Retry { next } => {
                assert!(
                    next >= gpa && next - gpa < len && (next - gpa).is_multiple_of(PAGE),
                    "a conversion of [{gpa:#x}, +{len:#x}) asks to retry from {next:#x}"
                );
                next - gpa
            }
            ConvertReply::Misaligned => {
                assert!(
                    !gpa.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE),
                    "[{gpa:#x}, +{len:#x}) is aligned, but the answer was MISALIGNED"
                );
                return;
            }
            ConvertReply::Invalid => return,
        };
        assert!(
            done <= CONVERT_MAX_PAGES_PER_CALL * PAGE,
            "one exit converted {done:#x} bytes"
        );
        assert!(
            self.pages_are(gpa, done, to_private),
            "{reply:?} for [{gpa:#x}, +{len:#x}) to {}, but a page is not",
            if to_private { "private" } else { "shared" }
        );
    }

    /// Build the GHCB page the way the guest does, edit it, store it (where it is
    /// shared memory), point the MSR at it and VMGEXIT.
    fn ghcb_request(
        &mut self,
        gpa: u64,
        register: bool,
        request: &GhcbRequest,
        edits: &[(u16, u8)],
    ) -> Flow {
        if register {
            let request = MsrRequest::RegisterGhcb { gfn: gpa >> 12 };
            self.vcpu.ghcb.write_msr(request.encode());
            assert_eq!(
                self.vcpu.ghcb.vmgexit(),
                Vmgexit::Resume,
                "registration is answered in the MSR"
            );
            assert_eq!(
                MsrResponse::decode(self.vcpu.ghcb.msr()),
                MsrResponse::RegisterGhcb {
                    gfn: (gpa >> 12) & ((1 << 52) - 1)
                },
                "registration echoes the GFN"
            );
        }
        let mut page = [0u8; GHCB_SIZE];
        let mut ghcb = Ghcb::new(&mut page);
        match request {
            GhcbRequest::Hypercall { number, args } => ghcb.write_hypercall(*number, *args),
            GhcbRequest::PageStateChange { scratch, ranges } => {
                ghcb.start_request(SVM_VMGEXIT_PSC, 0, 0);
                let scratch = usize::from(*scratch).min(SHARED_BUFFER_SIZE);
                ghcb.set(
                    Field::SwScratch,
                    gpa.wrapping_add((SHARED_BUFFER_OFFSET + scratch) as u64),
                );
                let mut builder = PscBuilder::new(&mut ghcb.shared_buffer_mut()[scratch..]);
                for &(start, pages, op) in ranges {
                    let _ = builder.push(start, pages, PscOp(op));
                }
                let _ = builder.finish();
            }
            GhcbRequest::Raw {
                exit_code,
                info,
                usage,
                version,
                fields,
            } => {
                ghcb.start_request(*exit_code, info[0], info[1]);
                ghcb.set_usage(*usage);
                ghcb.set_protocol_version(*version);
                for &(field, value) in fields {
                    let field = Field::ALL[usize::from(field) % Field::ALL.len()];
                    if value == u64::MAX {
                        ghcb.invalidate(field);
                    } else {
                        ghcb.set(field, value);
                    }
                }
            }
        }
        for &(offset, byte) in edits {
            page[usize::from(offset) % GHCB_SIZE] = byte;
        }
        self.write_guest(gpa, &page);
        self.vcpu.ghcb.write_msr(gpa);
        self.vmgexit()
    }

    /// VMGEXIT with the MSR as it is: answered by the transport, or an exit for core.
    fn vmgexit(&mut self) -> Flow {
        let msr = self.vcpu.ghcb.msr();
        let exit = match self.vcpu.ghcb.vmgexit() {
            Vmgexit::Resume => return Flow::Continue,
            Vmgexit::Repeat => panic!("VMGEXIT of {msr:#x} asked to repeat before core ran"),
            Vmgexit::Exit(exit) => exit,
        };
        let stop = self.step(exit, Transport::Ghcb);
        match exit {
            Exit::PageRequest { gpa } => self.after_page_request(gpa, stop),
            Exit::ConvertRequest {
                gpa,
                len,
                to_private,
            } => {
                assert_eq!(stop, None, "an MSR page state change stopped the workload");
                assert_eq!(len, PAGE, "an MSR page state change is one page");
                let reply = self
                    .vcpu
                    .convert_reply
                    .expect("an MSR page state change was answered");
                self.check_conversion(gpa, len, to_private, reply);
                // A conversion that must wait runs the VMGEXIT again; the rest resume.
                let expected = match reply {
                    ConvertReply::Retry { .. } => Vmgexit::Repeat,
                    _ => Vmgexit::Resume,
                };
                assert_eq!(self.vcpu.msr_conversion, Some(expected), "after {reply:?}");
                Flow::Continue
            }
            Exit::TerminationRequest { reason } => {
                assert_eq!(stop, Some(Stop::TerminationRequest { reason }));
                Flow::Stopped
            }
            Exit::Unknown { .. } => {
                assert!(
                    matches!(stop, Some(Stop::UnknownExit { .. })),
                    "MSR value {msr:#x}: {exit:?} ended in {stop:?}"
                );
                Flow::Stopped
            }
            other => panic!("VMGEXIT of MSR value {msr:#x} made {other:?}"),
        }
    }

    /// After core served the GHCB page at `gpa`: the stop it may cause, the answer in
    /// the page, and the promises of the call or conversion it carried.
    fn after_page_request(&mut self, gpa: u64, stop: Option<Stop>) -> Flow {
        let call = self.vcpu.page_call;
        if let Some(stop) = stop {
            match (call, stop) {
                (_, Stop::BadTransport { .. }) => {}
                (Some(PageCall::Hypercall(request)), stop) => self.check_call_stop(request, stop),
                (call, stop) => panic!("GHCB request {call:?} at {gpa:#x} stopped: {stop:?}"),
            }
            return Flow::Stopped;
        }
        let call = call.expect("a served GHCB page was read by the transport");
        let reply = self.vcpu.page_reply;
        match (call, reply) {
            (PageCall::Hypercall(request), Some(PageReply::Hypercall(rax))) => {
                self.check_call_result(request, rax);
                let page = self.read_guest(gpa, GHCB_SIZE).expect("the GHCB is shared");
                let page: [u8; GHCB_SIZE] = page.try_into().unwrap();
                assert_eq!(
                    Ghcb::new(&page).hypercall_result(),
                    Some(rax),
                    "the GHCB carries the call's result back"
                );
            }
            (
                PageCall::Convert {
                    gpa,
                    len,
                    to_private,
                },
                Some(PageReply::Convert(reply)),
            ) => self.check_conversion(gpa, len, to_private, reply),
            (PageCall::Answered, None) => {}
            (call, reply) => panic!("GHCB request {call:?} answered with {reply:?}"),
        }
        Flow::Continue
    }

    fn fault(&mut self, gpa: u64, access: Access, present: bool) -> Flow {
        let rip = self.vcpu.regs.rip;
        let stop = self.step(
            Exit::NestedPageFault {
                gpa,
                access,
                present,
            },
            Transport::Vmmcall,
        );
        let page = gpa & !(PAGE - 1);
        let in_memory = gpa >> 48 == 0
            && (page < self.private_size || (SHARED_GPA..SHARED_GPA + SHARED_SIZE).contains(&page));
        match stop {
            Some(Stop::Unsupported { .. }) if present => Flow::Stopped,
            Some(Stop::OutsideMemory {
                gpa: at,
                access: how,
                rip: pc,
            }) if !present && !in_memory => {
                assert_eq!(
                    (at, how, pc),
                    (gpa, access, rip),
                    "the stop names the fault"
                );
                Flow::Stopped
            }
            None if !present && in_memory => {
                let host = &mut self.host;
                let vm = self.vm.as_ref().expect("the VM lives until teardown");
                assert!(
                    vm.leaf(gpa, host).is_some(),
                    "a fault at {gpa:#x} returned without a mapping"
                );
                Flow::Continue
            }
            stop => panic!(
                "fault at {gpa:#x} ({access:?}, present {present}, in memory {in_memory}) \
                 ended in {stop:?}"
            ),
        }
    }

    fn other(&mut self, exit: Exit) -> Flow {
        let injected = self.vcpu.injected;
        let stop = self.step(exit, Transport::Vmmcall);
        let expected = match exit {
            Exit::Io { string, .. } => string,
            Exit::Cpuid { .. } | Exit::Interrupt | Exit::Nmi => false,
            Exit::Msr { .. } => {
                assert_eq!(self.vcpu.injected, injected + 1, "an MSR access gets #GP");
                false
            }
            // A size mismatch in prepared private memory is split and resumed.
            Exit::OwnershipFault {
                size_mismatch: true,
                ..
            } => stop.is_some(),
            _ => true,
        };
        assert_eq!(stop.is_some(), expected, "{exit:?} ended in {stop:?}");
        match (exit, stop) {
            (_, None) => Flow::Continue,
            (Exit::Io { .. }, Some(Stop::Unsupported { .. }))
            | (Exit::OwnershipFault { .. }, Some(Stop::OwnershipFault { .. }))
            | (Exit::UnacceptedAccess { .. }, Some(Stop::Unaccepted { .. }))
            | (Exit::PageRequest { .. }, Some(Stop::BadTransport { .. }))
            | (Exit::TerminationRequest { .. }, Some(Stop::TerminationRequest { .. }))
            | (Exit::Hlt, Some(Stop::Halted { .. }))
            | (Exit::Shutdown, Some(Stop::TripleFault { .. }))
            | (Exit::VmrunFailed { .. }, Some(Stop::VmrunFailed { .. }))
            | (Exit::Unknown { .. }, Some(Stop::UnknownExit { .. })) => Flow::Stopped,
            (exit, stop) => panic!("{exit:?} ended in {stop:?}"),
        }
    }

    // -----------------------------------------------------------------------------------
    // Invariants
    // -----------------------------------------------------------------------------------

    fn check_invariants(&mut self) {
        let vm = self.vm.as_ref().expect("the VM lives until teardown");
        let host = &mut self.host;
        assert_eq!(vm.frozen_entries(host), 0, "an entry is left frozen");
        // The vendor's record: every prepare and release since the last check.
        let vendor = vm.vendor();
        for &(pa, frames) in &vendor.prepared[self.seen_prepared..] {
            for frame in (0..frames).map(|i| pa + i * PAGE) {
                assert!(
                    self.live.insert(frame),
                    "frame {frame:#x} prepared twice without a release"
                );
            }
        }
        for &(pa, frames) in &vendor.invalidated[self.seen_invalidated..] {
            for frame in (0..frames).map(|i| pa + i * PAGE) {
                assert!(
                    self.live.remove(&frame),
                    "frame {frame:#x} released but not prepared"
                );
            }
        }
        self.seen_prepared = vendor.prepared.len();
        self.seen_invalidated = vendor.invalidated.len();
        assert_eq!(
            vm.prepared_frames(),
            self.live.len() as u64,
            "the VM and the vendor disagree on the prepared frames"
        );
        for leaf in table_leaves::<TestFormat>(host, vm.npt_root()) {
            let pa = TestFormat::address(leaf.pte);
            let pinned = TestFormat::is_pinned(leaf.pte);
            for i in 0..leaf.size() / PAGE {
                let (page, frame) = (leaf.gpa + i * PAGE, pa + i * PAGE);
                if pinned {
                    assert!(
                        page < self.private_size && !vm.is_shared_page(page),
                        "private leaf {leaf:?} maps {page:#x}, which is not private memory"
                    );
                    assert!(
                        self.live.contains(&frame),
                        "private leaf {leaf:?} maps frame {frame:#x}, which is not prepared"
                    );
                } else if (SHARED_GPA..SHARED_GPA + SHARED_SIZE).contains(&page) {
                    assert_eq!(
                        frame,
                        SHARED_HOST + (page - SHARED_GPA),
                        "shared leaf {leaf:?}"
                    );
                } else {
                    assert!(
                        page < self.private_size && vm.is_shared_page(page),
                        "shared leaf {leaf:?} maps {page:#x}, which is not shared memory"
                    );
                    assert_eq!(frame, POOL + page, "converted page's leaf {leaf:?}");
                }
            }
        }
    }

    /// Tear the instance down: every mapping goes, every prepared frame stays.
    fn teardown(&mut self) {
        self.check_invariants();
        let vm = self.vm.take().expect("the VM lives until teardown");
        let root = vm.npt_root();
        let (memory, result) = vm.into_memory(&mut self.host);
        assert_eq!(result, Ok(()), "teardown refused");
        assert!(
            table_leaves::<TestFormat>(&mut self.host, root).is_empty(),
            "teardown left a leaf"
        );
        assert_eq!(memory.len(), 1, "the private memory object comes back");
        assert_eq!(
            memory[0].prepared_frames(),
            self.live.len() as u64,
            "teardown changed the prepared frames"
        );
    }
}
