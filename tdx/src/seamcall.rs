//! The real TDX module interface: [`Seamcall`] issues the SEAMCALL instruction, and
//! [`detect`] finds out whether this CPU has SEAM mode at all.
//!
//! None of this has run on hardware: QEMU's emulation has no SEAM mode, so the tests
//! check the register convention (a recorder stands in for the instruction under
//! `cfg(test)`) and everything above it runs against [`crate::model::TdxModel`].
//!
//! Register convention of each leaf: TDX module ABI 1.5, as Linux issues them in
//! `arch/x86/virt/vmx/tdx/tdx.c` (`tdh_mem_page_add`, `tdh_mem_sept_add`,
//! `tdh_mem_page_aug`, `tdh_mem_range_block`, `tdh_mem_track`, `tdh_mem_page_remove`,
//! `tdh_phymem_page_wbinvd_hkid`, `tdh_vp_flush`, `tdh_mng_vpflushdone`,
//! `tdh_phymem_cache_wb`, `tdh_mng_key_freeid`, `tdh_phymem_page_reclaim`,
//! `tdh_mr_extend`, `tdh_mr_finalize`) and as the module's dispatcher reads them
//! (intel/tdx-module `src/vmm_dispatcher/tdx_vmm_dispatcher.c`, which also gives
//! TDH.MEM.RANGE.UNBLOCK and TDH.MEM.SEPT.REMOVE: RCX = GPA | level, RDX = TDR):
//!
//! | leaf | RCX | RDX | R8 | R9 | out |
//! | --- | --- | --- | --- | --- | --- |
//! | MEM.PAGE.ADD | GPA (level 0) | TDR | page | source | |
//! | MEM.SEPT.ADD | GPA \| level | TDR | page | | |
//! | MEM.PAGE.AUG | GPA \| level | TDR | page | | |
//! | MEM.RANGE.BLOCK, .UNBLOCK | GPA \| level | TDR | | | |
//! | MEM.PAGE.REMOVE, MEM.SEPT.REMOVE | GPA \| level | TDR | | | RCX: the page |
//! | MR.EXTEND | GPA | TDR | | | |
//! | MEM.TRACK, MR.FINALIZE, MNG.VPFLUSHDONE, MNG.KEY.FREEID | TDR | | | | |
//! | VP.FLUSH | TDVPR | | | | |
//! | PHYMEM.PAGE.WBINVD | page \| HKID << HKID bit | | | | |
//! | PHYMEM.CACHE.WB | 1 to resume, else 0 | | | | |
//! | PHYMEM.PAGE.RECLAIM | page | | | | |

use crate::abi::{Level, gpa_and_level, seamcall as leaf};
use crate::module::{TdPages, TdxModule};
use crate::status::Status;
use core::fmt;

/// Most vCPUs a [`Seamcall`] TD can have.
pub const MAX_VCPUS: usize = 32;

/// RAX when SEAMCALL fails with VMfailInvalid (CF set: no TDX module is loaded, or SEAM
/// is busy). Linux's `TDX_SEAMCALL_VMFAILINVALID`: a status from a reserved class the
/// module itself never returns.
pub const VMFAIL_INVALID: Status = Status(0x8000_ff00_ffff_0000);

/// Bits 51:12 of a physical address in a module output (the low bits carry hints).
const PAGE_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The SEAMCALL operands Cloister uses (inputs and outputs; the module returns
/// extended error information in the same registers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Regs {
    rcx: u64,
    rdx: u64,
    r8: u64,
    r9: u64,
}

/// Issue SEAMCALL `leaf` with `regs`; returns the completion status (RAX, or
/// [`VMFAIL_INVALID`]) and the output registers.
///
/// # Safety
///
/// The CPU must be in VMX root operation with the TDX module initialized on this
/// logical processor (otherwise SEAMCALL raises #UD or #GP). Every physical page the
/// operands name becomes the module's, or is read by it, as the leaf defines: the
/// caller must not use a page it gives the module until the module gives it back.
#[cfg_attr(test, allow(dead_code))]
unsafe fn seamcall(leaf: u64, regs: Regs) -> (Status, Regs) {
    let (rax, rcx, rdx, r8, r9): (u64, u64, u64, u64, u64);
    let vmfail: u8;
    // SAFETY: the caller upholds the contract above. SEAMCALL is a VM exit to the TDX
    // module, which returns to the next instruction with RAX, RCX, RDX and R8-R11 as
    // outputs (R10 and R11 are unused by these leaves but may be written) and every
    // other register preserved; it does not use our stack. It reads and writes memory
    // (the pages named), so no `nomem`. CF set means VMfailInvalid, RAX unchanged.
    unsafe {
        core::arch::asm!(
            ".byte 0x66, 0x0f, 0x01, 0xcf", // SEAMCALL (binutils >= 2.36 knows the name)
            "setc {vmfail}",
            vmfail = out(reg_byte) vmfail,
            inout("rax") leaf => rax,
            inout("rcx") regs.rcx => rcx,
            inout("rdx") regs.rdx => rdx,
            inout("r8") regs.r8 => r8,
            inout("r9") regs.r9 => r9,
            out("r10") _,
            out("r11") _,
            options(nostack),
        );
    }
    let status = if vmfail != 0 {
        VMFAIL_INVALID
    } else {
        Status(rax)
    };
    (status, Regs { rcx, rdx, r8, r9 })
}

