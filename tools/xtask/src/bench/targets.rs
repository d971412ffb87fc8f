//! The targets of issue 6, checked against the figures. A target whose figure was not
//! measured (`--quick`) is neither met nor missed: `None`.

use super::figures::Figures;
use super::suite::Pinning;

/// Launch instructions at 2 GiB / at 64 MiB, demand pinning: flat.
pub const LAUNCH_DEMAND_MAX_RATIO: f64 = 1.02;
/// The same ratio with upfront pinning: it must grow with memory (32x the memory).
pub const LAUNCH_UPFRONT_MIN_RATIO: f64 = 10.0;
pub const NULL_HYPERCALL_MAX_TICKS: u64 = 150;
pub const FAULT_4K_WITHOUT_SCRUB_MAX_TICKS: u64 = 600;
pub const REFAULT_MAX_TICKS: u64 = 300;
pub const METADATA_MAX_BYTES_PER_4K: f64 = 1.0;
/// 4 KiB pages in a GiB.
pub const PAGES_4K_PER_GIB: u64 = 1 << 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub launch_demand_flat: Option<bool>,
    pub launch_upfront_grows: Option<bool>,
    pub null_hypercall: Option<bool>,
    pub fault_4k_without_scrub: Option<bool>,
    pub refault: Option<bool>,
    pub metadata_per_4k: Option<bool>,
}

impl Targets {
    pub fn check(figures: &Figures) -> Targets {
        Targets {
            launch_demand_flat: figures
                .launch_ratio(Pinning::Demand)
                .map(|ratio| ratio <= LAUNCH_DEMAND_MAX_RATIO),
            launch_upfront_grows: figures
                .launch_ratio(Pinning::Upfront)
                .map(|ratio| ratio >= LAUNCH_UPFRONT_MIN_RATIO),
            null_hypercall: figures
                .null_hypercall_ticks
                .map(|ticks| ticks <= NULL_HYPERCALL_MAX_TICKS),
            fault_4k_without_scrub: figures
                .fault_4k
                .map(|fault| fault.without_scrub <= FAULT_4K_WITHOUT_SCRUB_MAX_TICKS),
            refault: figures
                .refault_ticks
                .map(|ticks| ticks <= REFAULT_MAX_TICKS),
            metadata_per_4k: metadata_bytes_per_4k(figures)
                .map(|bytes| bytes <= METADATA_MAX_BYTES_PER_4K),
        }
    }

    /// Each target by its JSON key, in table order.
    pub fn entries(&self) -> [(&'static str, Option<bool>); 6] {
        [
            ("launch_demand_flat", self.launch_demand_flat),
            ("launch_upfront_grows", self.launch_upfront_grows),
            ("null_hypercall", self.null_hypercall),
            ("fault_4k_without_scrub", self.fault_4k_without_scrub),
            ("refault", self.refault),
            ("metadata_per_4k", self.metadata_per_4k),
        ]
    }

    /// How many targets were checked, and how many of those were met.
    pub fn count(&self) -> (usize, usize) {
        let checked = self
            .entries()
            .iter()
            .filter(|(_, met)| met.is_some())
            .count();
        let met = self
            .entries()
            .iter()
            .filter(|(_, met)| *met == Some(true))
            .count();
        (checked, met)
    }
}

/// Page metadata per 4 KiB page of private memory.
pub fn metadata_bytes_per_4k(figures: &Figures) -> Option<f64> {
    figures
        .overhead
        .metadata_bytes
        .map(|per_gib| per_gib as f64 / PAGES_4K_PER_GIB as f64)
}

#[cfg(test)]
mod tests {
    use super::super::figures::tests::full_records;
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn plausible_figures_meet_every_target() {
        let figures = Figures::compute(&full_records(), None).unwrap();
        let targets = Targets::check(&figures);
        assert!(targets.entries().iter().all(|(_, met)| *met == Some(true)));
        assert_eq!(targets.count(), (6, 6));
        assert_eq!(metadata_bytes_per_4k(&figures), Some(0.25));
    }

    #[test]
    fn each_target_can_be_missed() {
        let mut figures = Figures::compute(&full_records(), None).unwrap();
        figures.launch.insert(
            (super::super::suite::MemorySize::G2, Pinning::Demand),
            2_000_000,
        );
        figures.null_hypercall_ticks = Some(151);
        figures.refault_ticks = Some(301);
        figures.overhead.metadata_bytes = Some(PAGES_4K_PER_GIB + 1);
        if let Some(fault) = &mut figures.fault_4k {
            fault.without_scrub = 601;
        }
        let targets = Targets::check(&figures);
        assert_eq!(targets.count(), (6, 1));
        assert_eq!(targets.launch_upfront_grows, Some(true));
    }

    #[test]
    fn unmeasured_targets_are_unknown() {
        let figures = Figures::compute(&BTreeMap::new(), None).unwrap();
        assert_eq!(Targets::check(&figures).count(), (0, 0));
    }
}
