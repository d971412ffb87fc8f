//! The real RMP instructions. Compiled into the image, never run: QEMU emulates no
//! SEV-SNP, so everything above [`Rmp`] is tested against [`super::RmpModel`].
//!
//! Encodings and operands as Linux issues them (`arch/x86/virt/svm/sev.c`: `rmpupdate`,
//! `psmash`, `get_rmpentry`); binutils >= 2.36 knows the mnemonics, we emit bytes.

use super::{Rmp, RmpEntry, RmpError, RmpReadError, RmpSize, RmpState};
use core::arch::asm;

/// RMPUPDATE's RCX operand: Linux `struct rmp_state` (16 bytes).
#[repr(C)]
struct RawState {
    gpa: u64,
    assigned: u8,
    pagesize: u8,
    immutable: u8,
    rsvd: u8,
    asid: u32,
}

const _: () = assert!(size_of::<RawState>() == 16);

/// The first 16 KiB of the RMP is CPU bookkeeping (Linux RMPTABLE_CPU_BOOKKEEPING_SZ).
const BOOKKEEPING: u64 = 0x4000;

/// RMPUPDATE and PSMASH on this CPU, and reads of its RMP when the caller hands over a
/// table in the one raw format we know.
///
/// Reading an entry honestly has no architectural way here: RMPREAD (Zen 5 and later)
/// reports neither the validated nor the VMSA bit, and the in-memory table format is
/// model-specific. So [`Rmp::entry`] reads a table given to
/// [`RmpInstructions::with_raw_table`] (Family 19h, Zen 3/4, the layout Linux reads
/// without RMPREAD) and returns [`RmpReadError::NoTable`] otherwise.
pub struct RmpInstructions {
    /// Address of the RMP's first entry (after the bookkeeping), and its entry count.
    table: Option<(usize, u64)>,
}

impl RmpInstructions {
    /// # Safety
    ///
    /// SEV-SNP is enabled on every CPU this runs on (SYSCFG.SNP_EN, RMP initialized by
    /// the firmware's SNP_INIT); otherwise RMPUPDATE and PSMASH raise #UD. The caller
    /// only ever makes private frames that the hypervisor no longer uses as ordinary
    /// memory, through no mapping of 2 MiB or more either: once a frame is assigned, a
    /// host write to it is an RMP #PF and a read returns ciphertext.
    pub const unsafe fn new() -> Self {
        Self { table: None }
    }

    /// # Safety
    ///
    /// As [`RmpInstructions::new`]; and `rmp` is the address at which the whole RMP
    /// (RMP_BASE to RMP_END, MSRs 0xC001_0132/0xC001_0133, `len` bytes) stays mapped
    /// for the life of the program, on a Family 19h CPU (whose raw entry format this
    /// decodes).
    pub unsafe fn with_raw_table(rmp: *const u8, len: u64) -> Self {
        let entries = len.saturating_sub(BOOKKEEPING) / 16;
        Self {
            table: Some((rmp as usize + BOOKKEEPING as usize, entries)),
        }
    }

    /// The low quadword of frame `pfn`'s raw entry (Linux decodes nothing from the high one).
    fn read_raw(&self, pfn: u64) -> Result<u64, RmpReadError> {
        let (base, entries) = self.table.ok_or(RmpReadError::NoTable)?;
        if pfn >= entries {
            return Err(RmpReadError::OutOfRange);
        }
        let entry = (base as *const [u64; 2]).wrapping_add(pfn as usize);
        // SAFETY: `pfn` is within the table, which stays mapped (constructor contract).
        // Volatile: the CPU changes entries behind our back.
        Ok(unsafe { entry.read_volatile()[0] })
    }
}

