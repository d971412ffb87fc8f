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

/// The configuration `build` and `run` use when given none.
pub fn default_config() -> PathBuf {
    root().join("config").join("default.toml")
}

/// The configurations the integration tests boot, besides the default one.
pub fn test_configs_dir() -> PathBuf {
    root().join("tests").join("configs")
}
