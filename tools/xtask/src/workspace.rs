//! Paths inside the workspace this xtask belongs to.

use std::path::{Path, PathBuf};

/// The workspace root: this crate lives at `<root>/tools/xtask`.
pub fn root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest_dir)
}

/// The appliance configurations shipped with Cloister.
pub fn shipped_configs_dir() -> PathBuf {
    root().join("config")
}

/// The configuration the commands use when given none.
pub fn default_config() -> PathBuf {
    shipped_configs_dir().join("default.toml")
}

/// The configurations the integration tests boot, besides the default one.
pub fn test_configs_dir() -> PathBuf {
    root().join("tests").join("configs")
}

/// The benchmark configurations `cargo xtask bench` boots.
pub fn bench_configs_dir() -> PathBuf {
    root().join("tools").join("bench").join("configs")
}
