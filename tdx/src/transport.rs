//! The TDVMCALL transport: how a TD's TDG.VP.VMCALL registers become core's exits and
//! how the answers go back (docs/abi.md, transports).
//!
//! Cloister's calls use the vendor-specific form (R10 = the call number, never 0; R11 to
//! R14 the arguments; the result in R10). Conversions use the standard MapGPA
//! sub-function (R10 = 0, R11 = 0x10001, R12 = GPA, R13 = size; the shared bit of the
//! GPA says which way), answered in R10 with R11 = where to resume after RETRY.

use crate::abi::{SHARED_BIT_4_LEVEL, tdcall};
use cloister_core::Exit;
use cloister_core::hypercall::Request;
use cloister_core::vcpu::{ConvertReply, Regs};

const PAGE: u64 = 4096;

/// The exit a TDG.VP.VMCALL stands for, or the answer to give at once when the request
/// is malformed.
pub fn decode_vmcall(regs: &Regs) -> Result<Exit, ConvertReply> {
    if regs.r10 != 0 {
        return Ok(Exit::Hypercall);
    }
    if regs.r11 != tdcall::MAP_GPA {
        return Err(ConvertReply::Invalid);
    }
    let (gpa, size) = (regs.r12, regs.r13);
    if !gpa.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) {
        return Err(ConvertReply::Misaligned);
    }
    let Some(end) = gpa.checked_add(size) else {
        return Err(ConvertReply::Invalid);
    };
    let shared = gpa & SHARED_BIT_4_LEVEL != 0;
    // Both ends on the same side of the shared bit, inside the 48-bit space (TDX-14).
    let last = end.wrapping_sub(1);
    if size == 0 || (last & SHARED_BIT_4_LEVEL != 0) != shared || last >> 48 != 0 {
        return Err(ConvertReply::Invalid);
    }
    Ok(Exit::ConvertRequest {
        gpa: gpa & !SHARED_BIT_4_LEVEL,
        len: size,
        to_private: !shared,
    })
}

/// The call behind a vendor-specific TDVMCALL.
pub fn request(regs: &Regs) -> Request {
    Request {
        number: regs.r10,
        args: [regs.r11, regs.r12, regs.r13, regs.r14],
    }
}

/// Return a call's value.
pub fn complete_hypercall(regs: &mut Regs, value: u64) {
    regs.r10 = value;
}

/// Answer a MapGPA; `regs` still hold the request (R12 says which side it was on).
pub fn complete_convert(regs: &mut Regs, reply: ConvertReply) {
    let side = regs.r12 & SHARED_BIT_4_LEVEL;
    regs.r10 = match reply {
        ConvertReply::Done => tdcall::VMCALL_SUCCESS,
        ConvertReply::Retry { next } => {
            regs.r11 = next | side;
            tdcall::VMCALL_RETRY
        }
        ConvertReply::Invalid => tdcall::VMCALL_INVALID_OPERAND,
        ConvertReply::Misaligned => tdcall::VMCALL_ALIGN_ERROR,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_gpa(gpa: u64, size: u64) -> Regs {
        Regs {
            r10: 0,
            r11: tdcall::MAP_GPA,
            r12: gpa,
            r13: size,
            ..Regs::default()
        }
    }

    #[test]
    fn tdx_14_map_gpa_ends_on_different_sides_are_invalid_operand() {
        let straddling = map_gpa(SHARED_BIT_4_LEVEL - PAGE, 2 * PAGE);
        assert_eq!(decode_vmcall(&straddling), Err(ConvertReply::Invalid));
        let mut regs = straddling;
        complete_convert(&mut regs, ConvertReply::Invalid);
        assert_eq!(regs.r10, 0x8000_0000_0000_0000);
    }

    #[test]
    fn tdx_14_unaligned_map_gpa_is_align_error() {
        assert_eq!(
            decode_vmcall(&map_gpa(0x1800, PAGE)),
            Err(ConvertReply::Misaligned)
        );
        assert_eq!(
            decode_vmcall(&map_gpa(0x1000, 0x800)),
            Err(ConvertReply::Misaligned)
        );
        let mut regs = map_gpa(0x1800, PAGE);
        complete_convert(&mut regs, ConvertReply::Misaligned);
        assert_eq!(regs.r10, 0x8000_0000_0000_0002);
    }

    #[test]
    fn map_gpa_side_gives_the_direction_and_retry_resumes_on_the_same_side() {
        let to_shared = map_gpa(SHARED_BIT_4_LEVEL | 0x40_0000, 0x40_0000);
        assert_eq!(
            decode_vmcall(&to_shared),
            Ok(Exit::ConvertRequest {
                gpa: 0x40_0000,
                len: 0x40_0000,
                to_private: false
            })
        );
        let mut regs = to_shared;
        complete_convert(&mut regs, ConvertReply::Retry { next: 0x60_0000 });
        assert_eq!((regs.r10, regs.r11), (1, SHARED_BIT_4_LEVEL | 0x60_0000));
        let to_private = map_gpa(0x40_0000, PAGE);
        assert!(matches!(
            decode_vmcall(&to_private),
            Ok(Exit::ConvertRequest {
                to_private: true,
                ..
            })
        ));
    }

    #[test]
    fn wrapping_empty_and_unknown_requests_are_invalid() {
        assert_eq!(
            decode_vmcall(&map_gpa(0xffff_ffff_ffff_f000, 2 * PAGE)),
            Err(ConvertReply::Invalid)
        );
        assert_eq!(
            decode_vmcall(&map_gpa(0x1000, 0)),
            Err(ConvertReply::Invalid)
        );
        let unknown = Regs {
            r11: 0x10002,
            ..Regs::default()
        };
        assert_eq!(decode_vmcall(&unknown), Err(ConvertReply::Invalid));
    }

    #[test]
    fn cloister_calls_travel_in_r10_to_r14() {
        let regs = Regs {
            r10: 3,
            r11: 0x1000,
            r12: 448,
            r13: 7,
            r14: 8,
            ..Regs::default()
        };
        assert_eq!(decode_vmcall(&regs), Ok(Exit::Hypercall));
        assert_eq!(
            request(&regs),
            Request {
                number: 3,
                args: [0x1000, 448, 7, 8]
            }
        );
        let mut regs = regs;
        complete_hypercall(&mut regs, 42);
        assert_eq!(regs.r10, 42);
    }
}
