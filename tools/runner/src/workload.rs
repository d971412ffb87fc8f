//! Where a configuration's workload ELF comes from: a binary of a workspace package,
//! built for the image target, or a file the configuration names.

use crate::cargo::build_bare_metal;
use crate::error::Error;
use crate::paths::release_artifact;
use cloister_config::{Config, ImageSource};
use std::path::{Path, PathBuf};

/// Where the workload ELF of `config` is, or will be once built: the release artifact
/// of its package's binary, or the file it names (relative to the configuration's
/// directory unless absolute). Nothing is built, so the file may not exist yet; this
/// lets `cargo xtask config explain` describe an image without a build.
pub fn workload_elf_path(workspace_root: &Path, config_path: &Path, config: &Config) -> PathBuf {
    match config.workload.image_source() {
        ImageSource::Package { bin, .. } => release_artifact(workspace_root, &bin),
        ImageSource::File(file) => config_dir(config_path).join(file),
    }
}

/// The workload ELF to embed: built first if it is a workspace package, else the file
/// the configuration names, which must exist.
pub(crate) fn build_workload_elf(
    workspace_root: &Path,
    config_path: &Path,
    config: &Config,
) -> Result<PathBuf, Error> {
    if let ImageSource::Package { package, bin } = config.workload.image_source() {
        return build_bare_metal(workspace_root, &package, &bin, &[]);
    }
    let path = workload_elf_path(workspace_root, config_path, config);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Config(cloister_config::missing_image(
            config_path,
            &path,
        )))
    }
}

/// The directory a configuration's relative paths start from. A bare file name has an
/// empty parent, which joins like the current directory.
fn config_dir(config_path: &Path) -> &Path {
    config_path.parent().unwrap_or(Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::target_dir;

    fn default_config_with_image(image: &str) -> Config {
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let mut config = cloister_config::load(&default).unwrap();
        config.workload.image = image.to_owned();
        config
    }

    #[test]
    fn a_package_workload_is_its_release_artifact() {
        let root = Path::new("/ws");
        let demo = default_config_with_image("demo");
        assert_eq!(
            workload_elf_path(root, Path::new("/ws/config/default.toml"), &demo),
            target_dir(root).join("x86_64-unknown-linux-gnu/release/cloister-demo")
        );
        let package = default_config_with_image("package:cloister-test-workloads/world-switch");
        assert_eq!(
            workload_elf_path(root, Path::new("/ws/config/default.toml"), &package),
            target_dir(root).join("x86_64-unknown-linux-gnu/release/world-switch")
        );
    }

    #[test]
    fn a_file_workload_is_relative_to_the_configuration_unless_absolute() {
        let root = Path::new("/ws");
        let relative = default_config_with_image("images/app.elf");
        assert_eq!(
            workload_elf_path(root, Path::new("/etc/appliance/a.toml"), &relative),
            Path::new("/etc/appliance/images/app.elf")
        );
        assert_eq!(
            workload_elf_path(root, Path::new("a.toml"), &relative),
            Path::new("images/app.elf")
        );
        let absolute = default_config_with_image("/opt/app.elf");
        assert_eq!(
            workload_elf_path(root, Path::new("/etc/appliance/a.toml"), &absolute),
            Path::new("/opt/app.elf")
        );
    }

    #[test]
    fn a_missing_workload_file_is_reported_with_its_path() {
        let config = default_config_with_image("nope.elf");
        let config_path = Path::new("/no/such/dir/file-workload.toml");
        let err = build_workload_elf(Path::new("/unused"), config_path, &config).unwrap_err();
        let report = err.to_string();
        assert!(
            report.contains(
                "/no/such/dir/file-workload.toml: workload.image: no such file: /no/such/dir/nope.elf"
            ),
            "{report}"
        );
    }
}
