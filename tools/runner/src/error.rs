//! Everything that can stop the runner before it has a run to report. Each variant's
//! message is meant for the person at the terminal: it names the file or command and
//! what to do, so callers print it as is.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

#[derive(Debug)]
pub enum Error {
    /// The configuration file is unreadable or invalid.
    Config(cloister_config::ConfigError),
    /// A `cargo build` failed; cargo's own output, already printed, says why.
    Build { what: String, status: ExitStatus },
    /// An image was expected in the images directory but is not there.
    MissingImage { path: PathBuf },
    /// QEMU is not installed and could not be installed here.
    QemuMissing { detail: Option<String> },
    /// The image has no `.defmt` section, so its log cannot be decoded.
    NoDefmtTable { elf: PathBuf },
    /// The image's defmt table is unreadable (e.g. a defmt version the decoder rejects).
    DefmtTable { elf: PathBuf, message: String },
    /// A PVH boot was asked for, but the ELF has no Multiboot header to hide, so it is
    /// not a Cloister image (which carries both entry points).
    NoMultibootHeader { elf: PathBuf },
    /// A path that must be text (to name an image, or inside a QEMU option) is not UTF-8.
    NonUtf8Path { path: PathBuf, why: &'static str },
    /// A file or process operation failed.
    Io { context: String, source: io::Error },
}

impl Error {
    /// Wrap an I/O error with what was being done, for `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::Build { what, status } => write!(
                f,
                "building {what} failed ({status}); see cargo's output above"
            ),
            Error::MissingImage { path } => {
                write!(
                    f,
                    "image {} does not exist; `cargo xtask test` builds every image the \
                     tests boot",
                    path.display()
                )
            }
            Error::QemuMissing { detail } => {
                write!(
                    f,
                    "{} is not installed; install it with: sudo apt-get install -y qemu-system-x86",
                    crate::QEMU
                )?;
                match detail {
                    Some(detail) => write!(f, " ({detail})"),
                    None => Ok(()),
                }
            }
            Error::NoDefmtTable { elf } => {
                write!(
                    f,
                    "{}: image has no defmt table (missing defmt.x?)",
                    elf.display()
                )
            }
            Error::DefmtTable { elf, message } => {
                write!(
                    f,
                    "{}: cannot read the defmt table: {message}",
                    elf.display()
                )
            }
            Error::NoMultibootHeader { elf } => write!(
                f,
                "{}: no Multiboot header in the first 8 KiB, so no PVH boot copy can be made \
                 (Cloister images carry both a Multiboot header and a PVH note; is this one?)",
                elf.display()
            ),
            Error::NonUtf8Path { path, why } => {
                write!(f, "{}: the path must be UTF-8 ({why})", path.display())
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<cloister_config::ConfigError> for Error {
    fn from(e: cloister_config::ConfigError) -> Self {
        Error::Config(e)
    }
}
