//! The hypervisor's last console line, which says how the workload ended:
//!
//! ```text
//! cloister: workload '<name>' exited <status>; exits=<n> npf=<n> hypercalls=<n>
//! cloister: workload '<name>' stopped: <reason>; exits=<n> npf=<n> hypercalls=<n>
//! ```

use std::fmt;

const PREFIX: &str = "cloister: workload '";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The workload's configured name.
    pub name: String,
    pub end: WorkloadEnd,
    /// VM exits handled during the run.
    pub exits: u64,
    /// Nested page faults among them.
    pub npf: u64,
    /// Hypercalls among them.
    pub hypercalls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadEnd {
    /// The workload called exit with this status.
    Exited(u32),
    /// The hypervisor stopped the workload (triple fault, access outside its memory...).
    Stopped(String),
}

impl Summary {
    /// Parse one console line. Text before the `cloister:` prefix is allowed, since a
    /// workload may leave an unterminated line before the hypervisor's summary.
    pub fn parse(line: &str) -> Option<Summary> {
        let line = line.trim_end_matches(['\r', '\n']);
        let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
        let (head, counters) = rest.rsplit_once("; ")?;
        let (exits, npf, hypercalls) = parse_counters(counters)?;
        let (name, end) = parse_end(head)?;
        Some(Summary {
            name: name.to_owned(),
            end,
            exits,
            npf,
            hypercalls,
        })
    }

    /// The summary in `console`, which is its last non-blank line.
    pub fn find(console: &str) -> Option<Summary> {
        console
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .and_then(Summary::parse)
    }
}

/// `<name>' exited <status>` or `<name>' stopped: <reason>`. The name comes from the
/// configuration and the reason from the hypervisor, so either may contain a quote:
/// an exit is recognised at the end, a stop at the first `' stopped: `.
fn parse_end(head: &str) -> Option<(&str, WorkloadEnd)> {
    if let Some((name, status)) = head.rsplit_once("' exited ")
        && let Some(status) = parse_status(status)
    {
        return Some((name, WorkloadEnd::Exited(status)));
    }
    let (name, reason) = head.split_once("' stopped: ")?;
    Some((name, WorkloadEnd::Stopped(reason.to_owned())))
}

fn parse_status(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_counters(text: &str) -> Option<(u64, u64, u64)> {
    let mut fields = text.split_whitespace();
    let mut field = |key: &str| {
        fields
            .next()?
            .strip_prefix(key)?
            .strip_prefix('=')?
            .parse::<u64>()
            .ok()
    };
    let counters = (field("exits")?, field("npf")?, field("hypercalls")?);
    fields.next().is_none().then_some(counters)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}' ", self.name)?;
        match &self.end {
            WorkloadEnd::Exited(status) => write!(f, "exited {status}")?,
            WorkloadEnd::Stopped(reason) => write!(f, "stopped: {reason}")?,
        }
        write!(
            f,
            "; exits={} npf={} hypercalls={}",
            self.exits, self.npf, self.hypercalls
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_exit() {
        let s = Summary::parse("cloister: workload 'demo' exited 0; exits=12 npf=5 hypercalls=7")
            .unwrap();
        assert_eq!(
            s,
            Summary {
                name: "demo".into(),
                end: WorkloadEnd::Exited(0),
                exits: 12,
                npf: 5,
                hypercalls: 7
            }
        );
    }

    #[test]
    fn parses_a_stop_with_its_reason() {
        let line = "cloister: workload 'oob' stopped: access outside its memory (gpa=0x100000000, write); exits=3 npf=2 hypercalls=0\r\n";
        let s = Summary::parse(line).unwrap();
        assert_eq!(s.name, "oob");
        assert_eq!(
            s.end,
            WorkloadEnd::Stopped("access outside its memory (gpa=0x100000000, write)".into())
        );
        assert_eq!((s.exits, s.npf, s.hypercalls), (3, 2, 0));
    }

    #[test]
    fn reasons_may_contain_semicolons_and_names_quotes() {
        let s =
            Summary::parse("cloister: workload 'it's' stopped: a; b; exits=1 npf=0 hypercalls=0")
                .unwrap();
        assert_eq!(
            (s.name.as_str(), s.end),
            ("it's", WorkloadEnd::Stopped("a; b".into()))
        );
        let s = Summary::parse(
            "cloister: workload 'x' exited' exited 4294967295; exits=1 npf=0 hypercalls=1",
        )
        .unwrap();
        assert_eq!(
            (s.name.as_str(), s.end),
            ("x' exited", WorkloadEnd::Exited(u32::MAX))
        );
    }

    #[test]
    fn accepts_hex_statuses_and_leading_workload_text() {
        let s = Summary::parse(
            "partial outputcloister: workload 'w' exited 0x2a; exits=1 npf=0 hypercalls=1",
        )
        .unwrap();
        assert_eq!(s.end, WorkloadEnd::Exited(42));
    }

    #[test]
    fn rejects_lines_that_are_not_summaries() {
        for line in [
            "",
            "hello from the demo workload",
            "cloister: workload 'demo' exited 0",
            "cloister: workload 'demo' exited -1; exits=1 npf=0 hypercalls=0",
            "cloister: workload 'demo' exited 4294967296; exits=1 npf=0 hypercalls=0",
            "cloister: workload 'demo' exited 0; exits=1 npf=0",
            "cloister: workload 'demo' exited 0; exits=1 npf=x hypercalls=0",
            "cloister: workload 'demo' exited 0; exits=1 npf=0 hypercalls=0 more=1",
            "cloister: workload 'demo' finished; exits=1 npf=0 hypercalls=0",
        ] {
            assert_eq!(Summary::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn the_summary_is_the_last_non_blank_line() {
        let console = "boot\ncloister: workload 'a' exited 0; exits=1 npf=1 hypercalls=1\n\r\n";
        assert_eq!(Summary::find(console).unwrap().name, "a");
        let console = "cloister: workload 'a' exited 0; exits=1 npf=1 hypercalls=1\npanic after the summary\n";
        assert_eq!(Summary::find(console), None);
    }

    #[test]
    fn displays_as_the_line_it_was_parsed_from() {
        for line in [
            "cloister: workload 'demo' exited 3; exits=10 npf=4 hypercalls=2",
            "cloister: workload 'tf' stopped: triple fault; exits=2 npf=1 hypercalls=0",
        ] {
            assert_eq!(Summary::parse(line).unwrap().to_string(), line);
        }
    }
}
