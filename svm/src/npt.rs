//! Nested page-table entries: the long-mode page-table format, walked with the guest as
//! a user-mode access (so every level needs U/S).

use cloister_core::mmu::{PageSize, Perms, PteFormat};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
/// Nested walks are user accesses: without U/S the guest faults on its first walk.
const USER: u64 = 1 << 2;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

pub struct NptFormat;

impl PteFormat for NptFormat {
    /// Bits 52-62 are available to software in NPT entries.
    const PINNED: u64 = 1 << 52;
    /// Not present (P clear), and no entry Cloister writes has bit 53 set.
    const FROZEN: u64 = 1 << 53;
    fn table(pa: u64) -> u64 {
        (pa & ADDRESS) | PRESENT | WRITABLE | USER
    }

    fn leaf(pa: u64, size: PageSize, perms: Perms) -> u64 {
        let mut pte = (pa & ADDRESS) | PRESENT | USER;
        if perms.write {
            pte |= WRITABLE;
        }
        if !perms.execute {
            pte |= NO_EXECUTE;
        }
        if size == PageSize::Size2M {
            pte |= HUGE;
        }
        pte
    }

    fn is_present(pte: u64) -> bool {
        pte & PRESENT != 0
    }

    fn is_huge(pte: u64) -> bool {
        pte & HUGE != 0
    }

    fn address(pte: u64) -> u64 {
        pte & ADDRESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_user_bit_and_permissions() {
        let leaf = NptFormat::leaf(
            0x20_0000,
            PageSize::Size2M,
            Perms {
                write: false,
                execute: false,
            },
        );
        assert_eq!(leaf, 0x20_0000 | PRESENT | USER | HUGE | NO_EXECUTE);
        assert!(NptFormat::is_huge(leaf) && NptFormat::is_present(leaf));
        assert_eq!(NptFormat::address(leaf), 0x20_0000);
        assert_eq!(NptFormat::table(0x5000), 0x5007);
        assert_eq!(
            NptFormat::leaf(0x5000, PageSize::Size4K, Perms::ALL),
            0x5007
        );
    }
}
