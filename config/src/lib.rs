//! Cloister's build-time configuration: one TOML file describes the appliance. This
//! crate parses it, validates it, places the pools in host RAM, and generates the Rust
//! statics the board crate compiles in.

mod codegen;
pub mod diagnostic;
mod image_check;
mod locate;
mod placement;
mod schema;
mod serde_errors;
mod source;
mod suggest;
mod units;
mod validate;

pub use codegen::generate;
pub use diagnostic::{Diagnostic, KeyPath};
pub use placement::{HYPERVISOR_RESERVED, Layout, PlacedPool, place};
pub use schema::*;
pub use units::{Address, Size};
pub use validate::BOARDS;

use serde::Deserialize;
use source::SourceFile;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::de::DeTable;

/// Everything wrong with a configuration file, each problem rendered with
/// `file:line:col`, the key, the offending line and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "error: {problem}")?;
        }
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ConfigError {}

/// Read and check the configuration at `path`: syntax, schema, every rule, placement.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![format!("{}: cannot read: {e}", path.display())],
    })?;
    parse(path, text)
}

/// Check configuration `text`; `path` names it in messages.
pub fn parse(path: &Path, text: String) -> Result<Config, ConfigError> {
    let source = SourceFile::new(path, text);
    let fail = |problems: Vec<String>| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let root = match DeTable::parse(&source.text) {
        Ok(root) => root,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let d = serde_errors::diagnose(None, offset, e.message());
            return Err(fail(vec![source.render(&d, e.span())]));
        }
    };
    let config = match Config::deserialize(toml::de::Deserializer::from(root.clone())) {
        Ok(config) => config,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let d = serde_errors::diagnose(Some(&root), offset, e.message());
            return Err(fail(vec![source.render(&d, e.span())]));
        }
    };
    let mut problems = validate::validate(&config);
    if problems.is_empty()
        && let Err(placement) = place(&config)
    {
        problems = placement;
    }
    if problems.is_empty() {
        return Ok(config);
    }
    Err(fail(
        problems
            .iter()
            .map(|d| source.render(d, locate::span_of(&root, &d.key)))
            .collect(),
    ))
}

/// Check a workload image against the configuration loaded from `path`: an ELF64
/// x86-64 executable whose segments lie in private memory above the boot area.
pub fn check_image(path: &Path, config: &Config, image: &[u8]) -> Result<(), ConfigError> {
    let problems = image_check::check(config, image);
    if problems.is_empty() {
        return Ok(());
    }
    Err(report_against(path, &problems))
}

/// The report for a `workload.image` file that does not exist at `image`.
pub fn missing_image(path: &Path, image: &Path) -> ConfigError {
    let problem = Diagnostic::new(
        key_path!["workload", "image"],
        format!("no such file: {}", image.display()),
    )
    .hint("paths are relative to the configuration file; use \"demo\" for the built-in demo");
    report_against(path, &[problem])
}

/// Render `problems` against the configuration file at `path`, for checks made after
/// loading it.
fn report_against(path: &Path, problems: &[Diagnostic]) -> ConfigError {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let source = SourceFile::new(path, text);
    let root = DeTable::parse(&source.text).ok();
    let rendered = problems
        .iter()
        .map(|d| source.render(d, root.as_ref().and_then(|r| locate::span_of(r, &d.key))))
        .collect();
    ConfigError {
        file: path.to_path_buf(),
        problems: rendered,
    }
}
