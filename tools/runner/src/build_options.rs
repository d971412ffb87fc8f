//! What an image is built with besides its configuration.

use std::fmt;

/// A failure the hypervisor provokes on purpose right after boot, so tests can check
/// the crash report, the panic path and the hypervisor's own page tables on the real
/// image. The names are the ones the board's build script accepts in `CLOISTER_SELFTEST`
/// (its `SELFTESTS`, platforms/qemu-x86_64/build.rs): keep the two lists in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selftest {
    /// Read an unmapped address: the CPU exception handler's crash report.
    PageFault,
    /// `panic!`: the panic handler's report.
    Panic,
    /// Read the first private pool through its physical address once the hypervisor's
    /// own page tables are in place: the private pool is not mapped there, so the crash
    /// report names a page fault at the pool's base.
    ReadPrivate,
}

impl Selftest {
    pub const ALL: [Selftest; 3] = [Selftest::PageFault, Selftest::Panic, Selftest::ReadPrivate];

    pub fn as_str(self) -> &'static str {
        match self {
            Selftest::PageFault => "page-fault",
            Selftest::Panic => "panic",
            Selftest::ReadPrivate => "read-private",
        }
    }
}

impl fmt::Display for Selftest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Build a selftest image, kept apart from the configuration's normal image.
    pub selftest: Option<Selftest>,
    /// Build a benchmark image: it answers the bench-only calls
    /// (`cloister_abi::hypercall::bench`); named `<stem>-bench`.
    pub bench_hooks: bool,
}

impl BuildOptions {
    /// The image's name: the configuration's file stem, plus `-selftest-<name>` for a
    /// selftest image, so the two never overwrite each other.
    pub(crate) fn image_name(&self, config_stem: &str) -> String {
        let name = match self.selftest {
            None => config_stem.to_owned(),
            Some(selftest) => format!("{config_stem}-selftest-{selftest}"),
        };
        if self.bench_hooks {
            format!("{name}-bench")
        } else {
            name
        }
    }

    /// CLOISTER_BENCH_HOOKS for the board's build script: always set, for the same
    /// reason as CLOISTER_SELFTEST.
    pub(crate) fn bench_hooks_env(&self) -> &'static str {
        if self.bench_hooks { "1" } else { "" }
    }

    /// The board's `CLOISTER_SELFTEST`: always set, empty for none, so a value left in
    /// the caller's environment cannot turn a normal image into a selftest image.
    pub(crate) fn selftest_env(&self) -> &'static str {
        self.selftest.map_or("", Selftest::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selftest_images_are_named_apart_from_the_normal_image() {
        assert_eq!(BuildOptions::default().image_name("default"), "default");
        let page_fault = BuildOptions {
            selftest: Some(Selftest::PageFault),
            ..BuildOptions::default()
        };
        assert_eq!(
            page_fault.image_name("default"),
            "default-selftest-page-fault"
        );
        let panic = BuildOptions {
            selftest: Some(Selftest::Panic),
            ..BuildOptions::default()
        };
        assert_eq!(panic.image_name("default"), "default-selftest-panic");
        let read_private = BuildOptions {
            selftest: Some(Selftest::ReadPrivate),
            ..BuildOptions::default()
        };
        assert_eq!(
            read_private.image_name("default"),
            "default-selftest-read-private"
        );
    }

    #[test]
    fn the_selftest_variable_is_set_even_without_a_selftest() {
        assert_eq!(BuildOptions::default().selftest_env(), "");
        let names: Vec<_> = Selftest::ALL
            .iter()
            .map(|&selftest| BuildOptions {
                selftest: Some(selftest),
                ..BuildOptions::default()
            })
            .map(|options| options.selftest_env())
            .collect();
        assert_eq!(names, ["page-fault", "panic", "read-private"]);
    }
}
