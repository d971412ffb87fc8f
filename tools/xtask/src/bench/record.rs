//! What one benchmark run reported: the hypervisor's entry TSC (its defmt log), the
//! workload's `bench: <key>=<u64>` console lines and the hypervisor's memory counters.

use std::collections::BTreeMap;

/// The raw numbers of one run, as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `entry tsc=<u64>`, logged at the hypervisor's entry.
    pub entry_tsc: Option<u64>,
    /// The workload's `bench: <key>=<u64>` lines.
    pub values: BTreeMap<String, u64>,
    /// The `key=value` pairs of the `cloister: memory: ...` line.
    pub memory: BTreeMap<String, u64>,
}

const BENCH_MARK: &str = "bench: ";
const ENTRY_MARK: &str = "entry tsc=";
const MEMORY_PREFIX: &str = "cloister: memory: ";

impl Record {
    /// Read a run's console text and decoded log lines. A `bench:` line without `=` is
    /// commentary and skipped; one whose value is not a whole number, or a key printed
    /// twice with different values, is an error.
    pub fn parse<'a>(
        console: &str,
        log: impl IntoIterator<Item = &'a str>,
    ) -> Result<Record, String> {
        let mut record = Record {
            entry_tsc: log.into_iter().find_map(entry_tsc),
            ..Record::default()
        };
        for line in console.lines().map(str::trim_end) {
            if let Some(pairs) = line.trim_start().strip_prefix(MEMORY_PREFIX) {
                record.memory = memory_counters(pairs)?;
            } else if let Some(at) = line.find(BENCH_MARK) {
                let Some((key, value)) = line[at + BENCH_MARK.len()..].split_once('=') else {
                    continue;
                };
                let (key, value) = (key.trim(), value.trim());
                let value = number(value).ok_or_else(|| {
                    format!("`bench: {key}={value}`: the value is not a whole number")
                })?;
                match record.values.insert(key.to_owned(), value) {
                    Some(earlier) if earlier != value => {
                        return Err(format!(
                            "`bench: {key}=` printed twice, with {earlier} and {value}"
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(record)
    }
}

/// The number after `entry tsc=` in a log line's text.
fn entry_tsc(text: &str) -> Option<u64> {
    let at = text.find(ENTRY_MARK)? + ENTRY_MARK.len();
    let digits = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    number(&digits[..end])
}

/// `launch_prepared=5 fault_prepared=65 ...`; every pair must have a whole number.
fn memory_counters(pairs: &str) -> Result<BTreeMap<String, u64>, String> {
    pairs
        .split_whitespace()
        .map(|pair| {
            pair.split_once('=')
                .and_then(|(key, value)| Some((key.to_owned(), number(value)?)))
                .ok_or_else(|| format!("memory line: {pair:?} is not `counter=number`"))
        })
        .collect()
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
cloister 0.1.0: booted via PVH on qemu-x86_64
[bench-exits] bench: null_hypercall_ticks=91\r
[bench-exits] bench: fault_4k_ticks=2210
[bench-exits] bench: measuring conversions
[bench-exits] bench: convert_batched_exits_per_gib=1
cloister: memory: launch_prepared=5 fault_prepared=1029 refaults=512 huge_maps=1 prepared=1034 metadata_bytes=4096 scrub_ticks=1551000 table_pages=9
cloister: workload 'bench-exits' exited 0; exits=9000 npf=1541 hypercalls=7000
";

    #[test]
    fn reads_bench_lines_memory_counters_and_the_entry_tsc() {
        let log = ["cloister 0.1.0 starting", "entry tsc=123456", "entry tsc=9"];
        let record = Record::parse(CONSOLE, log).unwrap();
        assert_eq!(record.entry_tsc, Some(123456));
        assert_eq!(
            record.values,
            BTreeMap::from([
                ("null_hypercall_ticks".to_owned(), 91),
                ("fault_4k_ticks".to_owned(), 2210),
                ("convert_batched_exits_per_gib".to_owned(), 1),
            ])
        );
        assert_eq!(record.memory["scrub_ticks"], 1551000);
        assert_eq!(record.memory["launch_prepared"], 5);
        assert_eq!(record.memory.len(), 8);
    }

    #[test]
    fn the_entry_tsc_may_be_followed_by_more_text() {
        assert_eq!(entry_tsc("entry tsc=77, cr4=0x20"), Some(77));
        assert_eq!(entry_tsc("hypervisor entry tsc=5"), Some(5));
        assert_eq!(entry_tsc("entry tsc="), None);
        assert_eq!(entry_tsc("entry at 0x100000"), None);
    }

    #[test]
    fn nothing_printed_is_nothing_recorded() {
        let record = Record::parse("", std::iter::empty()).unwrap();
        assert_eq!(record, Record::default());
    }

    #[test]
    fn malformed_values_are_errors() {
        let err = Record::parse("[w] bench: first_tsc=-3\n", []).unwrap_err();
        assert!(err.contains("`bench: first_tsc=-3`"), "{err}");
        let err = Record::parse("[w] bench: a=1\n[w] bench: a=2\n", []).unwrap_err();
        assert!(err.contains("printed twice, with 1 and 2"), "{err}");
        assert!(Record::parse("[w] bench: a=1\n[w] bench: a=1\n", []).is_ok());
        let err = Record::parse("cloister: memory: prepared=x\n", []).unwrap_err();
        assert!(err.contains("\"prepared=x\""), "{err}");
    }
}
