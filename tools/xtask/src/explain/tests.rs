//! The explanation of the shipped configurations, checked line by line against what
//! the build really does with them.

use super::workload_image::{PresentImage, WorkloadImage};
use super::*;
use crate::workspace;
use std::path::PathBuf;

struct Explained {
    text: String,
}

impl Explained {
    fn of(name: &str, image: impl FnOnce(&Path, &Config) -> WorkloadImage) -> Explained {
        let path = workspace::shipped_configs_dir().join(name);
        let config = cloister_config::load(&path).unwrap();
        let layout = cloister_config::place(&config).unwrap();
        let image = image(&path, &config);
        let text = render(
            Path::new(&format!("config/{name}")),
            &config,
            &layout,
            &image,
        );
        Explained { text }
    }

    /// The one line that starts with `start` (after the indentation), as words.
    fn line(&self, start: &str) -> Vec<&str> {
        let mut lines = self
            .text
            .lines()
            .filter(|line| line.trim_start().starts_with(start));
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no line starts with {start:?}:\n{}", self.text));
        assert!(lines.next().is_none(), "{start:?} twice:\n{}", self.text);
        line.split("  ")
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect()
    }
}

fn not_built(_: &Path, _: &Config) -> WorkloadImage {
    WorkloadImage::Absent {
        path: PathBuf::from("/t/release/cloister-demo"),
    }
}

#[test]
fn the_default_host_map_shows_the_reserved_range_and_each_placed_pool() {
    let explained = Explained::of("default.toml", not_built);
    assert_eq!(
        explained.line("[0x0, 0x2000000)"),
        [
            "[0x0, 0x2000000)",
            "32M",
            "hypervisor image, stacks, heap, tables",
            "-",
            "-",
            "reserved"
        ]
    );
    assert_eq!(
        explained.line("[0x2000000, 0x6000000)"),
        [
            "[0x2000000, 0x6000000)",
            "64M",
            "pool demo-private",
            "private",
            "4K",
            "placed"
        ]
    );
    assert_eq!(
        explained.line("[0x6000000, 0x6200000)"),
        [
            "[0x6000000, 0x6200000)",
            "2M",
            "pool demo-shared",
            "shared",
            "4K",
            "placed"
        ]
    );
    // 512M declared, less the reservation (32M) and both pools (66M).
    assert_eq!(
        explained.line("[0x0, 0x20000000)"),
        ["[0x0, 0x20000000)", "512M", "414M"]
    );
}

#[test]
fn the_default_guest_map_names_the_pool_and_host_range_behind_each_slot() {
    let explained = Explained::of("default.toml", not_built);
    assert_eq!(
        explained.line("[0x0, 0x4000000)"),
        [
            "[0x0, 0x4000000)",
            "64M",
            "private",
            "demo-private",
            "[0x2000000, 0x6000000)"
        ]
    );
    assert_eq!(
        explained.line("[0x40000000, 0x40200000)"),
        [
            "[0x40000000, 0x40200000)",
            "2M",
            "shared",
            "demo-shared",
            "[0x6000000, 0x6200000)"
        ]
    );
    assert!(
        explained
            .text
            .contains("Workload 'demo': guest-physical memory")
    );
}

#[test]
fn the_hypervisor_settings_are_listed_with_their_defaults_resolved() {
    let explained = Explained::of("default.toml", not_built);
    assert_eq!(explained.line("board"), ["board", "qemu-x86_64"]);
    assert_eq!(explained.line("backend"), ["backend", "svm"]);
    assert_eq!(explained.line("log level"), ["log level", "info"]);
    assert_eq!(explained.line("heap"), ["heap", "1M"]);
    assert_eq!(
        explained.line("console port"),
        ["console port", "0x3f8 (text console UART)"]
    );
    assert_eq!(
        explained.line("log port"),
        ["log port", "0x2f8 (defmt log UART)"]
    );
}

