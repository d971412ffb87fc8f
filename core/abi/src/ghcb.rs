//! The GHCB wire format (AMD "SEV-ES Guest-Hypervisor Communication Block
//! Standardization", protocol version 2): shared by the hypervisor's SEV-SNP transport
//! and the guest SDK. Pure encoding and decoding, no behaviour.
//!
//! Three parts, each usable from both sides:
//! - [`msr`]: the GHCB MSR protocol, requests and responses carried in the 64-bit GHCB
//!   MSR itself ([`GHCB_MSR`]) across a VMGEXIT: SEV information, GHCB registration,
//!   single-page Page State Change, termination. A value whose low 12 bits are zero is
//!   not a request but the GPA of the GHCB page ([`msr::MsrValue`]).
//! - [`page`]: the 4 KiB GHCB page, a view over its bytes ([`Ghcb`]) with the save-area
//!   fields guarded by the valid bitmap, the shared buffer, the protocol version and
//!   usage, and Cloister's hypercall register mapping.
//! - [`psc`]: the Page State Change descriptor (NAE event [`SVM_VMGEXIT_PSC`]) in the
//!   shared buffer: validation and resumable progress as KVM's `snp_begin_psc` does it
//!   ([`PscDescriptor`]), and the guest-side builder ([`PscBuilder`]).
//!
//! Nothing here reads memory beyond the slices it is given or panics, whatever the bytes
//! (the hypervisor decodes pages the workload controls).
//!
//! Both sides of one call and one conversion, as the guest SDK and the hypervisor use
//! them (the hypervisor works on its copy of the guest's GHCB page and copies it back):
//! ```
//! use cloister_abi::ghcb::psc::PscBuilder;
//! use cloister_abi::ghcb::page::SHARED_BUFFER_OFFSET;
//! use cloister_abi::ghcb::{Field, Ghcb, PscDescriptor, PscOp, SVM_EXIT_VMMCALL, SVM_VMGEXIT_PSC};
//!
//! let ghcb_gpa = 0x20_3000;
//! let mut page = [0u8; 4096];
//!
//! // Guest: a call, then VMGEXIT.
//! Ghcb::new(&mut page).write_hypercall(3, [0x1000, 448, 0, 0]);
//! // Hypervisor: decode its copy, answer.
//! let mut copy = Ghcb::new(page);
//! assert_eq!(copy.exit_code(), Ok(SVM_EXIT_VMMCALL));
//! let call = copy.hypercall_request().unwrap();
//! assert_eq!((call.number, call.args[1]), (3, 448));
//! copy.write_hypercall_result(448);
//! page = copy.into_inner();
//! // Guest: the result.
//! assert_eq!(Ghcb::new(&page).hypercall_result(), Some(448));
//!
//! // Guest: 4 MiB to shared, described in the shared buffer.
//! let mut guest = Ghcb::new(&mut page);
//! let mut builder = PscBuilder::new(guest.shared_buffer_mut());
//! assert_eq!(builder.push(0x40_0000, 1024, PscOp::SHARED), Ok(1024));
//! builder.finish();
//! guest.start_request(SVM_VMGEXIT_PSC, 0, 0);
//! guest.set(Field::SwScratch, ghcb_gpa + SHARED_BUFFER_OFFSET as u64);
//! // Hypervisor: at most 512 pages per exit.
//! let mut copy = Ghcb::new(page);
//! assert_eq!(copy.exit_code(), Ok(SVM_VMGEXIT_PSC));
//! // (A scratch area outside the shared buffer is refused with `copy.set_error(reason)`.)
//! let buffer = copy.scratch_buffer_mut(ghcb_gpa).unwrap();
//! let info_2 = match PscDescriptor::parse(buffer) {
//!     Err(error) => error.code(),
//!     Ok(mut psc) => {
//!         if let Some(range) = psc.next_range() {
//!             let pages = range.pages.min(512);
//!             // ... convert [range.gpa, range.gpa + pages * 4096) ...
//!             psc.complete(&range, pages);
//!         }
//!         0
//!     }
//! };
//! copy.write_exit_result(info_2);
//! page = copy.into_inner();
//! // Guest: not done yet (cur_entry <= end_entry), so it repeats the VMGEXIT.
//! let header = cloister_abi::ghcb::PscHeader::read(Ghcb::new(&page).shared_buffer());
//! assert_eq!(header.map(|h| (h.cur_entry, h.end_entry)), Some((1, 1)));
//! ```
//!
//! Sources, checked field by field: Linux `arch/x86/include/asm/sev-common.h` (MSR
//! protocol codes, `struct psc_hdr`/`psc_entry`, `VMGEXIT_PSC_*`),
//! `arch/x86/include/asm/svm.h` (`struct ghcb_save_area`, `struct ghcb`,
//! `GHCB_BITMAP_IDX`), `arch/x86/include/uapi/asm/svm.h` (exit codes) and
//! `arch/x86/kvm/svm/sev.c` (`snp_begin_psc`, `__snp_complete_one_psc`,
//! `sev_handle_vmgexit_msr_protocol`); docs/abi.md, Transports, is the normative text.

pub mod msr;
pub mod page;
pub mod psc;

pub use msr::{MsrRequest, MsrResponse, MsrValue};
pub use page::{Field, Ghcb, HypercallRequest};
pub use psc::{PscBuilder, PscDescriptor, PscEntry, PscError, PscHeader, PscOp, PscRange};

/// The GHCB MSR (`MSR_AMD64_SEV_ES_GHCB`): holds the GHCB page's GPA, or an MSR-protocol
/// request or response, across a VMGEXIT.
pub const GHCB_MSR: u32 = 0xC001_0130;

/// Lowest GHCB protocol version Cloister speaks (both sides).
pub const PROTOCOL_VERSION_MIN: u16 = 2;
/// Highest GHCB protocol version Cloister speaks. Only version 2 is implemented.
pub const PROTOCOL_VERSION_MAX: u16 = 2;

/// Size of the GHCB page.
pub const GHCB_SIZE: usize = 4096;

/// `ghcb_usage` of the standard GHCB layout (`GHCB_DEFAULT_USAGE`), the only one used.
pub const GHCB_USAGE_STANDARD: u32 = 0;

/// `sw_exit_code` of a hypercall through the GHCB: the VMMCALL intercept
/// (`SVM_EXIT_VMMCALL`, uapi svm.h).
pub const SVM_EXIT_VMMCALL: u64 = 0x81;
/// `sw_exit_code` of a Page State Change request (`SVM_VMGEXIT_PSC`, uapi svm.h).
pub const SVM_VMGEXIT_PSC: u64 = 0x8000_0010;
/// `sw_exit_code` of a termination request through the GHCB page
/// (`SVM_VMGEXIT_TERM_REQUEST`, uapi svm.h); Cloister's workloads terminate through the
/// MSR protocol instead ([`msr::MsrRequest::Terminate`]).
pub const SVM_VMGEXIT_TERM_REQUEST: u64 = 0x8000_fffe;
/// `sw_exit_code` the guest never sends and the hypervisor may name in errors
/// (`SVM_VMGEXIT_UNSUPPORTED_EVENT`, uapi svm.h).
pub const SVM_VMGEXIT_UNSUPPORTED_EVENT: u64 = 0x8000_ffff;

/// Guest page frame number of a GPA (4 KiB frames).
pub const fn gfn(gpa: u64) -> u64 {
    gpa >> 12
}
