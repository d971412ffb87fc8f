//! Where cargo puts things. Image builds use an explicit `--target`, so their artifacts
//! live under `<target dir>/<triple>/release`, apart from host builds.

use std::path::{Path, PathBuf};

/// The only target this toolchain has: the bare-metal image is built for it as
/// `no_std`/`no_main` with its own linker script.
pub(crate) const IMAGE_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Without a static relocation model rustc links a PIE and the 32-bit boot code's
/// absolute relocations fail; no red zone keeps our own code safe in exception handlers.
pub(crate) const IMAGE_RUSTFLAGS: &str = "-C relocation-model=static -C no-redzone=yes";

/// Cargo's target directory for the workspace at `workspace_root`: `CARGO_TARGET_DIR`
/// if set (relative to the workspace root, where the runner runs cargo), else `target`.
pub fn target_dir(workspace_root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root.join(dir),
        _ => workspace_root.join("target"),
    }
}

/// Where built images are kept: `<target dir>/images/<config stem>.elf`.
pub fn images_dir(workspace_root: &Path) -> PathBuf {
    target_dir(workspace_root).join("images")
}

/// The release binary `bin` of an image build.
pub(crate) fn release_artifact(workspace_root: &Path, bin: &str) -> PathBuf {
    target_dir(workspace_root)
        .join(IMAGE_TARGET)
        .join("release")
        .join(bin)
}
