//! The VMCB (AMD APM vol. 2, appendix B): a 4 KiB page with a control area at 0 and the
//! guest save area at 0x400. Accessed through named offsets rather than a 200-field
//! struct: the offsets are the spec, and a typo shows up next to its table entry.

use cloister_core::vcpu::EntryState;

/// Control-area offsets.
pub mod control {
    pub const INTERCEPT_CR: usize = 0x000;
    pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
    pub const INTERCEPT_MISC1: usize = 0x00c;
    pub const INTERCEPT_MISC2: usize = 0x010;
    pub const IOPM_BASE: usize = 0x040;
    pub const MSRPM_BASE: usize = 0x048;
    pub const GUEST_ASID: usize = 0x058;
    pub const TLB_CONTROL: usize = 0x05c;
    pub const V_INTR: usize = 0x060;
    pub const EXIT_CODE: usize = 0x070;
    pub const EXIT_INFO1: usize = 0x078;
    pub const EXIT_INFO2: usize = 0x080;
    pub const EXIT_INT_INFO: usize = 0x088;
    pub const NP_ENABLE: usize = 0x090;
    pub const EVENT_INJ: usize = 0x0a8;
    pub const N_CR3: usize = 0x0b0;
}

/// Save-area offsets (from the start of the VMCB).
pub mod save {
    pub const ES: usize = 0x400;
    pub const CS: usize = 0x410;
    pub const SS: usize = 0x420;
    pub const DS: usize = 0x430;
    pub const FS: usize = 0x440;
    pub const GS: usize = 0x450;
    pub const GDTR: usize = 0x460;
    pub const LDTR: usize = 0x470;
    pub const IDTR: usize = 0x480;
    pub const TR: usize = 0x490;
    pub const CPL: usize = 0x4cb;
    pub const EFER: usize = 0x4d0;
    pub const CR4: usize = 0x548;
    pub const CR3: usize = 0x550;
    pub const CR0: usize = 0x558;
    pub const DR7: usize = 0x560;
    pub const DR6: usize = 0x568;
    pub const RFLAGS: usize = 0x570;
    pub const RIP: usize = 0x578;
    pub const RSP: usize = 0x5d8;
    pub const RAX: usize = 0x5f8;
    pub const G_PAT: usize = 0x668;
}

/// Intercept bits.
pub mod intercept {
    // INTERCEPT_MISC1
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    pub const CPUID: u32 = 1 << 18;
    pub const HLT: u32 = 1 << 24;
    pub const INVLPGA: u32 = 1 << 26;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const SHUTDOWN: u32 = 1 << 31;
    // INTERCEPT_MISC2
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    pub const XSETBV: u32 = 1 << 13;
}

const V_INTR_MASKING: u64 = 1 << 24;
const TLB_FLUSH_ALL: u8 = 1;

/// Segment attributes in the VMCB's compressed form: type, S, DPL, P in bits 0-7;
/// AVL, L, D/B, G in bits 8-11.
const ATTR_CODE64: u16 = 0x9b | (1 << 9) | (1 << 11);
const ATTR_DATA: u16 = 0x93 | (1 << 10) | (1 << 11);
const ATTR_TSS64_BUSY: u16 = 0x8b;
const ATTR_LDT: u16 = 0x82;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub(crate) const EFER_LME: u64 = 1 << 8;
pub(crate) const EFER_LMA: u64 = 1 << 10;
pub(crate) const EFER_NXE: u64 = 1 << 11;
pub(crate) const EFER_SVME: u64 = 1 << 12;
/// The power-on PAT: WB, WT, UC-, UC repeated.
const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;

#[repr(C, align(4096))]
pub struct Vmcb([u8; 4096]);

impl Vmcb {
    pub const ZERO: Self = Self([0; 4096]);

