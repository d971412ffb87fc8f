//! `cargo xtask build`: the image only.

use crate::{terminal, workspace};
use cloister_runner::{Error, build_image};
use std::path::PathBuf;

/// Build the image and print its path on stdout.
pub fn build(config: Option<PathBuf>) -> Result<(), Error> {
    let config = config.unwrap_or_else(workspace::default_config);
    let image = build_image(workspace::root(), &config)?;
    terminal::stdout_line(&image.elf_path.display().to_string());
    Ok(())
}
