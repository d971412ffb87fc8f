//! The figures `cargo xtask bench` reports, computed from the runs' raw numbers. A
//! figure whose run was not made (`--quick`) is `None`; a run that was made but lacks a
//! number is an error naming the run and the number.

use super::error::BenchError;
use super::image_size::ImageSize;
use super::record::Record;
use super::suite::{Bench, MemorySize, Pinning};
use std::collections::BTreeMap;

/// A nested page-table page: 512 eight-byte entries.
pub const TABLE_BYTES: u64 = 4096;
const ENTRIES_PER_TABLE: u64 = 512;
/// 1 GiB mapped with 4 KiB leaves takes 512 last-level tables (each maps 2 MiB) and the
/// one directory table above them; the upper levels are shared by the whole space.
pub const TABLES_4K_BYTES_PER_GIB: u64 = (ENTRIES_PER_TABLE + 1) * TABLE_BYTES;
/// 1 GiB mapped with 2 MiB leaves takes the one directory table.
pub const TABLES_2M_BYTES_PER_GIB: u64 = TABLE_BYTES;

/// The run whose scrub ticks per prepared frame estimate one 4 KiB scrub: it prepares
/// only 4 KiB frames and converts nothing. (The exits run's own scrub ticks also count
/// the scrubs of its conversions to shared, which are not prepares.)
pub const SCRUB_SOURCE: Bench = Bench::Launch(MemorySize::M64, Pinning::Demand);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault4k {
    pub with_scrub: u64,
    pub without_scrub: u64,
    /// The scrub's share: scrub ticks per prepared frame of the run that scrubs only
    /// for preparing ([`SCRUB_SOURCE`]).
    pub scrub_per_frame: u64,
}

/// Converting a range between private and shared, per MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Convert {
    pub ticks_per_mib: u64,
    pub exits_per_gib: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overhead {
    /// Page metadata per GiB of private memory (the 2 GiB demand launch's, halved).
    pub metadata_bytes: Option<u64>,
    pub tables_4k_bytes: u64,
    pub tables_2m_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Instructions from the hypervisor's entry to the workload's first instruction.
    pub launch: BTreeMap<(MemorySize, Pinning), u64>,
    pub null_hypercall_ticks: Option<u64>,
    pub fault_4k: Option<Fault4k>,
    pub fault_2m_ticks: Option<u64>,
    pub refault_ticks: Option<u64>,
    pub convert_batched: Option<Convert>,
    pub convert_single: Option<Convert>,
    pub image: Option<ImageSize>,
    pub overhead: Overhead,
}

impl Figures {
    pub fn compute(
        records: &BTreeMap<Bench, Record>,
        image: Option<ImageSize>,
    ) -> Result<Figures, BenchError> {
        let mut launch = BTreeMap::new();
        for (&bench, record) in records {
            if let Bench::Launch(size, pinning) = bench {
                launch.insert((size, pinning), launch_instructions(bench, record)?);
            }
        }
        let exits = records.get(&Bench::Exits);
        let from_exits = |key: &str| exits.map(|r| value(Bench::Exits, r, key)).transpose();
        let convert = |kind: &str| -> Result<Option<Convert>, BenchError> {
            let ticks = from_exits(&format!("convert_{kind}_ticks_per_mib"))?;
            let exits = from_exits(&format!("convert_{kind}_exits_per_gib"))?;
            Ok(ticks
                .zip(exits)
                .map(|(ticks_per_mib, exits_per_gib)| Convert {
                    ticks_per_mib,
                    exits_per_gib,
                }))
        };
        let metadata_bytes = records
            .get(&Bench::Launch(MemorySize::G2, Pinning::Demand))
            .map(|r| {
                memory(
                    Bench::Launch(MemorySize::G2, Pinning::Demand),
                    r,
                    "metadata_bytes",
                )
            })
            .transpose()?
            .map(|bytes| bytes / 2);
        Ok(Figures {
            launch,
            null_hypercall_ticks: from_exits("null_hypercall_ticks")?,
            fault_4k: exits
                .map(|exits| fault_4k(exits, records.get(&SCRUB_SOURCE)))
                .transpose()?,
            fault_2m_ticks: records
                .get(&Bench::Fault2m)
                .map(|r| value(Bench::Fault2m, r, "fault_2m_ticks"))
                .transpose()?,
            refault_ticks: from_exits("refault_ticks")?,
            convert_batched: convert("batched")?,
            convert_single: convert("single")?,
            image,
            overhead: Overhead {
                metadata_bytes,
                tables_4k_bytes: TABLES_4K_BYTES_PER_GIB,
                tables_2m_bytes: TABLES_2M_BYTES_PER_GIB,
            },
        })
    }

