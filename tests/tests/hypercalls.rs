//! The hypercall ABI on the real image: errors as documented, INFO, and a launch
//! measurement that is repeatable and covers the image.

use cloister_runner::RunResult;
use cloister_tests::harness::{describe, run_to_clean_exit};

/// The hex digest the `measure` workload printed.
fn digest(result: &RunResult) -> String {
    let line = result
        .console
        .lines()
        .find(|l| l.contains("measure: variant"));
    let line = line.unwrap_or_else(|| panic!("no digest line\n{}", describe(result)));
    let hex = line.rsplit(' ').next().unwrap_or_default().to_owned();
    assert_eq!(hex.len(), 96, "SHA-384 is 48 bytes: {line}");
    hex
}

#[test]
fn abi_03_bad_calls_get_their_documented_errors() {
    let result = run_to_clean_exit("tests/configs/hypercall-errors.toml");
    let context = describe(&result);
    for case in [
        "console_write from private memory: -3 (as documented)",
        "console_write running off shared memory: -3 (as documented)",
        "console_write too long: -2 (as documented)",
        "unknown call 0: -1 (as documented)",
        "unknown call 0xdead: -1 (as documented)",
        "measurement (not permitted): -4 (as documented)",
        "hypercall-errors: 0 wrong",
    ] {
        assert!(result.console.contains(case), "missing {case:?}\n{context}");
    }
}

#[test]
fn info_reports_the_abi_version_and_features() {
    let result = run_to_clean_exit("tests/configs/measure.toml");
    assert!(
        result
            .console
            .contains("measure: info version=0x10000 features=0x1 ok=true"),
        "{}",
        describe(&result)
    );
}

#[test]
fn the_measurement_is_identical_across_runs_and_changes_with_the_image() {
    let first = digest(&run_to_clean_exit("tests/configs/measure.toml"));
    let second = digest(&run_to_clean_exit("tests/configs/measure.toml"));
    assert_eq!(first, second, "same image, same configuration");
    let variant = digest(&run_to_clean_exit("tests/configs/measure-variant.toml"));
    assert_ne!(first, variant, "one byte of the image differs");
}

#[test]
fn conv_07_conv_06_sixteen_mib_converted_both_ways_in_batches_with_the_data_rules() {
    let result = run_to_clean_exit("tests/configs/convert.toml");
    let context = describe(&result);
    for line in [
        "convert: 16 MiB converted to shared: ok",
        "convert: to-shared took 8 calls",
        "convert: converted pages read as zero (scrubbed): ok",
        "convert: console output from converted memory",
        "convert: BUSY while the console drains, then converted: ok",
        "convert: 16 MiB converted back to private: ok",
        "convert: private again: reads zero on touch: ok",
        "convert: console write from private memory refused: ok",
        "convert: 0 failed",
    ] {
        assert!(result.console.contains(line), "missing {line:?}\n{context}");
    }
    // The 4 KiB write drained over several exits and arrived whole.
    assert!(result.console.contains(&".".repeat(4095)), "{context}");
}