/// One TD through the real TDX module.
pub struct Seamcall {
    pages: TdPages,
    /// Each vCPU's TDVPR page, in vCPU order.
    tdvprs: heapless::Vec<u64, MAX_VCPUS>,
    /// The TD's private host key id.
    hkid: u16,
    /// The lowest physical-address bit that carries the key id (MAXPHYADDR minus the
    /// key id bits; Linux's `boot_cpu_data.x86_phys_bits`).
    hkid_shift: u32,
    /// Under test, the calls made instead of SEAMCALL, and the answer each gets.
    #[cfg(test)]
    calls: std::vec::Vec<(u64, Regs)>,
    #[cfg(test)]
    reply: (Status, Regs),
}

impl Seamcall {
    /// The TD whose root page is `pages.tdr`, created with key id `hkid`, whose control
    /// pages are `pages.control` and whose vCPUs have the TDVPR pages `tdvprs` (their
    /// number is the vCPU count). `hkid_shift` is the physical-address bit where key
    /// ids start.
    ///
    /// # Safety
    ///
    /// The CPU must be in VMX root operation with the TDX module initialized on every
    /// logical processor that uses the result, and the pages must be those of one TD
    /// the module created with `hkid`. Every page later passed to a [`TdxModule`]
    /// method is handed to the module as that method says: the caller must not touch it
    /// until it is back (removed, reclaimed and written back).
    pub unsafe fn new(
        pages: TdPages,
        tdvprs: heapless::Vec<u64, MAX_VCPUS>,
        hkid: u16,
        hkid_shift: u32,
    ) -> Self {
        Self {
            pages,
            tdvprs,
            hkid,
            hkid_shift,
            #[cfg(test)]
            calls: std::vec::Vec::new(),
            #[cfg(test)]
            reply: (Status::SUCCESS, Regs::default()),
        }
    }

    /// SEAMCALL `leaf`; the output registers on success, the status otherwise.
    fn call(&mut self, leaf: u64, regs: Regs) -> Result<Regs, Status> {
        #[cfg(not(test))]
        // SAFETY: `new`'s contract: VMX root with the module ready, and the pages the
        // operands name are the caller's to hand over.
        let (status, out) = unsafe { seamcall(leaf, regs) };
        #[cfg(test)]
        let (status, out) = {
            self.calls.push((leaf, regs));
            self.reply
        };
        if status == Status::SUCCESS {
            Ok(out)
        } else {
            Err(status)
        }
    }

    fn call_tdr(&mut self, leaf: u64) -> Result<(), Status> {
        let tdr = self.pages.tdr;
        self.call(
            leaf,
            Regs {
                rcx: tdr,
                ..Regs::default()
            },
        )
        .map(drop)
    }

    fn call_gpa(&mut self, leaf: u64, gpa: u64, level: Level, r8: u64) -> Result<Regs, Status> {
        let regs = Regs {
            rcx: gpa_and_level(gpa, level),
            rdx: self.pages.tdr,
            r8,
            r9: 0,
        };
        self.call(leaf, regs)
    }
}

