//! The mirror table's entry format: Intel EPT, as the TDX module's S-EPT uses it.

use cloister_core::mmu::{PageSize, Perms, PteFormat};

const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
const EXECUTE: u64 = 1 << 2;
/// Memory type write-back, for leaves.
const MEMTYPE_WB: u64 = 6 << 3;
const HUGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

pub struct EptFormat;

impl PteFormat for EptFormat {
    /// Bits 52-57 are ignored by the CPU and free for software.
    const PINNED: u64 = 1 << 54;
    /// KVM's value (`SHADOW_NONPRESENT_VALUE | 0x5a0` without the suppress-#VE bit): no
    /// read/write/execute bit, so not present; no address bits.
    const FROZEN: u64 = 0x5a0;

    fn table(pa: u64) -> u64 {
        (pa & ADDRESS) | READ | WRITE | EXECUTE
    }

    fn leaf(pa: u64, size: PageSize, perms: Perms) -> u64 {
        let mut pte = (pa & ADDRESS) | READ | MEMTYPE_WB;
        if perms.write {
            pte |= WRITE;
        }
        if perms.execute {
            pte |= EXECUTE;
        }
        if size == PageSize::Size2M {
            pte |= HUGE;
        }
        pte
    }

    fn is_present(pte: u64) -> bool {
        pte & (READ | WRITE | EXECUTE) != 0
    }

    fn is_huge(pte: u64) -> bool {
        Self::is_present(pte) && pte & HUGE != 0
    }

    fn address(pte: u64) -> u64 {
        pte & ADDRESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_is_neither_present_nor_an_address() {
        assert!(!EptFormat::is_present(EptFormat::FROZEN));
        assert_eq!(EptFormat::address(EptFormat::FROZEN), 0);
        assert!(!EptFormat::is_present(0));
    }

    #[test]
    fn leaves_and_tables_round_trip() {
        let leaf = EptFormat::leaf(0x20_0000, PageSize::Size2M, Perms::ALL) | EptFormat::PINNED;
        assert!(EptFormat::is_present(leaf) && EptFormat::is_huge(leaf));
        assert!(EptFormat::is_pinned(leaf));
        assert_eq!(EptFormat::address(leaf), 0x20_0000);
        let table = EptFormat::table(0x5000);
        assert!(EptFormat::is_present(table) && !EptFormat::is_huge(table));
        assert_eq!(EptFormat::address(table), 0x5000);
    }
}