    /// Launch instructions at 2 GiB over those at 64 MiB.
    pub fn launch_ratio(&self, pinning: Pinning) -> Option<f64> {
        let small = *self.launch.get(&(MemorySize::M64, pinning))?;
        let large = *self.launch.get(&(MemorySize::G2, pinning))?;
        (small > 0).then(|| large as f64 / small as f64)
    }
}

fn launch_instructions(bench: Bench, record: &Record) -> Result<u64, BenchError> {
    let entry = record.entry_tsc.ok_or_else(|| {
        BenchError::output(
            bench,
            "no `entry tsc=` in the hypervisor's log (is hypervisor.log_level info or finer?)",
        )
    })?;
    let first = value(bench, record, "first_tsc")?;
    first.checked_sub(entry).ok_or_else(|| {
        BenchError::output(
            bench,
            format!(
                "the workload's first_tsc={first} is before the hypervisor's entry tsc={entry}"
            ),
        )
    })
}

/// The 4 KiB first-touch fault with and without its scrub. The scrub's share is the
/// scrub source run's scrub ticks spread evenly over every frame it prepared.
fn fault_4k(exits: &Record, scrub_source: Option<&Record>) -> Result<Fault4k, BenchError> {
    let with_scrub = value(Bench::Exits, exits, "fault_4k_ticks")?;
    let source = scrub_source.ok_or_else(|| {
        BenchError::output(
            Bench::Exits,
            format!("the 4 KiB fault without its scrub needs the {SCRUB_SOURCE} run too"),
        )
    })?;
    let scrub_ticks = memory(SCRUB_SOURCE, source, "scrub_ticks")?;
    let frames = memory(SCRUB_SOURCE, source, "launch_prepared")?
        + memory(SCRUB_SOURCE, source, "fault_prepared")?;
    let scrub_per_frame = (scrub_ticks + frames / 2).checked_div(frames).unwrap_or(0);
    Ok(Fault4k {
        with_scrub,
        without_scrub: with_scrub.saturating_sub(scrub_per_frame),
        scrub_per_frame,
    })
}

fn value(bench: Bench, record: &Record, key: &str) -> Result<u64, BenchError> {
    record.values.get(key).copied().ok_or_else(|| {
        BenchError::output(bench, format!("the workload printed no `bench: {key}=`"))
    })
}

