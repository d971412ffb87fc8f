//! The GHCB MSR protocol: requests and responses carried in the GHCB MSR itself.
//!
//! The guest writes a request into [`GHCB_MSR`](super::GHCB_MSR) and executes VMGEXIT;
//! the hypervisor decodes it ([`MsrValue::decode`]), writes the response into the MSR
//! ([`MsrResponse::encode`]) and resumes the guest, which reads it back
//! ([`MsrResponse::decode`]). GHCBData\[11:0\] is the request or response code, the
//! rest its data. Codes and bit positions from Linux `arch/x86/include/asm/sev-common.h`
//! (`GHCB_MSR_*`), and KVM's `sev_handle_vmgexit_msr_protocol` for the answers.

/// GHCBData\[11:0\]: the request or response code (`GHCB_MSR_INFO_MASK`).
pub const INFO_MASK: u64 = 0xfff;

/// SEV information request (`GHCB_MSR_SEV_INFO_REQ`): no data.
pub const SEV_INFO_REQ: u16 = 0x002;
/// SEV information response (`GHCB_MSR_SEV_INFO_RESP`): \[63:48\] highest and \[47:32\]
/// lowest protocol version, \[31:24\] the C-bit position.
pub const SEV_INFO_RESP: u16 = 0x001;
/// GHCB GPA registration request (`GHCB_MSR_REG_GPA_REQ`): \[63:12\] the GHCB's GFN.
pub const REG_GPA_REQ: u16 = 0x012;
/// GHCB GPA registration response (`GHCB_MSR_REG_GPA_RESP`): \[63:12\] the registered
/// GFN, or [`REG_GPA_ERROR_GFN`].
pub const REG_GPA_RESP: u16 = 0x013;
/// Page State Change request (`GHCB_MSR_PSC_REQ`): \[51:12\] GFN, \[55:52\] operation.
pub const PSC_REQ: u16 = 0x014;
/// Page State Change response (`GHCB_MSR_PSC_RESP`): \[63:32\] error, 0 on success.
pub const PSC_RESP: u16 = 0x015;
/// Termination request (`GHCB_MSR_TERM_REQ`): \[15:12\] reason set, \[23:16\] reason.
pub const TERM_REQ: u16 = 0x100;

/// The GFN a registration response carries when the hypervisor refuses the GHCB: all
/// 52 bits set (GHCB specification, "Register GHCB GPA").
pub const REG_GPA_ERROR_GFN: u64 = (1 << 52) - 1;
/// The error of a Page State Change response KVM gives for any failure
/// (`GHCB_MSR_PSC_RESP_ERROR = BIT_ULL(63) | GHCB_MSR_PSC_RESP`): bit 31 of the error
/// field.
pub const PSC_RESP_ERROR_GENERIC: u32 = 1 << 31;

/// Reason set 0, defined by the GHCB specification (`SEV_TERM_SET_GEN`).
pub const TERM_SET_GENERAL: u8 = 0;
/// Set 0: general termination request (`GHCB_SEV_ES_GEN_REQ`).
pub const TERM_GENERAL_REQUEST: u8 = 0;
/// Set 0: no GHCB protocol version in common (`GHCB_SEV_ES_PROT_UNSUPPORTED`).
pub const TERM_PROTOCOL_UNSUPPORTED: u8 = 1;
/// Set 0: SEV-SNP not supported (`GHCB_SNP_UNSUPPORTED`).
pub const TERM_SNP_UNSUPPORTED: u8 = 2;
/// Reason set 1: Cloister's guest SDK (the set is the guest's to define; Linux uses 1
/// for its own reasons too, with the same meanings for 0 to 2).
pub const TERM_SET_CLOISTER: u8 = 1;
/// Set 1: registering the GHCB failed (no response, or another GFN echoed).
pub const TERM_REGISTER: u8 = 0;
/// Set 1: a Page State Change the SDK could not do without failed (making the GHCB page
/// shared).
pub const TERM_PSC: u8 = 1;
/// Set 1: PVALIDATE failed where the SDK cannot report it.
pub const TERM_PVALIDATE: u8 = 2;
/// Set 1: a call through the GHCB page came back without a valid result (RAX not
/// marked valid, or an error in `sw_exit_info_1`): the hypervisor broke the protocol.
pub const TERM_GHCB_CALL: u8 = 3;

/// GHCBData\[51:12\] of a Page State Change request: a 40-bit GFN.
const PSC_GFN_MASK: u64 = (1 << 40) - 1;
/// GHCBData\[63:12\] of a registration: a 52-bit GFN.
const REG_GFN_MASK: u64 = (1 << 52) - 1;

