//! The table `cargo xtask bench` prints: one row per figure, with its target if it has
//! one. A figure that was not measured (`--quick`) shows `-`.

use super::figures::{Convert, Figures};
use super::suite::{MemorySize, Pinning};
use super::targets::{self, Targets};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub figure: String,
    pub value: Option<String>,
    pub unit: &'static str,
    pub target: Option<String>,
    /// `None` with a target: not measured.
    pub met: Option<bool>,
}

fn row(figure: impl Into<String>, value: Option<String>, unit: &'static str) -> Row {
    Row {
        figure: figure.into(),
        value,
        unit,
        target: None,
        met: None,
    }
}

fn with_target(mut row: Row, target: String, met: Option<bool>) -> Row {
    row.target = Some(target);
    row.met = met;
    row
}

pub fn rows(figures: &Figures, targets: &Targets) -> Vec<Row> {
    let mut rows = Vec::new();
    for size in MemorySize::ALL {
        for pinning in Pinning::ALL {
            rows.push(row(
                format!("launch, {}, {}", size.label(), pinning.as_str()),
                figures.launch.get(&(size, pinning)).map(u64::to_string),
                "instructions",
            ));
        }
    }
    let ratio = |pinning| figures.launch_ratio(pinning).map(|r| format!("{r:.3}"));
    rows.push(with_target(
        row(
            "launch, 2 GiB / 64 MiB, demand",
            ratio(Pinning::Demand),
            "ratio",
        ),
        format!("<= {}", targets::LAUNCH_DEMAND_MAX_RATIO),
        targets.launch_demand_flat,
    ));
    rows.push(with_target(
        row(
            "launch, 2 GiB / 64 MiB, upfront",
            ratio(Pinning::Upfront),
            "ratio",
        ),
        format!(">= {}", targets::LAUNCH_UPFRONT_MIN_RATIO),
        targets.launch_upfront_grows,
    ));
    let ticks = |value: Option<u64>| value.map(|v| v.to_string());
    rows.push(with_target(
        row(
            "null hypercall round trip",
            ticks(figures.null_hypercall_ticks),
            "ticks",
        ),
        format!("<= {}", targets::NULL_HYPERCALL_MAX_TICKS),
        targets.null_hypercall,
    ));
    let fault = figures.fault_4k;
    rows.push(row(
        "4 KiB first-touch fault, with scrub",
        ticks(fault.map(|f| f.with_scrub)),
        "ticks",
    ));
    rows.push(with_target(
        row(
            "4 KiB first-touch fault, without scrub",
            ticks(fault.map(|f| f.without_scrub)),
            "ticks",
        ),
        format!("<= {}", targets::FAULT_4K_WITHOUT_SCRUB_MAX_TICKS),
        targets.fault_4k_without_scrub,
    ));
    rows.push(row(
        "scrub of one 4 KiB frame (estimate)",
        ticks(fault.map(|f| f.scrub_per_frame)),
        "ticks",
    ));
    rows.push(row(
        "2 MiB first-touch fault, with scrub",
        ticks(figures.fault_2m_ticks),
        "ticks",
    ));
    rows.push(with_target(
        row("refault after a zap", ticks(figures.refault_ticks), "ticks"),
        format!("<= {}", targets::REFAULT_MAX_TICKS),
        targets.refault,
    ));
    for (how, convert) in [
        ("batched", figures.convert_batched),
        ("one range per call", figures.convert_single),
    ] {
        let field = |f: fn(&Convert) -> u64| convert.as_ref().map(|c| f(c).to_string());
        rows.push(row(
            format!("conversion, {how}"),
            field(|c| c.ticks_per_mib),
            "ticks/MiB",
        ));
        rows.push(row(
            format!("conversion, {how}"),
            field(|c| c.exits_per_gib),
            "exits/GiB",
        ));
    }
    let image = figures.image;
    rows.push(row(
        "image, loaded from the file",
        image.map(|i| i.file_bytes.to_string()),
        "bytes",
    ));
    rows.push(row(
        "image, in memory",
        image.map(|i| i.memory_bytes.to_string()),
        "bytes",
    ));
    let overhead = figures.overhead;
    rows.push(with_target(
        row(
            "page metadata per GiB of private memory",
            overhead.metadata_bytes.map(|b| b.to_string()),
            "bytes",
        ),
        format!(
            "<= {} (1 B per 4 KiB)",
            targets::METADATA_MAX_BYTES_PER_4K as u64 * targets::PAGES_4K_PER_GIB
        ),
        targets.metadata_per_4k,
    ));
    rows.push(row(
        "page tables per GiB, 4 KiB mappings",
        Some(overhead.tables_4k_bytes.to_string()),
        "bytes",
    ));
    rows.push(row(
        "page tables per GiB, 2 MiB mappings",
        Some(overhead.tables_2m_bytes.to_string()),
        "bytes",
    ));
    rows
}

