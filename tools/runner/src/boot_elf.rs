//! The file QEMU's `-kernel` gets for a boot protocol.
//!
//! QEMU's loader tries Multiboot before PVH, so an image that carries both always boots
//! by Multiboot as built. For PVH, QEMU gets a copy beside the image with the Multiboot
//! header hidden (`default.elf` -> `default.pvh.elf`); the original stays untouched for
//! the defmt decoder and gdb, which need nothing from those four bytes.

use crate::error::Error;
use crate::multiboot_header;
use crate::options::BootProtocol;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The ELF to boot `elf` by `protocol`: `elf` itself for Multiboot, its PVH copy
/// (written now) for PVH. An ELF without a Multiboot header is refused for PVH: every
/// Cloister image has one, so its absence means this is not the file it should be.
pub(crate) fn elf_to_boot(elf: &Path, protocol: BootProtocol) -> Result<PathBuf, Error> {
    match protocol {
        BootProtocol::Multiboot => Ok(elf.to_path_buf()),
        BootProtocol::Pvh => write_pvh_copy(elf),
    }
}

/// Where the PVH copy of `elf` goes: beside it, `.pvh.elf` instead of `.elf`.
pub(crate) fn pvh_copy_path(elf: &Path) -> PathBuf {
    elf.with_extension("pvh.elf")
}

fn write_pvh_copy(elf: &Path) -> Result<PathBuf, Error> {
    let mut bytes =
        std::fs::read(elf).map_err(Error::io(format!("cannot read {}", elf.display())))?;
    if multiboot_header::hide(&mut bytes) == 0 {
        return Err(Error::NoMultibootHeader {
            elf: elf.to_path_buf(),
        });
    }
    let copy = pvh_copy_path(elf);
    replace_file(&copy, &bytes)?;
    Ok(copy)
}

/// Write `path` by renaming a finished temporary file over it: parallel runs of one image
/// each write the copy, and a QEMU must never read one half-written by another.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}-{write}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(Error::io(format!("cannot write {}", path.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = 0x1bad_b002u32.to_le_bytes();

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path = std::env::temp_dir()
                .join(format!("cloister-boot-elf-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// An "image" with a Multiboot header (flags 0) at 0x1000.
    fn image_with_header() -> Vec<u8> {
        let mut image = vec![0x90; 0x2000];
        image[0x1000..0x1004].copy_from_slice(&MAGIC);
        image[0x1004..0x1008].fill(0);
        image[0x1008..0x100c].copy_from_slice(&0u32.wrapping_sub(0x1bad_b002).to_le_bytes());
        image
    }

    #[test]
    fn multiboot_boots_the_elf_as_built() {
        let elf = Path::new("/no/need/to/read/it.elf");
        assert_eq!(elf_to_boot(elf, BootProtocol::Multiboot).unwrap(), elf);
    }

    #[test]
    fn pvh_boots_a_copy_beside_the_elf_without_the_multiboot_magic() {
        let dir = Dir::new("copy");
        let elf = dir.0.join("default.elf");
        let original = image_with_header();
        std::fs::write(&elf, &original).unwrap();
        let copy = elf_to_boot(&elf, BootProtocol::Pvh).unwrap();
        assert_eq!(copy, dir.0.join("default.pvh.elf"));
        let patched = std::fs::read(&copy).unwrap();
        assert_eq!(&patched[0x1000..0x1004], [0, 0, 0, 0]);
        assert_eq!(patched[0x1004..], original[0x1004..]);
        assert_eq!(std::fs::read(&elf).unwrap(), original, "original untouched");
        // A second run replaces the copy, leaving no temporary files behind.
        elf_to_boot(&elf, BootProtocol::Pvh).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["default.elf", "default.pvh.elf"]);
    }

    #[test]
    fn pvh_refuses_an_elf_without_a_multiboot_header() {
        let dir = Dir::new("no-header");
        let elf = dir.0.join("plain.elf");
        std::fs::write(&elf, vec![0x90; 0x2000]).unwrap();
        let err = elf_to_boot(&elf, BootProtocol::Pvh).unwrap_err();
        assert!(matches!(err, Error::NoMultibootHeader { .. }), "{err}");
        assert!(
            err.to_string().starts_with(&format!("{}: ", elf.display())),
            "{err}"
        );
        assert!(!pvh_copy_path(&elf).exists());
    }

    #[test]
    fn a_missing_elf_is_named_in_the_error() {
        let err = elf_to_boot(Path::new("/no/such/x.elf"), BootProtocol::Pvh).unwrap_err();
        assert!(err.to_string().contains("/no/such/x.elf"), "{err}");
    }
}
