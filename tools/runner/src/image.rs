//! Building the bootable image for an appliance configuration.

use crate::build_options::BuildOptions;
use crate::cargo::build_bare_metal;
use crate::error::Error;
use crate::paths::images_dir;
use crate::workload::build_workload_elf;
use cloister_config::{Config, RamRange};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The board crate whose binary is the bootable hypervisor image.
const HYPERVISOR_PACKAGE: &str = "cloister-qemu-x86_64";

/// The least guest RAM derived from a configuration; less starves the hypervisor's own
/// reservation. It bounds only the derived value: an explicit `RunOptions::memory_mib`
/// is used as given, so a test can boot with too little RAM on purpose.
const MIN_MEMORY_MIB: u64 = 64;

/// A bootable hypervisor image and the configuration it was built from.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image's file stem: the configuration's (`default` for default.toml), plus
    /// `-selftest-<name>` for a selftest image.
    pub name: String,
    /// The unstripped ELF: QEMU boots it and the defmt decoder reads its symbols.
    pub elf_path: PathBuf,
    /// Absolute path of the configuration file.
    pub config_path: PathBuf,
    pub config: Config,
    /// Guest RAM QEMU needs for this configuration (see [`memory_mib`]).
    pub memory_mib: u64,
}

/// Build the image for the configuration at `config_path`: validate the configuration,
/// build its workload, build the hypervisor with both embedded, and keep the result as
/// `<images dir>/<config stem>.elf`. Cargo's output goes to stderr.
pub fn build_image(workspace_root: &Path, config_path: &Path) -> Result<BuiltImage, Error> {
    build_image_with(workspace_root, config_path, &BuildOptions::default())
}

/// [`build_image`] with `options`; a selftest image is kept as
/// `<images dir>/<config stem>-selftest-<name>.elf`.
pub fn build_image_with(
    workspace_root: &Path,
    config_path: &Path,
    options: &BuildOptions,
) -> Result<BuiltImage, Error> {
    let (config_path, config) = load_config(config_path)?;
    let name = options.image_name(&config_stem(&config_path)?);
    let workload = build_workload_elf(workspace_root, &config_path, &config)?;
    let image = std::fs::read(&workload)
        .map_err(Error::io(format!("cannot read {}", workload.display())))?;
    cloister_config::check_image(&config_path, &config, &image)?;
    let env = [
        ("CLOISTER_CONFIG", OsString::from(&config_path)),
        ("CLOISTER_WORKLOAD_ELF", OsString::from(&workload)),
        ("CLOISTER_SELFTEST", OsString::from(options.selftest_env())),
        (
            "CLOISTER_BENCH_HOOKS",
            OsString::from(options.bench_hooks_env()),
        ),
        // defmt filters at compile time, so the configured level is a build input.
        (
            "DEFMT_LOG",
            OsString::from(config.hypervisor.log_level.as_str()),
        ),
    ];
    let built = build_bare_metal(workspace_root, HYPERVISOR_PACKAGE, HYPERVISOR_PACKAGE, &env)?;
    let dir = images_dir(workspace_root);
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    let elf_path = dir.join(format!("{name}.elf"));
    // Copied whole, symbols included: the defmt decoder needs the `.defmt` section.
    std::fs::copy(&built, &elf_path).map_err(Error::io(format!(
        "cannot copy {} to {}",
        built.display(),
        elf_path.display()
    )))?;
    Ok(BuiltImage::new(name, elf_path, config_path, config))
}

/// The image already built for `config_path` in `images_dir`, without building: how the
/// integration tests find the images `cargo xtask test` made.
pub fn prebuilt_image(images_dir: &Path, config_path: &Path) -> Result<BuiltImage, Error> {
    prebuilt_image_with(images_dir, config_path, &BuildOptions::default())
}

/// [`prebuilt_image`] of the image built with `options`.
pub fn prebuilt_image_with(
    images_dir: &Path,
    config_path: &Path,
    options: &BuildOptions,
) -> Result<BuiltImage, Error> {
    let (config_path, config) = load_config(config_path)?;
    let name = options.image_name(&config_stem(&config_path)?);
    let elf_path = images_dir.join(format!("{name}.elf"));
    if !elf_path.is_file() {
        return Err(Error::MissingImage { path: elf_path });
    }
    Ok(BuiltImage::new(name, elf_path, config_path, config))
}

