//! The SNP page states the firmware derives from an RMP entry (AMD-ASPFW `sev_rmp.h`,
//! "6.2 Page States"; spec digest D.6).

use crate::sev::rmp::RmpEntry;

/// A page's state as the firmware classifies it. HV-Fixed and Firmware-IOMMU are
/// left out: the RMP model cannot represent them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnpPageState {
    /// Not assigned.
    Hypervisor,
    /// Assigned, ASID 0, immutable, GPA 0, no VMSA bit: the firmware's own page.
    Firmware,
    /// A Firmware page with the VMSA bit: a guest context page.
    Context,
    /// Assigned, ASID 0, immutable, with a GPA (the firmware's marker for metadata).
    Metadata,
    /// Assigned, ASID 0, mutable: reclaimed, for RMPUPDATE to take back.
    Reclaim,
    /// A guest's page waiting for SNP_LAUNCH_UPDATE (immutable, not validated).
    PreGuest,
    /// Immutable and validated (a swapped-in page).
    PreSwap,
    GuestInvalid,
    GuestValid,
}

/// The state of the page `entry` governs.
pub fn page_state(entry: &RmpEntry) -> SnpPageState {
    use SnpPageState::*;
    match (entry.assigned, entry.asid, entry.immutable, entry.validated) {
        (false, ..) => Hypervisor,
        (true, 0, false, _) => Reclaim,
        (true, 0, true, _) if entry.gpa != 0 => Metadata,
        (true, 0, true, _) if entry.vmsa => Context,
        (true, 0, true, _) => Firmware,
        (true, _, true, false) => PreGuest,
        (true, _, true, true) => PreSwap,
        (true, _, false, false) => GuestInvalid,
        (true, _, false, true) => GuestValid,
    }
}
