//! The appliance configurations shipped in `config/`, and which of them
//! `cargo xtask test` builds and boots.

use crate::workspace;
use std::path::PathBuf;

/// The shipped configurations that must build, in build order. `tdx.toml` builds but
/// cannot run under QEMU (its QEMU test checks that it says so); `sev.toml` and
/// `sev-snp.toml` run there in model mode. Any other `config/*.toml` would be an
/// example for a backend this build does not have: `cargo xtask config check` must
/// reject it with exactly one problem, at `hypervisor.backend`; the test below keeps
/// both lists honest.
const BUILT: [&str; 5] = [
    "default.toml",
    "edge-gateway.toml",
    "tdx.toml",
    "sev.toml",
    "sev-snp.toml",
];

/// The shipped configurations `cargo xtask test` builds, default first.
pub fn built() -> Vec<PathBuf> {
    let dir = workspace::shipped_configs_dir();
    BUILT.iter().map(|name| dir.join(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_shipped_config() -> Vec<PathBuf> {
        let dir = workspace::shipped_configs_dir();
        let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            // config/ is also the cloister-config crate; its manifest is no appliance.
            .filter(|path| !path.ends_with("Cargo.toml"))
            .collect();
        configs.sort();
        configs
    }

    #[test]
    fn the_default_is_built_first() {
        assert_eq!(built()[0], workspace::default_config());
    }

    /// Each example either loads, and is then built and booted by `cargo xtask test`, or
    /// is refused only for a backend this build lacks. Anything else is a broken example.
    #[test]
    fn every_shipped_config_loads_or_fails_only_on_its_backend() {
        let configs = every_shipped_config();
        for path in built() {
            assert!(configs.contains(&path), "{} is missing", path.display());
        }
        for config in configs {
            let built = built().contains(&config);
            match cloister_config::load(&config) {
                Ok(_) => assert!(
                    built,
                    "{} is valid, so `cargo xtask test` must build it: add it to BUILT",
                    config.display()
                ),
                Err(report) => {
                    assert!(!built, "{report}");
                    assert_eq!(report.problems.len(), 1, "{report}");
                    assert!(
                        report.problems[0].contains(": hypervisor.backend: "),
                        "{report}"
                    );
                }
            }
        }
    }
}
