//! `--json FILE`: the figures under stable keys (docs/performance.md lists them). Every
//! key is always there; a figure that was not measured (`--quick`) is `null`.

use super::figures::{Convert, Figures};
use super::record::Record;
use super::suite::{Bench, MemorySize, Pinning};
use super::targets::Targets;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub fn document(
    figures: &Figures,
    targets: &Targets,
    records: &BTreeMap<Bench, Record>,
    quick: bool,
) -> Value {
    let launch: Map<String, Value> = MemorySize::ALL
        .into_iter()
        .map(|size| {
            let by_pinning: Map<String, Value> = Pinning::ALL
                .into_iter()
                .map(|pinning| {
                    let value = figures.launch.get(&(size, pinning)).copied();
                    (pinning.as_str().to_owned(), json!(value))
                })
                .collect();
            (size.as_str().to_owned(), Value::Object(by_pinning))
        })
        .collect();
    let convert = |c: Option<Convert>| {
        json!({
            "ticks_per_mib": c.map(|c| c.ticks_per_mib),
            "exits_per_gib": c.map(|c| c.exits_per_gib),
        })
    };
    let fault = figures.fault_4k;
    let targets: Map<String, Value> = targets
        .entries()
        .into_iter()
        .map(|(key, met)| (key.to_owned(), json!(met)))
        .collect();
    let runs: Map<String, Value> = records
        .iter()
        .map(|(bench, record)| {
            let run = json!({
                "entry_tsc": record.entry_tsc,
                "bench": record.values,
                "memory": record.memory,
            });
            (bench.name(), run)
        })
        .collect();
    json!({
        "quick": quick,
        "launch": launch,
        "launch_ratio_2g_over_64m": {
            "demand": figures.launch_ratio(Pinning::Demand),
            "upfront": figures.launch_ratio(Pinning::Upfront),
        },
        "null_hypercall_ticks": figures.null_hypercall_ticks,
        "fault_4k_ticks": {
            "with_scrub": fault.map(|f| f.with_scrub),
            "without_scrub": fault.map(|f| f.without_scrub),
            "scrub_per_frame": fault.map(|f| f.scrub_per_frame),
        },
        "fault_2m_ticks": figures.fault_2m_ticks,
        "refault_ticks": figures.refault_ticks,
        "convert": {
            "batched": convert(figures.convert_batched),
            "single": convert(figures.convert_single),
        },
        "image": {
            "file_bytes": figures.image.map(|i| i.file_bytes),
            "memory_bytes": figures.image.map(|i| i.memory_bytes),
        },
        "overhead_per_gib": {
            "metadata_bytes": figures.overhead.metadata_bytes,
            "tables_4k_bytes": figures.overhead.tables_4k_bytes,
            "tables_2m_bytes": figures.overhead.tables_2m_bytes,
        },
        "targets": targets,
        "runs": runs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::figures::tests::full_records;
    use super::super::image_size::ImageSize;
    use super::*;

    /// Every key path to a leaf, as `a.b.c`, leaving out the raw `runs`.
    fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    if prefix.is_empty() && key == "runs" {
                        continue;
                    }
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    leaf_paths(value, &path, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    fn paths(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        leaf_paths(value, "", &mut out);
        out.sort();
        out
    }

    #[test]
    fn the_full_document() {
        let records = full_records();
        let image = ImageSize {
            file_bytes: 80_000,
            memory_bytes: 1_400_000,
        };
        let figures = Figures::compute(&records, Some(image)).unwrap();
        let targets = Targets::check(&figures);
        let doc = document(&figures, &targets, &records, false);
        assert_eq!(doc["launch"]["64m"]["demand"], 1_000_640);
        assert_eq!(doc["launch"]["2g"]["upfront"], 1_106_920_000u64);
        assert_eq!(doc["null_hypercall_ticks"], 90);
        assert_eq!(doc["fault_4k_ticks"]["without_scrub"], 560);
        assert_eq!(doc["fault_2m_ticks"], 1_100_000);
        assert_eq!(doc["convert"]["single"]["exits_per_gib"], 256);
        assert_eq!(doc["image"]["file_bytes"], 80_000);
        assert_eq!(doc["overhead_per_gib"]["tables_4k_bytes"], 2_101_248);
        assert_eq!(doc["targets"]["metadata_per_4k"], true);
        assert_eq!(doc["runs"]["exits"]["bench"]["fault_4k_count"], 1024);
        assert_eq!(doc["runs"]["exits"]["memory"]["scrub_ticks"], 9_113_000);
        assert_eq!(doc["runs"]["launch-2g-demand"]["entry_tsc"], 5000);
        assert!(paths(&doc).iter().all(|path| {
            let mut value = &doc;
            for key in path.split('.') {
                value = &value[key];
            }
            !value.is_null()
        }));
    }

    #[test]
    fn the_keys_are_the_same_with_or_without_measurements() {
        let records = full_records();
        let figures = Figures::compute(&records, None).unwrap();
        let full = document(&figures, &Targets::check(&figures), &records, false);
        let empty = Figures::compute(&BTreeMap::new(), None).unwrap();
        let quick = document(&empty, &Targets::check(&empty), &BTreeMap::new(), true);
        assert_eq!(paths(&full), paths(&quick));
        assert_eq!(
            paths(&full),
            [
                "convert.batched.exits_per_gib",
                "convert.batched.ticks_per_mib",
                "convert.single.exits_per_gib",
                "convert.single.ticks_per_mib",
                "fault_2m_ticks",
                "fault_4k_ticks.scrub_per_frame",
                "fault_4k_ticks.with_scrub",
                "fault_4k_ticks.without_scrub",
                "image.file_bytes",
                "image.memory_bytes",
                "launch.2g.demand",
                "launch.2g.upfront",
                "launch.512m.demand",
                "launch.512m.upfront",
                "launch.64m.demand",
                "launch.64m.upfront",
                "launch_ratio_2g_over_64m.demand",
                "launch_ratio_2g_over_64m.upfront",
                "null_hypercall_ticks",
                "overhead_per_gib.metadata_bytes",
                "overhead_per_gib.tables_2m_bytes",
                "overhead_per_gib.tables_4k_bytes",
                "quick",
                "refault_ticks",
                "targets.fault_4k_without_scrub",
                "targets.launch_demand_flat",
                "targets.launch_upfront_grows",
                "targets.metadata_per_4k",
                "targets.null_hypercall",
                "targets.refault",
            ]
        );
        assert_eq!(quick["quick"], true);
        assert!(quick["launch"]["64m"]["demand"].is_null());
        assert!(quick["targets"]["refault"].is_null());
        assert_eq!(quick["overhead_per_gib"]["tables_2m_bytes"], 4096);
    }
}
