//! Cloister's build-time configuration: one TOML file describes the appliance. This
//! crate parses it, validates it, places the pools in host RAM, and generates the Rust
//! statics the board crate compiles in.

mod codegen;
mod placement;
mod schema;
mod units;

pub use codegen::generate;
pub use placement::{HYPERVISOR_RESERVED, Layout, PlacedPool, place};
pub use schema::*;
pub use units::{Address, Size};

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem, with the file it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Read, parse and validate the configuration at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let error = |message: String| ConfigError {
        file: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    parse(&text).map_err(error)
}

/// Parse and validate configuration text.
pub fn parse(text: &str) -> Result<Config, String> {
    let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_config() -> Config {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("default.toml")).unwrap()
    }

    #[test]
    fn the_default_config_validates_and_places_pools_above_the_hypervisor() {
        let config = default_config();
        let layout = place(&config).unwrap();
        assert_eq!(layout.pools.len(), 2);
        for p in &layout.pools {
            assert!(
                p.base >= HYPERVISOR_RESERVED.end && p.base % 0x20_0000 == 0,
                "{p:?}"
            );
        }
        let code = generate(&config, &layout, Path::new("/x/demo.elf"));
        assert!(code.contains("pub const WORKLOAD_NAME: &str = \"demo\";"));
        assert!(code.contains("include_bytes!(\"/x/demo.elf\")"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_location() {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("default.toml"))
                .unwrap();
        let bad = text.replace("log_level = \"info\"", "log_levle = \"info\"");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("log_levle") && err.contains("line 8"), "{err}");
    }

    #[test]
    fn a_pool_that_does_not_fit_names_the_pool() {
        let mut config = default_config();
        config.pools[0].size = Size(1 << 30);
        let err = place(&config).unwrap_err();
        assert!(
            err.contains("demo-private") && err.contains("does not fit"),
            "{err}"
        );
    }

    #[test]
    fn unknown_hypercall_names_are_rejected() {
        let mut config = default_config();
        config.workload.hypercalls = Some(vec!["reboot".into()]);
        assert!(config.validate().unwrap_err().contains("\"reboot\""));
    }
}
