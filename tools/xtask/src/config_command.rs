//! `cargo xtask config check|explain FILE`: a configuration's problems, or what it
//! resolves to, without building anything.

use crate::explain::{self, WorkloadImage};
use crate::{terminal, workspace};
use cloister_config::{ConfigError, Layout};
use cloister_runner::Error;
use std::path::Path;

/// Check `config_path` (every rule, placement included) and say it is fine; the
/// problems are the error.
pub fn check(config_path: &Path) -> Result<(), Error> {
    let (_, layout) = load_and_place(config_path)?;
    terminal::stdout_line(&ok_line(config_path, &layout));
    Ok(())
}

/// Check `config_path`, then print the layout it resolves to and its workload image.
pub fn explain(config_path: &Path) -> Result<(), Error> {
    let (config, layout) = load_and_place(config_path)?;
    let image = WorkloadImage::find(workspace::root(), config_path, &config)?;
    terminal::stdout_line(&ok_line(config_path, &layout));
    terminal::stdout_line("");
    let text = explain::render(config_path, &config, &layout, &image);
    terminal::stdout_line(text.trim_end());
    Ok(())
}

/// `FILE: ok (N pools placed)`.
fn ok_line(config_path: &Path, layout: &Layout) -> String {
    let n = layout.pools.len();
    let pools = if n == 1 { "pool" } else { "pools" };
    format!("{}: ok ({n} {pools} placed)", config_path.display())
}

fn load_and_place(config_path: &Path) -> Result<(cloister_config::Config, Layout), Error> {
    let config = cloister_config::load(config_path)?;
    // `load` has placed the pools once already, so this cannot fail; if it ever does,
    // it is reported like any other configuration problem rather than as a panic.
    let layout = cloister_config::place(&config).map_err(|problems| ConfigError {
        file: config_path.to_path_buf(),
        problems: problems
            .iter()
            .map(|d| format!("{}: {}: {}", config_path.display(), d.key, d.message))
            .collect(),
    })?;
    Ok((config, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ok_line_counts_the_placed_pools() {
        let path = workspace::root().join("config/default.toml");
        let (_, layout) = load_and_place(&path).unwrap();
        assert_eq!(
            ok_line(Path::new("config/default.toml"), &layout),
            "config/default.toml: ok (2 pools placed)"
        );
    }

    #[test]
    fn problems_are_the_configuration_report() {
        let default = std::fs::read_to_string(workspace::default_config()).unwrap();
        let path =
            std::env::temp_dir().join(format!("cloister-sev-es-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            default.replace("backend = \"svm\"", "backend = \"sev-es\""),
        )
        .unwrap();
        let checked = check(&path);
        let _ = std::fs::remove_file(&path);
        let Err(Error::Config(report)) = checked else {
            panic!("an unknown backend should fail the check")
        };
        assert_eq!(report.problems.len(), 1, "{report}");
        assert!(
            report.problems[0].contains(": hypervisor.backend: "),
            "{report}"
        );
    }
}