fn memory(bench: Bench, record: &Record, key: &str) -> Result<u64, BenchError> {
    record.memory.get(key).copied().ok_or_else(|| {
        BenchError::output(
            bench,
            format!("the hypervisor's `cloister: memory:` line has no {key}="),
        )
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn record(
        entry_tsc: Option<u64>,
        values: &[(&str, u64)],
        memory: &[(&str, u64)],
    ) -> Record {
        let map = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|&(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>()
        };
        Record {
            entry_tsc,
            values: map(values),
            memory: map(memory),
        }
    }

    pub fn exits_record() -> Record {
        record(
            Some(1000),
            &[
                ("null_hypercall_ticks", 90),
                ("fault_4k_ticks", 2600),
                ("fault_4k_count", 1024),
                ("refault_ticks", 250),
                ("convert_batched_ticks_per_mib", 40000),
                ("convert_batched_exits_per_gib", 1),
                ("convert_single_ticks_per_mib", 90000),
                ("convert_single_exits_per_gib", 256),
            ],
            &[
                ("launch_prepared", 6),
                ("fault_prepared", 1030),
                ("metadata_bytes", 4096),
                // Conversions to shared scrub too: no use for a per-frame estimate.
                ("scrub_ticks", 9_113_000),
            ],
        )
    }

    /// Every run of the full suite, with plausible numbers.
    pub fn full_records() -> BTreeMap<Bench, Record> {
        let mut records = BTreeMap::new();
        for size in MemorySize::ALL {
            let entry = 5000;
            let demand = 1_000_000 + size.mib() * 10;
            let upfront = 1_000_000 + size.mib() * 540_000;
            let metadata = size.mib() * 64;
            for (pinning, first) in [(Pinning::Demand, demand), (Pinning::Upfront, upfront)] {
                records.insert(
                    Bench::Launch(size, pinning),
                    record(
                        Some(entry),
                        &[("first_tsc", entry + first)],
                        &[
                            ("metadata_bytes", metadata),
                            ("launch_prepared", 4),
                            ("fault_prepared", 1),
                            ("scrub_ticks", 10_200),
                        ],
                    ),
                );
            }
        }
        records.insert(Bench::Exits, exits_record());
        records.insert(
            Bench::Fault2m,
            record(Some(1), &[("fault_2m_ticks", 1_100_000)], &[]),
        );
        records
    }

    #[test]
    fn every_figure_of_the_full_suite() {
        let image = ImageSize {
            file_bytes: 300_000,
            memory_bytes: 2_400_000,
        };
        let figures = Figures::compute(&full_records(), Some(image)).unwrap();
        assert_eq!(
            figures.launch[&(MemorySize::M64, Pinning::Demand)],
            1_000_640
        );
        assert_eq!(
            figures.launch[&(MemorySize::G2, Pinning::Upfront)],
            1_106_920_000
        );
        assert_eq!(figures.launch.len(), 6);
        assert_eq!(figures.null_hypercall_ticks, Some(90));
        // launch-64m-demand: 10_200 scrub ticks over 5 prepared frames.
        assert_eq!(
            figures.fault_4k,
            Some(Fault4k {
                with_scrub: 2600,
                without_scrub: 560,
                scrub_per_frame: 2040
            })
        );
        assert_eq!(figures.fault_2m_ticks, Some(1_100_000));
        assert_eq!(figures.refault_ticks, Some(250));
        assert_eq!(
            figures.convert_single,
            Some(Convert {
                ticks_per_mib: 90000,
                exits_per_gib: 256
            })
        );
        assert_eq!(figures.image, Some(image));
        assert_eq!(
            figures.overhead,
            Overhead {
                metadata_bytes: Some(65536),
                tables_4k_bytes: 2_101_248,
                tables_2m_bytes: 4096
            }
        );
        let demand = figures.launch_ratio(Pinning::Demand).unwrap();
        assert!((demand - 1_020_480.0 / 1_000_640.0).abs() < 1e-9);
        assert!(figures.launch_ratio(Pinning::Upfront).unwrap() > 30.0);
    }

    #[test]
    fn runs_not_made_leave_their_figures_out() {
        let mut records = full_records();
        records.retain(|bench, _| {
            matches!(
                bench,
                Bench::Exits | Bench::Launch(MemorySize::M64, Pinning::Demand)
            )
        });
        let figures = Figures::compute(&records, None).unwrap();
        assert_eq!(figures.launch.len(), 1);
        assert_eq!(figures.launch_ratio(Pinning::Demand), None);
        assert_eq!(figures.fault_2m_ticks, None);
        assert_eq!(figures.overhead.metadata_bytes, None);
        assert!(figures.fault_4k.is_some());
        let figures = Figures::compute(&BTreeMap::new(), None).unwrap();
        assert_eq!(figures.null_hypercall_ticks, None);
        assert_eq!(figures.convert_batched, None);
    }

    #[test]
    fn a_missing_number_names_the_run_and_the_number() {
        let mut records = full_records();
        records
            .get_mut(&Bench::Exits)
            .unwrap()
            .values
            .remove("refault_ticks");
        let err = Figures::compute(&records, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "bench run exits: the workload printed no `bench: refault_ticks=`"
        );

        let mut records = full_records();
        records
            .get_mut(&SCRUB_SOURCE)
            .unwrap()
            .memory
            .remove("scrub_ticks");
        let err = Figures::compute(&records, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "bench run launch-64m-demand: the hypervisor's `cloister: memory:` line has no \
             scrub_ticks="
        );

        let mut records = full_records();
        records.remove(&SCRUB_SOURCE);
        let err = Figures::compute(&records, None).unwrap_err().to_string();
        assert!(err.contains("needs the launch-64m-demand run too"), "{err}");

        let mut records = full_records();
        let launch = Bench::Launch(MemorySize::M512, Pinning::Upfront);
        records.get_mut(&launch).unwrap().entry_tsc = None;
        let err = Figures::compute(&records, None).unwrap_err().to_string();
        assert!(
            err.starts_with("bench run launch-512m-upfront: no `entry tsc=`"),
            "{err}"
        );
    }

    #[test]
    fn a_first_tsc_before_the_entry_is_an_error() {
        let mut records = BTreeMap::new();
        let launch = Bench::Launch(MemorySize::M64, Pinning::Demand);
        records.insert(launch, record(Some(500), &[("first_tsc", 400)], &[]));
        let err = Figures::compute(&records, None).unwrap_err().to_string();
        assert!(
            err.contains("first_tsc=400 is before the hypervisor's entry tsc=500"),
            "{err}"
        );
    }

    #[test]
    fn the_table_overhead_follows_from_the_table_format() {
        assert_eq!(TABLES_4K_BYTES_PER_GIB, 513 * 4096);
        assert_eq!(TABLES_2M_BYTES_PER_GIB, 4096);
    }
}
