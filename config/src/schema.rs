//! The configuration schema. Unknown keys are errors everywhere.

use crate::units::{Address, Size};
use cloister_abi::Call;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub hypervisor: Hypervisor,
    pub platform: Platform,
    #[serde(rename = "pool")]
    pub pools: Vec<Pool>,
    pub workload: Workload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Svm,
    Sev,
    SevSnp,
    Tdx,
}

impl Backend {
    /// As the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Svm => "svm",
            Self::Sev => "sev",
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hypervisor {
    pub board: String,
    pub backend: Backend,
    #[serde(default = "defaults::log_level")]
    pub log_level: LogLevel,
    #[serde(default = "defaults::heap_size")]
    pub heap_size: Size,
    /// I/O port of the 16550 UART carrying the text console.
    #[serde(default = "defaults::console_port")]
    pub console_port: Address,
    /// I/O port of the 16550 UART carrying defmt log frames.
    #[serde(default = "defaults::log_port")]
    pub log_port: Address,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    pub ram: Vec<RamRange>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RamRange {
    pub base: Address,
    pub size: Size,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Private,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PageSize {
    #[serde(rename = "4K")]
    Size4K,
    #[serde(rename = "2M")]
    Size2M,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    pub kind: PoolKind,
    pub size: Size,
    pub base: Option<Address>,
    #[serde(default = "defaults::page_size")]
    pub page_size: PageSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pinning {
    Demand,
    Upfront,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCrash {
    Halt,
    Restart,
}

/// What a restarted workload's private memory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartMemory {
    /// The same private memory objects, contents and all (only the image, boot info
    /// and boot page tables are loaded again).
    Keep,
    /// Every private page of the crashed instance scrubbed and given back; the new
    /// instance starts from zeroed memory.
    Fresh,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    /// "demo" (the built-in demo), "package:NAME/BIN" (a binary of this workspace), or
    /// a path to an ELF64 x86-64 file, relative to the configuration file.
    pub image: String,
    #[serde(default = "defaults::vcpus")]
    pub vcpus: u32,
    pub memory: Vec<Memslot>,
    #[serde(default = "defaults::pinning")]
    pub pinning: Pinning,
    /// Hypercalls the workload may make, by name; all of them when absent.
    pub hypercalls: Option<Vec<String>>,
    #[serde(default = "defaults::on_crash")]
    pub on_crash: OnCrash,
    #[serde(default)]
    pub max_restarts: u32,
    #[serde(default = "defaults::restart_memory")]
    pub restart_memory: RestartMemory,
    /// Stop the workload if it makes no hypercall for this long; 0: never.
    #[serde(default)]
    pub watchdog_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memslot {
    pub gpa: Address,
    pub size: Size,
    pub pool: String,
    /// Attribute of the slot's pages at launch; the pool's kind when absent.
    pub default: Option<PoolKind>,
}

/// Where the workload image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A binary target of a package in this workspace.
    Package { package: String, bin: String },
    /// An ELF file, relative to the configuration file unless absolute.
    File(String),
}

impl Workload {
    pub fn image_source(&self) -> ImageSource {
        if self.image == "demo" {
            return ImageSource::Package {
                package: "cloister-demo".into(),
                bin: "cloister-demo".into(),
            };
        }
        match self.image.strip_prefix("package:") {
            Some(spec) => {
                let (package, bin) = spec.split_once('/').unwrap_or((spec, spec));
                ImageSource::Package {
                    package: package.into(),
                    bin: bin.into(),
                }
            }
            None => ImageSource::File(self.image.clone()),
        }
    }

    /// Bit mask of permitted hypercalls (bit = call number).
    pub fn allowed_calls(&self) -> u64 {
        match &self.hypercalls {
            None => Call::ALL.iter().fold(0, |m, c| m | c.mask()),
            Some(names) => names
                .iter()
                .filter_map(|n| Call::from_name(n))
                .fold(0, |m, c| m | c.mask()),
        }
    }
}

mod defaults {
    use super::*;
    pub fn log_level() -> LogLevel {
        LogLevel::Info
    }
    pub fn heap_size() -> Size {
        Size(1 << 20)
    }
    pub fn console_port() -> Address {
        Address(0x3f8)
    }
    pub fn log_port() -> Address {
        Address(0x2f8)
    }
    pub fn page_size() -> PageSize {
        PageSize::Size4K
    }
    pub fn vcpus() -> u32 {
        1
    }
    pub fn pinning() -> Pinning {
        Pinning::Demand
    }
    pub fn on_crash() -> OnCrash {
        OnCrash::Halt
    }
    pub fn restart_memory() -> RestartMemory {
        RestartMemory::Keep
    }
}

impl Config {
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}