/// Decode the low quadword of a Family 19h raw entry (Linux `struct rmpentry_raw`:
/// assigned 0, pagesize 1, immutable 2, GPA 12..50, ASID 51..60, VMSA 61,
/// validated 62).
pub(super) fn decode_raw(lo: u64) -> RmpEntry {
    let bit = |n: u32| (lo >> n) & 1 != 0;
    RmpEntry {
        assigned: bit(0),
        size: if bit(1) {
            RmpSize::Size2M
        } else {
            RmpSize::Size4K
        },
        immutable: bit(2),
        gpa: lo & 0x0007_ffff_ffff_f000,
        asid: ((lo >> 51) & 0x3ff) as u32,
        vmsa: bit(61),
        validated: bit(62),
    }
}

impl Rmp for RmpInstructions {
    fn rmpupdate(&mut self, pa: u64, state: RmpState) -> Result<(), RmpError> {
        let input = RawState {
            gpa: state.gpa,
            assigned: state.assigned.into(),
            pagesize: (state.size == RmpSize::Size2M).into(),
            immutable: state.immutable.into(),
            rsvd: 0,
            asid: state.asid,
        };
        let eax: u64;
        // SAFETY: SNP is on (constructor contract). RMPUPDATE (F2 0F 01 FE) reads the
        // 16-byte state at RCX, which lives until it returns, writes only the RMP (never
        // Rust-visible memory) and returns its status in EAX; it touches no stack. The
        // frame's new owner is the caller's business (constructor contract).
        unsafe {
            asm!(
                ".byte 0xf2, 0x0f, 0x01, 0xfe",
                inout("rax") pa => eax,
                in("rcx") &input as *const RawState,
                options(nostack),
            );
        }
        RmpError::from_rmpupdate(eax as u32)
    }

    fn psmash(&mut self, pa: u64) -> Result<(), RmpError> {
        let eax: u64;
        // SAFETY: SNP is on (constructor contract). PSMASH (F3 0F 01 FF) splits the
        // 2 MiB entry at RAX, changes no ownership, returns its status in EAX and
        // touches no stack.
        unsafe {
            asm!(
                ".byte 0xf3, 0x0f, 0x01, 0xff",
                inout("rax") pa => eax,
                options(nostack),
            );
        }
        RmpError::from_psmash(eax as u32)
    }

    fn entry(&self, pa: u64) -> Result<RmpEntry, RmpReadError> {
        let pfn = pa >> 12;
        let own = self.read_raw(pfn)?;
        // The entry at the 2 MiB-aligned frame is authoritative when it is a 2 MiB
        // entry (Linux `__snp_lookup_rmpentry`).
        let large = decode_raw(self.read_raw(pfn & !511)?);
        if large.size == RmpSize::Size2M {
            return Ok(large);
        }
        Ok(decode_raw(own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn raw_table_reads_the_governing_entry() {
        // 16 KiB of bookkeeping, then 1024 entries: a 2 MiB entry at frame 512.
        let mut rmp = vec![[0u64; 2]; 1024 + 1024];
        let assigned_2m = 1 | 2 | 0x4000_0000 | 7 << 51 | 1 << 62;
        rmp[1024 + 512][0] = assigned_2m;
        rmp[1024 + 3][0] = 1 | 0x5000 | 9 << 51;
        let len = (rmp.len() * 16) as u64;
        // SAFETY: only `entry` is called, which reads the vector; it outlives `rmp_ins`.
        let rmp_ins = unsafe { RmpInstructions::with_raw_table(rmp.as_ptr().cast(), len) };
        let at = |pa| rmp_ins.entry(pa);
        assert_eq!(at(0x3000).map(|e| (e.asid, e.gpa)), Ok((9, 0x5000)));
        let inside = at(0x20_0000 + 17 * 0x1000).unwrap();
        assert_eq!(inside, decode_raw(assigned_2m));
        assert!(inside.validated && inside.size == RmpSize::Size2M);
        assert_eq!(at(0x40_0000), Err(RmpReadError::OutOfRange));
        // SAFETY: never used for an instruction.
        let none = unsafe { RmpInstructions::new() };
        assert_eq!(none.entry(0), Err(RmpReadError::NoTable));
    }
}
