//! QEMU's own messages: kept for the run's result, and passed on live when echoing.

use std::io::{self, BufRead, BufReader, Read, Write};

/// QEMU warns about every EPYC feature TCG lacks, on every run. The model is chosen for
/// SVM with nested paging; the warnings say nothing about the run.
const TCG_FEATURE_WARNING: &str = "TCG doesn't support requested feature";

/// Read QEMU's stderr to its end; with `echo`, pass each line worth reading to stderr.
pub(crate) fn collect(stderr: impl Read, echo: bool) -> io::Result<String> {
    let mut reader = BufReader::new(stderr);
    let mut all = String::new();
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? != 0 {
        let text = String::from_utf8_lossy(&line);
        if echo && worth_showing(&text) {
            // A closed stderr must not stop the collection.
            let _ = io::stderr().write_all(text.as_bytes());
        }
        all.push_str(&text);
        line.clear();
    }
    Ok(all)
}

fn worth_showing(line: &str) -> bool {
    !line.contains(TCG_FEATURE_WARNING)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARNING: &str = "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.07H:EBX.rdseed [bit 18]\n";

    #[test]
    fn tcg_feature_warnings_are_not_shown() {
        assert!(!worth_showing(WARNING));
        assert!(worth_showing(
            "qemu-system-x86_64: -machine q35: unsupported machine type\n"
        ));
    }

    #[test]
    fn everything_is_kept() {
        let text = format!("{WARNING}real problem\n");
        assert_eq!(collect(text.as_bytes(), false).unwrap(), text);
    }
}
