//! Which benchmark runs there are, and the configuration each one boots.

use std::fmt;
use std::path::{Path, PathBuf};

/// The private memory sizes launch is measured at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemorySize {
    M64,
    M512,
    G2,
}

impl MemorySize {
    pub const ALL: [MemorySize; 3] = [MemorySize::M64, MemorySize::M512, MemorySize::G2];

    /// As in the configuration names and the JSON keys.
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySize::M64 => "64m",
            MemorySize::M512 => "512m",
            MemorySize::G2 => "2g",
        }
    }

    pub fn mib(self) -> u64 {
        match self {
            MemorySize::M64 => 64,
            MemorySize::M512 => 512,
            MemorySize::G2 => 2048,
        }
    }

    /// For people: `64 MiB`, `2 GiB`.
    pub fn label(self) -> &'static str {
        match self {
            MemorySize::M64 => "64 MiB",
            MemorySize::M512 => "512 MiB",
            MemorySize::G2 => "2 GiB",
        }
    }
}

/// The workload's `pinning`: private memory prepared on first touch or at launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pinning {
    Demand,
    Upfront,
}

impl Pinning {
    pub const ALL: [Pinning; 2] = [Pinning::Demand, Pinning::Upfront];

    pub fn as_str(self) -> &'static str {
        match self {
            Pinning::Demand => "demand",
            Pinning::Upfront => "upfront",
        }
    }
}

/// One benchmark run: one configuration in tools/bench/configs, booted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bench {
    /// `launch-<size>-<pinning>.toml`: the `bench-launch` workload.
    Launch(MemorySize, Pinning),
    /// `exits.toml`: the `bench-exits` workload (hypercalls, faults, conversion).
    Exits,
    /// `fault-2m.toml`: the `bench-fault-2m` workload.
    Fault2m,
}

impl Bench {
    /// Every run, in the order they are made: launch by size, then the rest.
    pub fn full() -> Vec<Bench> {
        let mut benches: Vec<Bench> = MemorySize::ALL
            .into_iter()
            .flat_map(|size| Pinning::ALL.map(|pinning| Bench::Launch(size, pinning)))
            .collect();
        benches.extend([Bench::Exits, Bench::Fault2m]);
        benches
    }

    /// The smoke check CI runs: one launch and the exit paths.
    pub fn quick() -> Vec<Bench> {
        vec![
            Bench::Launch(MemorySize::M64, Pinning::Demand),
            Bench::Exits,
        ]
    }

    /// The configuration's file stem, which is also the image's name.
    pub fn name(self) -> String {
        match self {
            Bench::Launch(size, pinning) => {
                format!("launch-{}-{}", size.as_str(), pinning.as_str())
            }
            Bench::Exits => "exits".to_owned(),
            Bench::Fault2m => "fault-2m".to_owned(),
        }
    }

    pub fn config_path(self, configs_dir: &Path) -> PathBuf {
        configs_dir.join(format!("{}.toml", self.name()))
    }
}

impl fmt::Display for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_suite_is_every_launch_then_the_exit_and_2m_runs() {
        let names: Vec<String> = Bench::full().into_iter().map(Bench::name).collect();
        assert_eq!(
            names,
            [
                "launch-64m-demand",
                "launch-64m-upfront",
                "launch-512m-demand",
                "launch-512m-upfront",
                "launch-2g-demand",
                "launch-2g-upfront",
                "exits",
                "fault-2m",
            ]
        );
    }

    #[test]
    fn the_quick_suite_is_one_launch_and_the_exits() {
        let names: Vec<String> = Bench::quick().into_iter().map(Bench::name).collect();
        assert_eq!(names, ["launch-64m-demand", "exits"]);
    }

    #[test]
    fn configurations_are_named_after_the_run() {
        assert_eq!(
            Bench::Launch(MemorySize::G2, Pinning::Upfront).config_path(Path::new("/c")),
            Path::new("/c/launch-2g-upfront.toml")
        );
        assert_eq!(
            Bench::Fault2m.config_path(Path::new("/c")),
            Path::new("/c/fault-2m.toml")
        );
    }
}