/// What a value in the GHCB MSR names at a VMGEXIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrValue {
    /// Low 12 bits zero: the GPA of the GHCB page; the exit's request is in that page.
    GhcbGpa(u64),
    /// An MSR-protocol request.
    Request(MsrRequest),
}

impl MsrValue {
    /// Classify the GHCB MSR's value at a VMGEXIT.
    pub const fn decode(value: u64) -> Self {
        match MsrRequest::decode(value) {
            Some(request) => Self::Request(request),
            None => Self::GhcbGpa(value),
        }
    }
}

/// A GHCB MSR protocol request (guest to hypervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrRequest {
    /// `SEV_INFO_REQ`: which protocol versions the hypervisor speaks, and the C-bit.
    SevInfo,
    /// `REG_GPA_REQ`: use the page at `gfn` as this vCPU's GHCB (52-bit GFN).
    RegisterGhcb { gfn: u64 },
    /// `PSC_REQ`: change the state of the one 4 KiB page at `gfn` (40-bit GFN). `op` is
    /// the raw 4-bit operation; only [`PscOp::PRIVATE`](super::PscOp::PRIVATE) and
    /// [`PscOp::SHARED`](super::PscOp::SHARED) are valid here (PSMASH and UNSMASH are
    /// not supported by the MSR protocol), anything else is answered with an error.
    PageStateChange { gfn: u64, op: super::PscOp },
    /// `TERM_REQ`: stop the guest, for `reason` (8 bits) of reason `set` (4 bits).
    Terminate { set: u8, reason: u8 },
    /// Any other non-zero code (such as CPUID or hypervisor-features requests, which
    /// Cloister does not serve). The hypervisor should answer it by terminating the
    /// guest, as KVM does.
    Other { code: u16 },
}

impl MsrRequest {
    /// Decode a GHCB MSR value: `None` when GHCBData\[11:0\] is zero, which makes it a
    /// GHCB GPA rather than a request ([`MsrValue`]). Bits a request does not define are
    /// ignored.
    pub const fn decode(value: u64) -> Option<Self> {
        let code = (value & INFO_MASK) as u16;
        let request = match code {
            0 => return None,
            SEV_INFO_REQ => Self::SevInfo,
            REG_GPA_REQ => Self::RegisterGhcb {
                gfn: (value >> 12) & REG_GFN_MASK,
            },
            PSC_REQ => Self::PageStateChange {
                gfn: (value >> 12) & PSC_GFN_MASK,
                op: super::PscOp(((value >> 52) & 0xf) as u8),
            },
            TERM_REQ => Self::Terminate {
                set: ((value >> 12) & 0xf) as u8,
                reason: ((value >> 16) & 0xff) as u8,
            },
            code => Self::Other { code },
        };
        Some(request)
    }

    /// The MSR value of this request; fields are truncated to their width (a GFN too
    /// large for its field loses its high bits: check it with [`Self::fits`]).
    pub const fn encode(self) -> u64 {
        match self {
            Self::SevInfo => SEV_INFO_REQ as u64,
            Self::RegisterGhcb { gfn } => (gfn & REG_GFN_MASK) << 12 | REG_GPA_REQ as u64,
            Self::PageStateChange { gfn, op } => {
                ((op.0 as u64) & 0xf) << 52 | (gfn & PSC_GFN_MASK) << 12 | PSC_REQ as u64
            }
            Self::Terminate { set, reason } => {
                (reason as u64) << 16 | ((set as u64) & 0xf) << 12 | TERM_REQ as u64
            }
            Self::Other { code } => code as u64 & INFO_MASK,
        }
    }

    /// Whether every field fits its width, so that `decode(encode())` gives `self` back
    /// (and `Other` names a code that is not zero and not one of the requests above).
    pub const fn fits(self) -> bool {
        match self {
            Self::SevInfo => true,
            Self::RegisterGhcb { gfn } => gfn <= REG_GFN_MASK,
            Self::PageStateChange { gfn, op } => gfn <= PSC_GFN_MASK && op.0 <= 0xf,
            Self::Terminate { set, .. } => set <= 0xf,
            Self::Other { code } => {
                code as u64 <= INFO_MASK
                    && !matches!(code, 0 | SEV_INFO_REQ | REG_GPA_REQ | PSC_REQ | TERM_REQ)
            }
        }
    }
}