impl BuiltImage {
    fn new(name: String, elf_path: PathBuf, config_path: PathBuf, config: Config) -> Self {
        let memory_mib = memory_mib(&config.platform.ram);
        Self {
            name,
            elf_path,
            config_path,
            config,
            memory_mib,
        }
    }
}

/// Guest RAM in MiB that covers every declared RAM range: the highest end, rounded up
/// to a MiB, and at least 64 MiB.
pub fn memory_mib(ram: &[RamRange]) -> u64 {
    const MIB: u64 = 1 << 20;
    let end = ram
        .iter()
        .map(|r| r.base.0.saturating_add(r.size.0))
        .max()
        .unwrap_or(0);
    end.div_ceil(MIB).max(MIN_MEMORY_MIB)
}

/// Load and check the configuration (every rule, placement included); returns the
/// configuration's absolute path with it.
fn load_config(config_path: &Path) -> Result<(PathBuf, Config), Error> {
    let config_path = std::path::absolute(config_path).map_err(Error::io(format!(
        "cannot resolve {}",
        config_path.display()
    )))?;
    let config = cloister_config::load(&config_path)?;
    Ok((config_path, config))
}

fn config_stem(config_path: &Path) -> Result<String, Error> {
    let stem = config_path.file_stem().and_then(|s| s.to_str());
    stem.map(str::to_owned).ok_or_else(|| Error::NonUtf8Path {
        path: config_path.to_path_buf(),
        why: "the configuration's file name names the image",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloister_config::{Address, Size};

    fn range(base: u64, size: u64) -> RamRange {
        RamRange {
            base: Address(base),
            size: Size(size),
        }
    }

    #[test]
    fn memory_covers_the_highest_ram_end() {
        assert_eq!(memory_mib(&[range(0, 512 << 20)]), 512);
        assert_eq!(
            memory_mib(&[range(0, 128 << 20), range(0x1000_0000, 256 << 20)]),
            512
        );
    }

    #[test]
    fn memory_rounds_up_to_a_mib_and_has_a_floor() {
        assert_eq!(memory_mib(&[range(0, (100 << 20) + 1)]), 101);
        assert_eq!(memory_mib(&[range(0, 16 << 20)]), 64);
        assert_eq!(memory_mib(&[]), 64);
    }

    #[test]
    fn memory_of_a_wrapping_range_does_not_overflow() {
        assert_eq!(
            memory_mib(&[range(u64::MAX, 2)]),
            u64::MAX.div_ceil(1 << 20)
        );
    }

    #[test]
    fn config_errors_name_the_file() {
        let err = build_image(Path::new("/unused"), Path::new("/no/such/config.toml")).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        // The report's first problem names the file; its last line counts the problems.
        let report = err.to_string();
        assert!(
            report.starts_with("error: /no/such/config.toml: cannot read"),
            "{report}"
        );
        assert!(
            report.ends_with("/no/such/config.toml: 1 problem"),
            "{report}"
        );
    }

    #[test]
    fn a_prebuilt_selftest_image_is_looked_up_by_its_own_name() {
        let dir = std::env::temp_dir().join(format!("cloister-prebuilt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("default-selftest-panic.elf"), b"").unwrap();
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let panic = BuildOptions {
            selftest: Some(crate::Selftest::Panic),
            ..BuildOptions::default()
        };
        let image = prebuilt_image_with(&dir, &default, &panic).unwrap();
        assert_eq!(image.name, "default-selftest-panic");
        assert_eq!(image.elf_path, dir.join("default-selftest-panic.elf"));
        assert_eq!(image.config.workload.name, "demo");
        let err = prebuilt_image(&dir, &default).unwrap_err();
        assert!(matches!(err, Error::MissingImage { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_prebuilt_image_that_is_missing_says_how_to_build_it() {
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let err = prebuilt_image(Path::new("/no/images"), &default).unwrap_err();
        assert!(
            err.to_string()
                .contains("/no/images/default.elf does not exist; `cargo xtask test` builds"),
            "{err}"
        );
    }
}