/// The rows as aligned columns under a header, then the count of targets met.
pub fn render(rows: &[Row], targets: &Targets) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            let met = match (&row.target, row.met) {
                (None, _) => "",
                (Some(_), None) => "-",
                (Some(_), Some(true)) => "yes",
                (Some(_), Some(false)) => "NO",
            };
            [
                row.figure.clone(),
                row.value.clone().unwrap_or_else(|| "-".to_owned()),
                row.unit.to_owned(),
                row.target.clone().unwrap_or_default(),
                met.to_owned(),
            ]
        })
        .collect();
    let header = ["figure", "value", "unit", "target", "met"].map(str::to_owned);
    let mut widths = [0; 5];
    for line in std::iter::once(&header).chain(&cells) {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&cells) {
        let text = format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {:<w3$}  {}",
            line[0],
            line[1],
            line[2],
            line[3],
            line[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        out.push_str(text.trim_end());
        out.push('\n');
    }
    let (checked, met) = targets.count();
    out.push_str(&format!(
        "targets: {met} of {checked} measured met ({} not measured)",
        targets.entries().len() - checked
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::super::figures::tests::full_records;
    use super::*;
    use std::collections::BTreeMap;

    /// Each line's cells: the columns are at least two spaces apart.
    fn cells(text: &str) -> Vec<Vec<&str>> {
        text.lines()
            .map(|line| {
                line.split("  ")
                    .map(str::trim)
                    .filter(|cell| !cell.is_empty())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_full_table() {
        let figures = Figures::compute(&full_records(), None).unwrap();
        let targets = Targets::check(&figures);
        let text = render(&rows(&figures, &targets), &targets);
        let lines = cells(&text);
        assert_eq!(lines[0], ["figure", "value", "unit", "target", "met"]);
        assert_eq!(
            lines[1],
            ["launch, 64 MiB, demand", "1000640", "instructions"]
        );
        for row in [
            &[
                "launch, 2 GiB / 64 MiB, demand",
                "1.020",
                "ratio",
                "<= 1.02",
                "yes",
            ][..],
            &[
                "launch, 2 GiB / 64 MiB, upfront",
                "31.128",
                "ratio",
                ">= 10",
                "yes",
            ],
            &["null hypercall round trip", "90", "ticks", "<= 150", "yes"],
            &[
                "4 KiB first-touch fault, without scrub",
                "560",
                "ticks",
                "<= 600",
                "yes",
            ],
            &["refault after a zap", "250", "ticks", "<= 300", "yes"],
            &["conversion, one range per call", "256", "exits/GiB"],
            &[
                "page metadata per GiB of private memory",
                "65536",
                "bytes",
                "<= 262144 (1 B per 4 KiB)",
                "yes",
            ],
            &["page tables per GiB, 4 KiB mappings", "2101248", "bytes"],
            &["image, in memory", "-", "bytes"],
        ] {
            assert!(lines.iter().any(|line| line == row), "{row:?} in\n{text}");
        }
        assert_eq!(lines.len(), 1 + 23 + 1);
        assert_eq!(
            text.lines().last(),
            Some("targets: 6 of 6 measured met (0 not measured)")
        );
        // Values are right-aligned: every row's value column ends at the same place.
        let ends: Vec<usize> = text
            .lines()
            .take(24)
            .filter_map(|line| line.find(" instructions").or(line.find(" ticks")))
            .collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn unmeasured_figures_and_missed_targets_stand_out() {
        let mut figures = Figures::compute(&BTreeMap::new(), None).unwrap();
        figures.null_hypercall_ticks = Some(400);
        let targets = Targets::check(&figures);
        let text = render(&rows(&figures, &targets), &targets);
        let lines = cells(&text);
        let row = |figure: &str| lines.iter().find(|l| l[0] == figure).unwrap().clone();
        assert_eq!(
            row("null hypercall round trip"),
            ["null hypercall round trip", "400", "ticks", "<= 150", "NO"]
        );
        assert_eq!(
            row("refault after a zap"),
            ["refault after a zap", "-", "ticks", "<= 300", "-"]
        );
        assert!(
            text.ends_with("targets: 0 of 1 measured met (5 not measured)"),
            "{text}"
        );
    }
}
