//! Counting what `cargo test` ran, so `cargo xtask test` can end with one total line
//! (the last libtest line of a run is often a doc-test section with nothing in it).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    /// Add the counts of a libtest summary line (`test result: ok. 3 passed; 0 failed; ...`).
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }

    /// The closing line: `cloister: N passed, M failed`.
    pub fn line(&self) -> String {
        format!("cloister: {} passed, {} failed", self.passed, self.failed)
    }
}

/// Run `command`, echoing its stdout while counting its test results; whether it succeeded.
pub fn run_counted(mut command: Command, tally: &mut Tally) -> std::io::Result<bool> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        tally.add_line(&line);
        writeln!(out, "{line}")?;
    }
    Ok(child.wait()?.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_libtest_result_lines_and_ignores_the_rest() {
        let mut tally = Tally::default();
        tally.add_line("test result: ok. 20 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        tally.add_line(
            "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out",
        );
        tally.add_line("test vm_tests::failed_entry ... ok");
        tally.add_line("running 7 tests");
        assert_eq!(
            tally,
            Tally {
                passed: 23,
                failed: 2
            }
        );
        assert_eq!(tally.line(), "cloister: 23 passed, 2 failed");
    }
}
