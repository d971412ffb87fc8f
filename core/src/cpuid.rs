//! What CPUID tells the workload: the host's answer with what Cloister does not offer
//! masked off.

use crate::host::CpuidResult;

/// Leaf 0x4000_0000: hypervisor signature "CloisterHV\0\0", highest hypervisor leaf.
const SIGNATURE: [u8; 12] = *b"CloisterHV\0\0";

const LEAF1_ECX_VMX: u32 = 1 << 5;
const LEAF1_ECX_FMA: u32 = 1 << 12;
const LEAF1_ECX_F16C: u32 = 1 << 29;
const LEAF1_ECX_XSAVE: u32 = 1 << 26;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_AVX: u32 = 1 << 28;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// AVX2, AVX-512 F/DQ/IFMA/PF/ER/CD/BW/VL: all need XSAVE state Cloister does not switch.
const LEAF7_EBX_AVX: u32 = (1 << 5) | (1 << 16) | (1 << 17) | (1 << 21) | (0xf << 26) | (3 << 30);
/// AVX-512 VBMI/VBMI2, VAES, VPCLMULQDQ, VNNI, BITALG, VPOPCNTDQ: VEX/EVEX only.
const LEAF7_ECX_AVX: u32 =
    (1 << 1) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 14);
/// AVX-512 4VNNIW/4FMAPS/VP2INTERSECT/FP16 and AMX tile state: XSAVE-managed.
const LEAF7_EDX_AVX: u32 =
    (1 << 2) | (1 << 3) | (1 << 8) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);
const EXT1_ECX_SVM: u32 = 1 << 2;
const EXT1_ECX_XOP: u32 = 1 << 11;
const EXT1_ECX_FMA4: u32 = 1 << 16;

/// The workload's view of `leaf`/`subleaf` given the host's.
///
/// Hidden: virtualization extensions (no nesting), XSAVE and AVX (only x87/SSE state is
/// switched between the workload and the hypervisor). Added: the hypervisor bit and
/// signature leaf.
pub fn filter(leaf: u32, subleaf: u32, host: CpuidResult) -> CpuidResult {
    let mut out = host;
    match leaf {
        0x1 => {
            out.ecx &= !(LEAF1_ECX_VMX
                | LEAF1_ECX_FMA
                | LEAF1_ECX_XSAVE
                | LEAF1_ECX_OSXSAVE
                | LEAF1_ECX_AVX
                | LEAF1_ECX_F16C);
            out.ecx |= LEAF1_ECX_HYPERVISOR;
        }
        // Later subleaves describe more XSAVE-managed features (AVX-VNNI, AMX, ...).
        0x7 if subleaf != 0 => out = CpuidResult::default(),
        0x7 => {
            out.ebx &= !LEAF7_EBX_AVX;
            out.ecx &= !LEAF7_ECX_AVX;
            out.edx &= !LEAF7_EDX_AVX;
        }
        0xd | 0x8000_000a => out = CpuidResult::default(),
        0x8000_0001 => out.ecx &= !(EXT1_ECX_SVM | EXT1_ECX_XOP | EXT1_ECX_FMA4),
        0x4000_0000 => {
            let word = |i: usize| {
                u32::from_le_bytes([
                    SIGNATURE[i],
                    SIGNATURE[i + 1],
                    SIGNATURE[i + 2],
                    SIGNATURE[i + 3],
                ])
            };
            out = CpuidResult {
                eax: 0x4000_0000,
                ebx: word(0),
                ecx: word(4),
                edx: word(8),
            };
        }
        0x4000_0001..=0x4000_00ff => out = CpuidResult::default(),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: CpuidResult = CpuidResult {
        eax: !0,
        ebx: !0,
        ecx: !0,
        edx: !0,
    };

    #[test]
    fn hides_virtualization_and_xsave_and_announces_a_hypervisor() {
        let l1 = filter(
            1,
            0,
            CpuidResult {
                ecx: LEAF1_ECX_VMX | LEAF1_ECX_XSAVE | 1,
                ..ALL
            },
        );
        assert_eq!(l1.ecx, LEAF1_ECX_HYPERVISOR | 1);
        assert_eq!(filter(0x8000_0001, 0, ALL).ecx & EXT1_ECX_SVM, 0);
        assert_eq!(filter(0x8000_000a, 0, ALL), CpuidResult::default());
        assert_eq!(filter(0x7, 0, ALL).ebx & (1 << 5), 0, "AVX2 hidden");
        assert_eq!(filter(0x7, 0, ALL).ebx & (1 << 0), 1, "FSGSBASE kept");
        assert_eq!(filter(0x7, 0, ALL).ecx & (1 << 10), 0, "VPCLMULQDQ hidden");
        assert_eq!(
            filter(0x7, 1, ALL),
            CpuidResult::default(),
            "AVX-VNNI subleaf hidden"
        );
        assert_eq!(filter(1, 0, ALL).ecx & (1 << 12), 0, "FMA hidden");
        assert_eq!(
            filter(0x8000_0001, 0, ALL).ecx & (1 << 16),
            0,
            "FMA4 hidden"
        );
    }

    #[test]
    fn signature_leaf_spells_cloister() {
        let r = filter(0x4000_0000, 0, ALL);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&sig, b"CloisterHV\0\0");
    }
}