/// A GHCB MSR protocol response (hypervisor to guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrResponse {
    /// `SEV_INFO_RESP`: the protocol versions `min..=max` the hypervisor speaks, and the
    /// C-bit position (Cloister's SNP model answers 51; nothing in the guest uses it).
    SevInfo { max: u16, min: u16, cbit: u8 },
    /// `REG_GPA_RESP`: the GFN now registered, echoing the request's, or
    /// [`REG_GPA_ERROR_GFN`] when refused.
    RegisterGhcb { gfn: u64 },
    /// `PSC_RESP`: 0 on success, else an error (KVM: [`PSC_RESP_ERROR_GENERIC`]).
    PageStateChange { error: u32 },
    /// Any other code (the hypervisor wrote something that is not a response the guest
    /// asked for; a zero code is reported here too).
    Other { code: u16 },
}

impl MsrResponse {
    /// A registration refused.
    pub const REGISTER_ERROR: Self = Self::RegisterGhcb {
        gfn: REG_GPA_ERROR_GFN,
    };

    /// Decode the MSR value the hypervisor left.
    pub const fn decode(value: u64) -> Self {
        match (value & INFO_MASK) as u16 {
            SEV_INFO_RESP => Self::SevInfo {
                max: (value >> 48) as u16,
                min: (value >> 32) as u16,
                cbit: (value >> 24) as u8,
            },
            REG_GPA_RESP => Self::RegisterGhcb {
                gfn: (value >> 12) & REG_GFN_MASK,
            },
            PSC_RESP => Self::PageStateChange {
                error: (value >> 32) as u32,
            },
            code => Self::Other { code },
        }
    }

    /// The MSR value of this response (fields truncated to their width).
    pub const fn encode(self) -> u64 {
        match self {
            Self::SevInfo { max, min, cbit } => {
                (max as u64) << 48 | (min as u64) << 32 | (cbit as u64) << 24 | SEV_INFO_RESP as u64
            }
            Self::RegisterGhcb { gfn } => (gfn & REG_GFN_MASK) << 12 | REG_GPA_RESP as u64,
            Self::PageStateChange { error } => (error as u64) << 32 | PSC_RESP as u64,
            Self::Other { code } => code as u64 & INFO_MASK,
        }
    }

    /// Cloister's answer to [`MsrRequest::SevInfo`]: the versions it speaks.
    pub const fn sev_info(cbit: u8) -> Self {
        Self::SevInfo {
            max: super::PROTOCOL_VERSION_MAX,
            min: super::PROTOCOL_VERSION_MIN,
            cbit,
        }
    }

