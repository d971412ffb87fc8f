//! RMPADJUST: a guest running at one VMPL changes what a less privileged VMPL may do
//! with one of its pages, and (at VMPL0 only) whether the page is a VMSA.
//!
//! Sources: RDX layout and result codes from spec digest D.2 (COCONUT-SVSM); the check
//! order and the permission rules from the RMP specification in microsoft/verismo
//! (`rmpadjust`: target VMPL not above the current one is FAIL_PERMISSION, a page that
//! is not the guest's at that GPA is a nested page fault, an unvalidated page is not
//! adjusted, a 2 MiB request on a 4 KiB entry is FAIL_SIZEMISMATCH, and the new mask
//! must be a subset of the current VMPL's); "the VMSA change is only made when running
//! at VMPL0 and is ignored otherwise" from AMD's OVMF (`SevSnpRmpAdjust`). What
//! RMPUPDATE leaves, VMPL0 with every permission and the others none, is also
//! verismo's (`rmp_perm_init`), and the permission bits are the RMP entry's
//! (amd/AMD-ASPFW `sev_rmp.h`, `vmpl_perm_mask_t`). FAIL_INPUT for a target VMPL
//! above 3 or for reserved RDX bits is **[inference]**.

use super::{RmpFault, RmpFaultReason, RmpModel, RmpSize, frames_of, ownership_fault};

/// RDX bit 16: make the page a VMSA (or, clear, not one).
pub const RMPADJUST_VMSA: u64 = 1 << 16;

/// RDX bits that carry nothing: 13-15 and 17-63 **[inference]**.
const RDX_RESERVED: u64 = !(0xff | 0x1f << 8 | RMPADJUST_VMSA);

/// The permission masks of one RMP entry, one byte per VMPL (0 to 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmplPermissions(pub [u8; 4]);

impl VmplPermissions {
    pub const READ: u8 = 1 << 0;
    pub const WRITE: u8 = 1 << 1;
    pub const EXECUTE_USER: u8 = 1 << 2;
    pub const EXECUTE_SUPERVISOR: u8 = 1 << 3;
    pub const SUPERVISOR_SHADOW_STACK: u8 = 1 << 4;
    pub const ALL: u8 = 0x1f;

    /// What every RMPUPDATE leaves.
    pub const RESET: Self = Self([Self::ALL, 0, 0, 0]);

    pub const fn vmpl(self, vmpl: u8) -> u8 {
        self.0[vmpl as usize]
    }
}

/// RDX for RMPADJUST: the target VMPL, its new permission mask, and the VMSA bit.
pub const fn rmpadjust_rdx(target_vmpl: u8, perms: u8, vmsa: bool) -> u64 {
    target_vmpl as u64 | (perms as u64) << 8 | if vmsa { RMPADJUST_VMSA } else { 0 }
}

/// RMPADJUST failures: a status in RAX, or a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpadjustError {
    /// 1: misaligned page, target VMPL above 3, or reserved RDX bits.
    FailInput,
    /// 2: the target VMPL is not less privileged than the current one, or the new mask
    /// grants what the current VMPL does not have.
    FailPermission,
    /// 6: a 2 MiB RMPADJUST of a page with 4 KiB entries.
    FailSizeMismatch,
    /// No status: a nested page fault to the hypervisor (not the guest's page at that
    /// GPA, or 4 KiB inside a 2 MiB entry: SIZEM), or #VC in the guest for a page it
    /// has not validated ([`RmpFaultReason::NotValidated`]).
    Fault(RmpFault),
}

impl RmpadjustError {
    /// RAX, for the failures the guest sees as a status.
    pub const fn code(self) -> Option<u32> {
        match self {
            Self::FailInput => Some(1),
            Self::FailPermission => Some(2),
            Self::FailSizeMismatch => Some(6),
            Self::Fault(_) => None,
        }
    }
}

impl RmpModel {
    /// The VMPL permission masks of the frame at `pa`.
    pub fn vmpl_permissions(&self, pa: u64) -> VmplPermissions {
        self.perms
            .get(&(pa >> 12))
            .copied()
            .unwrap_or(VmplPermissions::RESET)
    }

    /// Guest RMPADJUST from a vCPU of `asid` running at `vmpl`, of the page at `gpa`
    /// that its NPT maps to `pa`, with RDX `rdx` (see [`rmpadjust_rdx`]).
    pub fn rmpadjust(
        &mut self,
        asid: u32,
        vmpl: u8,
        gpa: u64,
        pa: u64,
        size: RmpSize,
        rdx: u64,
    ) -> Result<(), RmpadjustError> {
        assert!(vmpl <= 3, "a vCPU runs at VMPL 0 to 3");
        self.counts.rmpadjusts += 1;
        let target = (rdx & 0xff) as u8;
        let perms = (rdx >> 8) as u8;
        let aligned = gpa.is_multiple_of(size.bytes()) && pa.is_multiple_of(size.bytes());
        if !aligned || target > 3 || rdx & RDX_RESERVED != 0 {
            return Err(RmpadjustError::FailInput);
        }
        if target <= vmpl {
            return Err(RmpadjustError::FailPermission);
        }
        let entry = self.lookup(pa);
        let fault = |reason| RmpadjustError::Fault(RmpFault { pa, reason });
        if let Some(reason) = ownership_fault(&entry, asid, gpa, pa) {
            return Err(fault(reason));
        }
        // A page only the firmware may touch is not the guest's yet **[inference]**.
        if entry.immutable {
            return Err(fault(RmpFaultReason::Immutable));
        }
        if !entry.validated {
            return Err(fault(RmpFaultReason::NotValidated));
        }
        match (size, entry.size) {
            (RmpSize::Size2M, RmpSize::Size4K) => return Err(RmpadjustError::FailSizeMismatch),
            (RmpSize::Size4K, RmpSize::Size2M) => return Err(fault(RmpFaultReason::SizeMismatch)),
            _ => {}
        }
        let current = self.vmpl_permissions(pa);
        if perms & !current.vmpl(vmpl) != 0 {
            return Err(RmpadjustError::FailPermission);
        }
        for pfn in frames_of(pa & !(size.bytes() - 1), size) {
            let mut new = self
                .perms
                .get(&pfn)
                .copied()
                .unwrap_or(VmplPermissions::RESET);
            new.0[target as usize] = perms;
            self.perms.insert(pfn, new);
        }
        if vmpl == 0 {
            let vmsa = rdx & RMPADJUST_VMSA != 0;
            self.update_entry(pa, |e| e.vmsa = vmsa);
        }
        Ok(())
    }
}
