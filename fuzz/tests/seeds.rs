//! Every committed seed (`corpus/<target>/*`) runs through its harness without a
//! finding: the seeds stay valid inputs as the harnesses and the code under test
//! change, checked by a plain `cargo test` here (no nightly, no libFuzzer). A crash
//! artifact replays with `cargo +nightly fuzz run -a -s none <target> <artifact>`.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("the target has a seed directory") {
        let path = entry.expect("a readable directory").path();
        let data = std::fs::read(&path).expect("a readable seed");
        eprintln!("{target}: {}", path.display());
        run(&data);
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
}

#[test]
fn hypercall_seeds_run_clean() {
    replay("hypercall", cloister_fuzz::hypercall::run);
}

#[test]
fn config_seeds_run_clean() {
    replay("config", cloister_fuzz::config::run);
}

#[test]
fn mmu_ops_seeds_run_clean() {
    replay("mmu_ops", cloister_fuzz::mmu_ops::run);
}

#[test]
fn privmem_ops_seeds_run_clean() {
    replay("privmem_ops", cloister_fuzz::privmem_ops::run);
}

/// The shipped configurations among the seeds are accepted, so the structure-blind way
/// in starts from valid files.
#[test]
fn the_shipped_configuration_seeds_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join("config");
    for name in [
        "default.toml",
        "edge-gateway.toml",
        "tdx.toml",
        "convert.toml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).expect("a seed");
        let accepted = cloister_config::parse(Path::new(name), text);
        assert!(accepted.is_ok(), "{name}: {accepted:?}");
    }
}