    /// For the guest: whether a SEV information response includes `version`.
    pub const fn supports_version(self, version: u16) -> bool {
        match self {
            Self::SevInfo { max, min, .. } => min <= version && version <= max,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::PscOp;
    use super::*;

    #[test]
    fn request_codes_and_bit_positions_match_linux() {
        // GHCB_MSR_PSC_REQ_GFN(gfn, op): op << 52 | gfn << 12 | 0x014.
        let psc = MsrRequest::PageStateChange {
            gfn: 0xab_cdef_0123,
            op: PscOp::SHARED,
        };
        assert_eq!(psc.encode(), 0x002a_bcde_f012_3014);
        assert_eq!(psc.encode(), 2 << 52 | 0xab_cdef_0123 << 12 | 0x014);
        // GHCB_MSR_REG_GPA_REQ_VAL(v): v << 12 | 0x012, 52-bit GFN.
        let reg = MsrRequest::RegisterGhcb {
            gfn: 0xf_ffff_ffff_fffe,
        };
        assert_eq!(reg.encode(), 0xffff_ffff_ffff_e012);
        // GHCB_SEV_TERM_REASON(set, reason) | GHCB_MSR_TERM_REQ.
        let term = MsrRequest::Terminate { set: 1, reason: 2 };
        assert_eq!(term.encode(), 2 << 16 | 1 << 12 | 0x100);
        assert_eq!(MsrRequest::SevInfo.encode(), 0x002);
    }

    #[test]
    fn every_request_round_trips() {
        let requests = [
            MsrRequest::SevInfo,
            MsrRequest::RegisterGhcb { gfn: 0 },
            MsrRequest::RegisterGhcb { gfn: REG_GFN_MASK },
            MsrRequest::PageStateChange {
                gfn: PSC_GFN_MASK,
                op: PscOp::PRIVATE,
            },
            MsrRequest::PageStateChange {
                gfn: 0x1234,
                op: PscOp(0xf),
            },
            MsrRequest::Terminate {
                set: 0xf,
                reason: 0xff,
            },
            MsrRequest::Other { code: 0x004 },
            MsrRequest::Other { code: 0xfff },
        ];
        for request in requests {
            assert!(request.fits(), "{request:?}");
            assert_eq!(MsrRequest::decode(request.encode()), Some(request));
            assert_eq!(
                MsrValue::decode(request.encode()),
                MsrValue::Request(request)
            );
        }
    }

    #[test]
    fn a_page_aligned_value_is_a_ghcb_gpa_not_a_request() {
        for gpa in [0, 0x1000, 0x7fff_f000, !0xfff_u64] {
            assert_eq!(MsrRequest::decode(gpa), None);
            assert_eq!(MsrValue::decode(gpa), MsrValue::GhcbGpa(gpa));
        }
        // Any non-zero code is a request, whatever the other bits.
        assert_eq!(
            MsrValue::decode(0x1000_0000_0000_0002),
            MsrValue::Request(MsrRequest::SevInfo)
        );
    }

    #[test]
    fn request_decoding_ignores_undefined_bits() {
        // PSC: bits 63:56 are not part of the request.
        let value = 0xff00_0000_0000_0000 | 1 << 52 | 5 << 12 | 0x014;
        assert_eq!(
            MsrRequest::decode(value),
            Some(MsrRequest::PageStateChange {
                gfn: 5,
                op: PscOp::PRIVATE
            })
        );
        // TERM: only [15:12] and [23:16].
        let value = 0xffff_ffff_ff00_0000 | 0x42 << 16 | 3 << 12 | 0x100;
        assert_eq!(
            MsrRequest::decode(value),
            Some(MsrRequest::Terminate {
                set: 3,
                reason: 0x42
            })
        );
    }

    #[test]
    fn fits_reports_truncation() {
        assert!(!MsrRequest::RegisterGhcb { gfn: 1 << 52 }.fits());
        assert!(
            !MsrRequest::PageStateChange {
                gfn: 1 << 40,
                op: PscOp::SHARED
            }
            .fits()
        );
        assert!(
            !MsrRequest::PageStateChange {
                gfn: 0,
                op: PscOp(0x10)
            }
            .fits()
        );
        assert!(
            !MsrRequest::Terminate {
                set: 0x10,
                reason: 0
            }
            .fits()
        );
        assert!(!MsrRequest::Other { code: 0 }.fits());
        assert!(!MsrRequest::Other { code: 0x012 }.fits());
        assert!(!MsrRequest::Other { code: 0x1000 }.fits());
        // Truncated encodings still never panic, and stay requests of their kind.
        let value = MsrRequest::RegisterGhcb { gfn: u64::MAX }.encode();
        assert_eq!(
            MsrRequest::decode(value),
            Some(MsrRequest::RegisterGhcb { gfn: REG_GFN_MASK })
        );
    }

    #[test]
    fn responses_match_linux_and_round_trip() {
        // GHCB_MSR_SEV_INFO(max, min, cbit).
        let info = MsrResponse::SevInfo {
            max: 2,
            min: 1,
            cbit: 51,
        };
        assert_eq!(info.encode(), 2 << 48 | 1 << 32 | 51 << 24 | 0x001);
        assert_eq!(MsrResponse::sev_info(51).encode(), 0x0002_0002_3300_0001);
        // KVM's GHCB_MSR_PSC_RESP_ERROR.
        let psc_error = MsrResponse::PageStateChange {
            error: PSC_RESP_ERROR_GENERIC,
        };
        assert_eq!(psc_error.encode(), 1 << 63 | 0x015);
        assert_eq!(MsrResponse::REGISTER_ERROR.encode(), 0xffff_ffff_ffff_f013);
        for response in [
            info,
            psc_error,
            MsrResponse::PageStateChange { error: 0 },
            MsrResponse::RegisterGhcb { gfn: 0x1234 },
            MsrResponse::REGISTER_ERROR,
            MsrResponse::Other { code: 0 },
            MsrResponse::Other { code: 0x081 },
        ] {
            assert_eq!(MsrResponse::decode(response.encode()), response);
        }
    }

    #[test]
    fn version_support_needs_a_sev_info_response_covering_the_version() {
        assert!(MsrResponse::sev_info(51).supports_version(2));
        let old = MsrResponse::SevInfo {
            max: 1,
            min: 1,
            cbit: 51,
        };
        assert!(!old.supports_version(2));
        let newer = MsrResponse::SevInfo {
            max: 3,
            min: 3,
            cbit: 51,
        };
        assert!(!newer.supports_version(2));
        assert!(!MsrResponse::PageStateChange { error: 0 }.supports_version(2));
        // A value the hypervisor did not answer (still the request) is no response.
        assert_eq!(
            MsrResponse::decode(SEV_INFO_REQ as u64),
            MsrResponse::Other { code: SEV_INFO_REQ }
        );
    }
}