#[test]
fn an_unbuilt_package_image_says_how_to_build_it() {
    let explained = Explained::of("default.toml", not_built);
    assert_eq!(
        explained.line("source"),
        [
            "source",
            "\"demo\": binary cloister-demo of workspace package cloister-demo"
        ]
    );
    assert_eq!(
        explained.line("state"),
        [
            "state",
            "not built yet (run cargo xtask build --config config/default.toml)"
        ]
    );
    assert!(!explained.text.contains("PT_LOAD"), "{}", explained.text);
}

#[test]
fn large_pools_show_their_2m_pages_and_gateway_host_ranges() {
    let explained = Explained::of("edge-gateway.toml", not_built);
    assert_eq!(
        explained.line("[0x2000000, 0x82000000)"),
        [
            "[0x2000000, 0x82000000)",
            "2G",
            "pool gateway-private",
            "private",
            "2M",
            "placed"
        ]
    );
    assert_eq!(
        explained.line("[0x100000000, 0x101000000)"),
        [
            "[0x100000000, 0x101000000)",
            "16M",
            "shared",
            "gateway-shared",
            "[0x82000000, 0x83000000)"
        ]
    );
    assert_eq!(explained.line("heap"), ["heap", "8M"]);
}

/// An ELF64 x86-64 executable with one PT_LOAD segment per `(gpa, file size, memory
/// size)`, its entry at the first segment.
fn elf(segments: &[(u64, u64, u64)]) -> Vec<u8> {
    const PHDR: usize = 56;
    let data_at = 64 + PHDR * segments.len();
    let mut elf = vec![0u8; data_at];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf[24..32].copy_from_slice(&segments[0].0.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    for (i, &(gpa, file_size, mem_size)) in segments.iter().enumerate() {
        let ph = 64 + PHDR * i;
        let offset = elf.len() as u64;
        elf[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        elf[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
        elf[ph + 24..ph + 32].copy_from_slice(&gpa.to_le_bytes());
        elf[ph + 32..ph + 40].copy_from_slice(&file_size.to_le_bytes());
        elf[ph + 40..ph + 48].copy_from_slice(&mem_size.to_le_bytes());
        elf.resize(elf.len() + file_size as usize, 0x90);
    }
    elf
}

#[test]
fn a_present_image_shows_its_size_entry_and_segments() {
    let bytes = elf(&[(0x20_0000, 0x1000, 0x1000), (0x20_1000, 0x10, 0x3000)]);
    let explained = Explained::of("default.toml", |path, config| {
        WorkloadImage::Present(PresentImage::read(
            "/t/app.elf".into(),
            &bytes,
            path,
            config,
        ))
    });
    assert_eq!(
        explained.line("size"),
        ["size", &format!("{} bytes", bytes.len())]
    );
    assert_eq!(explained.line("entry"), ["entry", "0x200000"]);
    assert_eq!(
        explained.line("check"),
        [
            "check",
            "ok: loads into this configuration's private memory"
        ]
    );
    assert_eq!(
        explained.line("[0x200000, 0x201000)"),
        ["[0x200000, 0x201000)", "4K", "4K"]
    );
    assert_eq!(
        explained.line("[0x201000, 0x204000)"),
        ["[0x201000, 0x204000)", "16", "12K"]
    );
}

#[test]
fn an_image_that_does_not_fit_shows_the_problem() {
    // The shared slot is no place for code.
    let bytes = elf(&[(0x4000_0000, 0x10, 0x10)]);
    let explained = Explained::of("default.toml", |path, config| {
        WorkloadImage::Present(PresentImage::read(
            "/t/app.elf".into(),
            &bytes,
            path,
            config,
        ))
    });
    assert_eq!(explained.line("check"), ["check", "2 problems (below)"]);
    assert!(
        explained.text.contains(
            "workload.image: segment [0x40000000, 0x40000010) is not inside a private memory slot"
        ),
        "{}",
        explained.text
    );
    assert!(
        explained
            .text
            .contains("entry point 0x40000000 is not in private memory above 0x200000"),
        "{}",
        explained.text
    );
}