    pub fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.0[offset..offset + 8].try_into().unwrap())
    }

    pub fn write_u64(&mut self, offset: usize, value: u64) {
        self.0[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }

    pub fn write_u32(&mut self, offset: usize, value: u32) {
        self.0[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn write_segment(&mut self, offset: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.0[offset..offset + 2].copy_from_slice(&selector.to_le_bytes());
        self.0[offset + 2..offset + 4].copy_from_slice(&attrib.to_le_bytes());
        self.write_u32(offset + 4, limit);
        self.write_u64(offset + 8, base);
    }

    /// Set up a workload entering 64-bit mode at `entry` (cloister_abi::boot), translated
    /// by the nested table at `npt_root`, with every port and MSR intercepted.
    pub fn init_long_mode(
        &mut self,
        entry: &EntryState,
        npt_root: u64,
        asid: u32,
        iopm: u64,
        msrpm: u64,
    ) {
        use intercept::*;
        *self = Self::ZERO;
        self.write_u32(control::INTERCEPT_CR, 0);
        self.write_u32(control::INTERCEPT_EXCEPTIONS, 0);
        self.write_u32(
            control::INTERCEPT_MISC1,
            INTR | NMI | CPUID | HLT | INVLPGA | IOIO_PROT | MSR_PROT | SHUTDOWN,
        );
        self.write_u32(
            control::INTERCEPT_MISC2,
            VMRUN | VMMCALL | VMLOAD | VMSAVE | STGI | CLGI | SKINIT | XSETBV,
        );
        self.write_u64(control::IOPM_BASE, iopm);
        self.write_u64(control::MSRPM_BASE, msrpm);
        self.write_u32(control::GUEST_ASID, asid);
        self.0[control::TLB_CONTROL] = TLB_FLUSH_ALL;
        self.write_u64(control::V_INTR, V_INTR_MASKING);
        self.write_u64(control::NP_ENABLE, 1);
        self.write_u64(control::N_CR3, npt_root);

        self.write_segment(save::CS, 0x08, ATTR_CODE64, 0xffff_ffff, 0);
        for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
            self.write_segment(seg, 0x10, ATTR_DATA, 0xffff_ffff, 0);
        }
        self.write_segment(save::TR, 0x18, ATTR_TSS64_BUSY, 0x67, 0);
        self.write_segment(save::LDTR, 0, ATTR_LDT, 0, 0);
        self.write_segment(save::GDTR, 0, 0, 0, 0);
        self.write_segment(save::IDTR, 0, 0, 0, 0);
        self.0[save::CPL] = 0;
        self.write_u64(save::EFER, EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME);
        self.write_u64(
            save::CR0,
            CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
        );
        self.write_u64(save::CR3, entry.cr3);
        self.write_u64(save::CR4, CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT);
        self.write_u64(save::DR6, 0xffff_0ff0);
        self.write_u64(save::DR7, 0x400);
        self.write_u64(save::G_PAT, DEFAULT_PAT);
        self.write_u64(save::RFLAGS, 0x2);
        self.write_u64(save::RIP, entry.rip);
        self.write_u64(save::RSP, entry.rsp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_setup_intercepts_what_core_handles() {
        let mut vmcb = Vmcb::ZERO;
        let entry = EntryState {
            rip: 0x20_0000,
            rsp: 0x20_0000,
            rdi: 0x1000,
            cr3: 0x2000,
        };
        vmcb.init_long_mode(&entry, 0x55_5000, 1, 0x1000, 0x4000);
        assert_eq!(vmcb.read_u64(save::RIP), 0x20_0000);
        assert_eq!(vmcb.read_u64(save::CR3), 0x2000);
        assert_eq!(vmcb.read_u64(control::N_CR3), 0x55_5000);
        assert_eq!(vmcb.read_u64(control::NP_ENABLE), 1);
        assert_ne!(
            vmcb.read_u64(save::EFER) & EFER_SVME,
            0,
            "VMRUN refuses a guest without EFER.SVME"
        );
        let misc2 = vmcb.read_u64(control::INTERCEPT_MISC2) as u32;
        assert_ne!(
            misc2 & intercept::VMRUN,
            0,
            "VMRUN refuses a VMCB without the VMRUN intercept"
        );
        assert_eq!(
            vmcb.read_u64(control::GUEST_ASID) as u32,
            1,
            "ASID 0 is the host's"
        );
        // CS: selector 8, L and G set, D clear (L+D together is invalid).
        assert_eq!(
            u16::from_le_bytes([vmcb.0[save::CS + 2], vmcb.0[save::CS + 3]]),
            0xa9b
        );
    }
}