impl TdxModule for Seamcall {
    fn sept_add(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status> {
        self.call_gpa(leaf::TDH_MEM_SEPT_ADD, gpa, level, page)
            .map(drop)
    }

    fn page_add(&mut self, gpa: u64, page: u64, source: u64) -> Result<(), Status> {
        let regs = Regs {
            rcx: gpa_and_level(gpa, Level::L4K),
            rdx: self.pages.tdr,
            r8: page,
            r9: source,
        };
        self.call(leaf::TDH_MEM_PAGE_ADD, regs).map(drop)
    }

    fn page_aug(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status> {
        self.call_gpa(leaf::TDH_MEM_PAGE_AUG, gpa, level, page)
            .map(drop)
    }

    fn range_block(&mut self, gpa: u64, level: Level) -> Result<(), Status> {
        self.call_gpa(leaf::TDH_MEM_RANGE_BLOCK, gpa, level, 0)
            .map(drop)
    }

    fn range_unblock(&mut self, gpa: u64, level: Level) -> Result<(), Status> {
        self.call_gpa(leaf::TDH_MEM_RANGE_UNBLOCK, gpa, level, 0)
            .map(drop)
    }

    fn track(&mut self) -> Result<(), Status> {
        self.call_tdr(leaf::TDH_MEM_TRACK)
    }

    fn page_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status> {
        // RCX out: the removed page's address without key id, plus hint bits below 12.
        self.call_gpa(leaf::TDH_MEM_PAGE_REMOVE, gpa, level, 0)
            .map(|out| out.rcx & PAGE_MASK)
    }

    fn sept_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status> {
        // Version 0 of the leaf: RCX out is the removed S-EPT page, as for PAGE.REMOVE.
        self.call_gpa(leaf::TDH_MEM_SEPT_REMOVE, gpa, level, 0)
            .map(|out| out.rcx & PAGE_MASK)
    }

    fn mr_extend(&mut self, gpa: u64) -> Result<(), Status> {
        let regs = Regs {
            rcx: gpa,
            rdx: self.pages.tdr,
            ..Regs::default()
        };
        self.call(leaf::TDH_MR_EXTEND, regs).map(drop)
    }

    fn mr_finalize(&mut self) -> Result<(), Status> {
        self.call_tdr(leaf::TDH_MR_FINALIZE)
    }

    fn page_wbinvd(&mut self, page: u64) -> Result<(), Status> {
        // The cache lines to write back are those tagged with the TD's key id.
        let keyed = page | u64::from(self.hkid) << self.hkid_shift;
        let regs = Regs {
            rcx: keyed,
            ..Regs::default()
        };
        self.call(leaf::TDH_PHYMEM_PAGE_WBINVD, regs).map(drop)
    }

    fn vp_flush(&mut self, vcpu: usize) -> Result<(), Status> {
        // A vCPU the TD does not have gets the module's own answer to a bad TDVPR.
        let tdvpr = self.tdvprs.get(vcpu).copied().unwrap_or(0);
        let regs = Regs {
            rcx: tdvpr,
            ..Regs::default()
        };
        self.call(leaf::TDH_VP_FLUSH, regs).map(drop)
    }

    fn vpflushdone(&mut self) -> Result<(), Status> {
        self.call_tdr(leaf::TDH_MNG_VPFLUSHDONE)
    }

    fn cache_wb(&mut self, resume: bool) -> Result<(), Status> {
        let regs = Regs {
            rcx: u64::from(resume),
            ..Regs::default()
        };
        self.call(leaf::TDH_PHYMEM_CACHE_WB, regs).map(drop)
    }

    fn key_freeid(&mut self) -> Result<(), Status> {
        self.call_tdr(leaf::TDH_MNG_KEY_FREEID)
    }

    fn page_reclaim(&mut self, page: u64) -> Result<(), Status> {
        // RCX, RDX and R8 out describe the page (type, owner, size): not needed.
        let regs = Regs {
            rcx: page,
            ..Regs::default()
        };
        self.call(leaf::TDH_PHYMEM_PAGE_RECLAIM, regs).map(drop)
    }

    fn kick_vcpus(&mut self) {
        // Nothing to do: Cloister runs one workload vCPU, on the CPU that handles its
        // exits, so while the hypervisor changes the S-EPT that vCPU is never in guest
        // mode and cannot hold a translation from an old TLB epoch.
    }

    fn vcpu_count(&self) -> usize {
        self.tdvprs.len()
    }

    fn td_pages(&self) -> TdPages {
        self.pages.clone()
    }
}

/// Why this CPU cannot run TDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// CPUID.1:EDX.MTRR is clear: no IA32_MTRRCAP, so no SEAM range register either.
    NoMtrr,
    /// IA32_MTRRCAP bit 15 is clear: the CPU has no SEAM range register (SEAMRR).
    NoSeamrr,
    /// IA32_SEAMRR_PHYS_MASK bit 11 is clear: the firmware did not enable SEAM mode.
    SeamrrDisabled,
}

impl Unavailable {
    /// What is missing, for messages.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoMtrr => "the CPU has no MTRRs (CPUID 1 EDX bit 12), so no SEAM range register",
            Self::NoSeamrr => "the CPU has no SEAM range register (IA32_MTRRCAP bit 15 clear)",
            Self::SeamrrDisabled => {
                "SEAM mode is not enabled (IA32_SEAMRR_PHYS_MASK bit 11 clear): the firmware did not set it up"
            }
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

const CPUID_1_EDX_MTRR: u32 = 1 << 12;
const IA32_MTRRCAP: u32 = 0xfe;
const MTRRCAP_SEAMRR: u64 = 1 << 15;
const IA32_SEAMRR_PHYS_MASK: u32 = 0x1401;
const SEAMRR_PHYS_MASK_ENABLED: u64 = 1 << 11;

/// Whether this CPU has SEAM mode enabled, which a TDX module needs. Reads
/// IA32_MTRRCAP, and IA32_SEAMRR_PHYS_MASK only when IA32_MTRRCAP says the register
/// exists (reading it otherwise raises #GP). Must run at CPL 0.
///
/// `Ok` does not mean a TDX module is loaded: the first SEAMCALL tells
/// ([`VMFAIL_INVALID`]).
pub fn detect() -> Result<(), Unavailable> {
    let has_mtrr = core::arch::x86_64::__cpuid(1).edx & CPUID_1_EDX_MTRR != 0;
    seam_state(
        has_mtrr,
        // SAFETY: IA32_MTRRCAP exists on every CPU with MTRRs (checked first by
        // seam_state); reading it has no side effect.
        || unsafe { x86::msr::rdmsr(IA32_MTRRCAP) },
        // SAFETY: read only when IA32_MTRRCAP reports SEAMRR, so the MSR exists;
        // reading it has no side effect.
        || unsafe { x86::msr::rdmsr(IA32_SEAMRR_PHYS_MASK) },
    )
}

/// [`detect`]'s decision, reading each MSR only once the one before says it exists.
fn seam_state(
    has_mtrr: bool,
    mtrrcap: impl FnOnce() -> u64,
    seamrr_mask: impl FnOnce() -> u64,
) -> Result<(), Unavailable> {
    if !has_mtrr {
        return Err(Unavailable::NoMtrr);
    }
    if mtrrcap() & MTRRCAP_SEAMRR == 0 {
        return Err(Unavailable::NoSeamrr);
    }
    if seamrr_mask() & SEAMRR_PHYS_MASK_ENABLED == 0 {
        return Err(Unavailable::SeamrrDisabled);
    }
    Ok(())
}

/// Whether this CPU has SEAM mode enabled (see [`detect`]).
pub fn tdx_available() -> bool {
    detect().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    const TDR: u64 = 0x10_0000;
    const GPA: u64 = 0x20_0000;
    const PAGE: u64 = 0x30_0000;

    fn module() -> Seamcall {
        let pages = TdPages {
            tdr: TDR,
            control: heapless::Vec::from_slice(&[0x11_0000, 0x12_0000]).unwrap(),
        };
        let tdvprs = heapless::Vec::from_slice(&[0x13_0000, 0x14_0000]).unwrap();
        // SAFETY: under test no SEAMCALL is issued; the calls are recorded.
        unsafe { Seamcall::new(pages, tdvprs, 5, 46) }
    }

    fn regs(rcx: u64, rdx: u64, r8: u64, r9: u64) -> Regs {
        Regs { rcx, rdx, r8, r9 }
    }

    #[test]
    fn memory_leaves_pass_gpa_and_level_in_rcx_and_the_tdr_in_rdx() {
        let mut m = module();
        m.page_add(GPA, PAGE, 0x40_0000).unwrap();
        m.sept_add(GPA, Level::L2M, PAGE).unwrap();
        m.page_aug(GPA, Level::L2M, PAGE).unwrap();
        m.page_aug(GPA + 0x1000, Level::L4K, PAGE).unwrap();
        m.range_block(GPA, Level::L1G).unwrap();
        m.range_unblock(GPA, Level::L4K).unwrap();
        m.page_remove(GPA, Level::L4K).unwrap();
        m.sept_remove(GPA, Level::L2M).unwrap();
        m.mr_extend(GPA + 0x100).unwrap();
        assert_eq!(
            m.calls,
            vec![
                (leaf::TDH_MEM_PAGE_ADD, regs(GPA, TDR, PAGE, 0x40_0000)),
                (leaf::TDH_MEM_SEPT_ADD, regs(GPA | 1, TDR, PAGE, 0)),
                (leaf::TDH_MEM_PAGE_AUG, regs(GPA | 1, TDR, PAGE, 0)),
                (leaf::TDH_MEM_PAGE_AUG, regs(GPA + 0x1000, TDR, PAGE, 0)),
                (leaf::TDH_MEM_RANGE_BLOCK, regs(GPA | 2, TDR, 0, 0)),
                (leaf::TDH_MEM_RANGE_UNBLOCK, regs(GPA, TDR, 0, 0)),
                (leaf::TDH_MEM_PAGE_REMOVE, regs(GPA, TDR, 0, 0)),
                (leaf::TDH_MEM_SEPT_REMOVE, regs(GPA | 1, TDR, 0, 0)),
                (leaf::TDH_MR_EXTEND, regs(GPA + 0x100, TDR, 0, 0)),
            ]
        );
    }

    #[test]
    fn td_wide_leaves_pass_the_tdr_in_rcx() {
        let mut m = module();
        m.track().unwrap();
        m.mr_finalize().unwrap();
        m.vpflushdone().unwrap();
        m.key_freeid().unwrap();
        let tdr = regs(TDR, 0, 0, 0);
        assert_eq!(
            m.calls,
            vec![
                (leaf::TDH_MEM_TRACK, tdr),
                (leaf::TDH_MR_FINALIZE, tdr),
                (leaf::TDH_MNG_VPFLUSHDONE, tdr),
                (leaf::TDH_MNG_KEY_FREEID, tdr),
            ]
        );
    }

    #[test]
    fn page_and_vcpu_leaves() {
        let mut m = module();
        m.page_wbinvd(PAGE).unwrap();
        m.vp_flush(1).unwrap();
        m.cache_wb(false).unwrap();
        m.cache_wb(true).unwrap();
        m.page_reclaim(PAGE).unwrap();
        assert_eq!(
            m.calls,
            vec![
                // The page tagged with HKID 5 at bit 46.
                (leaf::TDH_PHYMEM_PAGE_WBINVD, regs(PAGE | 5 << 46, 0, 0, 0)),
                (leaf::TDH_VP_FLUSH, regs(0x14_0000, 0, 0, 0)),
                (leaf::TDH_PHYMEM_CACHE_WB, regs(0, 0, 0, 0)),
                (leaf::TDH_PHYMEM_CACHE_WB, regs(1, 0, 0, 0)),
                (leaf::TDH_PHYMEM_PAGE_RECLAIM, regs(PAGE, 0, 0, 0)),
            ]
        );
        assert_eq!(m.vcpu_count(), 2);
        assert_eq!(m.td_pages().tdr, TDR);
    }

    #[test]
    fn removals_return_the_page_without_hint_bits_and_errors_pass_through() {
        let mut m = module();
        m.reply = (Status::SUCCESS, regs(PAGE | 0x3, 0, 0, 0));
        assert_eq!(m.page_remove(GPA, Level::L4K), Ok(PAGE));
        assert_eq!(m.sept_remove(GPA, Level::L2M), Ok(PAGE));
        let busy = Status(Status::OPERAND_BUSY.0 | 0x92);
        m.reply = (busy, Regs::default());
        assert_eq!(m.page_aug(GPA, Level::L4K, PAGE), Err(busy));
        assert_eq!(m.page_remove(GPA, Level::L4K), Err(busy));
    }

    #[test]
    fn the_seamrr_mask_is_read_only_when_mtrrcap_reports_seamrr() {
        let unread = || -> u64 { panic!("IA32_SEAMRR_PHYS_MASK read without SEAMRR") };
        assert_eq!(
            seam_state(false, || panic!("no MTRRCAP without MTRRs"), unread),
            Err(Unavailable::NoMtrr)
        );
        // QEMU's CPUs: MTRRs, no SEAMRR.
        assert_eq!(
            seam_state(true, || 0x508, unread),
            Err(Unavailable::NoSeamrr)
        );
        assert_eq!(
            seam_state(true, || 0x508 | MTRRCAP_SEAMRR, || 0),
            Err(Unavailable::SeamrrDisabled)
        );
        assert_eq!(
            seam_state(true, || MTRRCAP_SEAMRR, || SEAMRR_PHYS_MASK_ENABLED),
            Ok(())
        );
    }
}
