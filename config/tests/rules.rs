//! Every configuration rule, each fed a file that breaks it: the error must name the key
//! with file:line:col and say what is wrong.

use cloister_config::{HYPERVISOR_RESERVED, check_image, load, parse, place};
use std::path::Path;

const DEFAULT: &str = include_str!("../default.toml");

/// The default configuration with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(
        DEFAULT.contains(from),
        "test bug: {from:?} is not in default.toml"
    );
    DEFAULT.replacen(from, to, 1)
}

/// The error report for `text`, which must be rejected.
fn rejected(text: String) -> String {
    match parse(Path::new("bad.toml"), text) {
        Ok(_) => panic!("accepted a configuration that breaks a rule"),
        Err(e) => e.to_string(),
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).expect("needle")]
        .matches('\n')
        .count()
        + 1
}

fn assert_reports(report: &str, location: &str, key: &str, message: &str) {
    let head = format!("bad.toml:{location}: {key}: ");
    assert!(report.contains(&head), "expected `{head}` in:\n{report}");
    assert!(
        report.contains(message),
        "expected {message:?} in:\n{report}"
    );
}

#[test]
fn shipped_configs_are_valid() {
    for name in ["default", "edge-gateway", "tdx"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{name}.toml"));
        let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
        place(&config).unwrap();
    }
}

#[test]
fn unknown_keys_suggest_the_nearest_name() {
    let text = edited("log_level = \"info\"", "log_levle = \"info\"");
    let line = line_of(&text, "log_levle");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:1"),
        "hypervisor.log_levle",
        "unknown key `log_levle`",
    );
    assert!(report.contains("did you mean `log_level`?"), "{report}");
}

#[test]
fn unknown_keys_in_arrays_of_tables_name_the_element() {
    let text = edited("kind = \"shared\"", "kind = \"shared\"\npage_sise = \"4K\"");
    let line = line_of(&text, "page_sise");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:1"),
        "pool[1].page_sise",
        "did you mean `page_size`?",
    );
}

#[test]
fn missing_required_keys_are_named() {
    let report = rejected(edited("name = \"demo-shared\"\n", ""));
    assert!(
        report.contains("pool[1].name: missing required key"),
        "{report}"
    );
}

#[test]
fn invalid_enum_values_suggest_the_nearest() {
    let text = edited("backend = \"svm\"", "backend = \"sev_snp\"");
    let line = line_of(&text, "sev_snp");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:11"),
        "hypervisor.backend",
        "invalid value \"sev_snp\"",
    );
    assert!(report.contains("did you mean \"sev-snp\"?"), "{report}");
}

#[test]
fn sizes_must_be_page_multiples() {
    let text = edited("size = \"64M\"\n\n[[pool]]", "size = \"64M\"\n\n[[pool]]").replacen(
        "size = \"2M\"\n",
        "size = 5000\n",
        1,
    );
    let line = line_of(&text, "size = 5000");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:8"),
        "pool[1].size",
        "5000 is not a non-zero multiple of 4K",
    );
}

#[test]
fn bases_must_be_page_multiples() {
    let text = edited(
        "kind = \"private\"",
        "kind = \"private\"\nbase = 0x400_0800",
    );
    let report = rejected(text);
    assert!(
        report.contains("pool[0].base: 0x4000800 is not a multiple of 4K"),
        "{report}"
    );
}

#[test]
fn a_2m_pool_needs_2m_aligned_size_and_base() {
    let text = edited("size = \"64M\"\n", "size = \"63M\"\npage_size = \"2M\"\n");
    let report = rejected(text);
    assert!(
        report.contains("pool[0].size: 63M is not a non-zero multiple of 2M"),
        "{report}"
    );
    let text = edited(
        "kind = \"private\"",
        "kind = \"private\"\npage_size = \"2M\"\nbase = 0x400_1000",
    );
    let report = rejected(text);
    assert!(
        report.contains("pool[0].base: 0x4001000 is not a multiple of 2M"),
        "{report}"
    );
}

#[test]
fn fixed_pools_must_not_overlap() {
    let text = edited(
        "kind = \"private\"",
        "kind = \"private\"\nbase = 0x400_0000",
    )
    .replacen(
        "kind = \"shared\"",
        "kind = \"shared\"\nbase = 0x600_0000",
        1,
    );
    let line = line_of(&text, "base = 0x600_0000");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:8"),
        "pool[1].base",
        "overlaps pool \"demo-private\"",
    );
}

#[test]
fn pools_must_not_overlap_the_hypervisor_image() {
    let text = edited(
        "kind = \"private\"",
        "kind = \"private\"\nbase = 0x100_0000",
    );
    let report = rejected(text);
    assert!(
        report.contains("pool[0].base: [0x1000000, 0x5000000) overlaps the hypervisor image"),
        "{report}"
    );
    assert!(
        report.contains(&format!("at or above {:#x}", HYPERVISOR_RESERVED.end)),
        "{report}"
    );
}

#[test]
fn fixed_pools_must_be_in_declared_ram() {
    let text = edited(
        "kind = \"private\"",
        "kind = \"private\"\nbase = 0x4000_0000",
    );
    let report = rejected(text);
    assert!(
        report.contains(
            "pool[0].base: [0x40000000, 0x44000000) is outside the RAM declared in platform.ram"
        ),
        "{report}"
    );
}

#[test]
fn pools_that_do_not_fit_get_advice() {
    let text = edited("size = \"64M\"\n", "size = \"1G\"\n");
    let line = line_of(&text, "size = \"1G\"");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:8"),
        "pool[0].size",
        "pool \"demo-private\" (1G) does not fit in free RAM",
    );
    assert!(report.contains("largest free block is 480M"), "{report}");
    assert!(
        report.contains("declare more RAM in platform.ram"),
        "{report}"
    );
}

#[test]
fn memslots_must_not_collide() {
    let report = rejected(edited("gpa = 0x4000_0000", "gpa = 0x100_0000"));
    assert!(
        report.contains("workload.memory[1].gpa: GPA range collides with workload.memory[0]"),
        "{report}"
    );
}

#[test]
fn memslots_must_fit_their_pool() {
    let report = rejected(edited(
        "gpa = 0x4000_0000\nsize = \"2M\"",
        "gpa = 0x4000_0000\nsize = \"4M\"",
    ));
    assert!(
        report.contains("workload.memory[1].size: 4M is larger than pool \"demo-shared\" (2M)"),
        "{report}"
    );
}

#[test]
fn a_pool_backs_one_memslot() {
    let report = rejected(edited("pool = \"demo-shared\"", "pool = \"demo-private\""));
    assert!(
        report.contains(
            "workload.memory[1].pool: pool \"demo-private\" already backs workload.memory[0]"
        ),
        "{report}"
    );
}

#[test]
fn memslots_name_existing_pools() {
    let report = rejected(edited("pool = \"demo-shared\"", "pool = \"demo-shard\""));
    assert!(
        report.contains("workload.memory[1].pool: no pool named \"demo-shard\""),
        "{report}"
    );
    assert!(report.contains("did you mean \"demo-shared\"?"), "{report}");
}

#[test]
fn a_private_slot_cannot_be_backed_by_a_shared_pool_and_back() {
    let report = rejected(edited(
        "pool = \"demo-shared\"",
        "pool = \"demo-shared\"\ndefault = \"private\"",
    ));
    assert!(report.contains("workload.memory[1].default: a private slot cannot be backed by shared pool \"demo-shared\""), "{report}");
    let report = rejected(edited(
        "pool = \"demo-private\"",
        "pool = \"demo-private\"\ndefault = \"shared\"",
    ));
    assert!(report.contains("workload.memory[0].default: a shared slot cannot be backed by private pool \"demo-private\""), "{report}");
}

#[test]
fn the_boot_area_must_be_private() {
    let report = rejected(edited("gpa = 0x0\n", "gpa = 0x100_0000\n"));
    assert!(
        report.contains("workload.memory: no private slot covers guest-physical [0, 0x200000)"),
        "{report}"
    );
}

#[test]
fn vcpus_must_be_one() {
    let text = edited("vcpus = 1", "vcpus = 0");
    let line = line_of(&text, "vcpus = 0");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:9"),
        "workload.vcpus",
        "0 vCPUs: the workload could never run",
    );
    let report = rejected(edited("vcpus = 1", "vcpus = 4"));
    assert!(
        report.contains("workload.vcpus: 4 vCPUs are not supported yet"),
        "{report}"
    );
}

#[test]
fn the_board_must_be_known_and_builds_every_backend() {
    for backend in ["svm", "sev", "sev-snp", "tdx"] {
        let text = edited("backend = \"svm\"", &format!("backend = \"{backend}\""));
        parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{backend}: {e}"));
    }
    let report = rejected(edited("backend = \"svm\"", "backend = \"sev-es\""));
    assert!(report.contains("hypervisor.backend"), "{report}");
    let report = rejected(edited("board = \"qemu-x86_64\"", "board = \"qemu-x86-64\""));
    assert!(
        report.contains("hypervisor.board: unknown board \"qemu-x86-64\""),
        "{report}"
    );
    assert!(report.contains("did you mean \"qemu-x86_64\"?"), "{report}");
}

#[test]
fn hypercall_names_must_exist() {
    let text = edited(
        "hypercalls = [\"console_write\", \"exit\"]",
        "hypercalls = [\"console_write\", \"exti\"]",
    );
    let line = line_of(&text, "exti");
    let report = rejected(text);
    assert_reports(
        &report,
        &format!("{line}:32"),
        "workload.hypercalls[1]",
        "unknown hypercall \"exti\"",
    );
    assert!(report.contains("did you mean \"exit\"?"), "{report}");
}

#[test]
fn pool_names_must_be_unique() {
    let report = rejected(edited("name = \"demo-shared\"", "name = \"demo-private\""));
    assert!(
        report.contains("pool[1].name: duplicate pool name \"demo-private\" (also pool[0])"),
        "{report}"
    );
}

#[test]
fn console_and_log_need_different_ports() {
    let report = rejected(edited("log_port = 0x2f8", "log_port = 0x3f8"));
    assert!(
        report.contains("hypervisor.log_port: 0x3f8 is also the console port"),
        "{report}"
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = edited("vcpus = 1", "vcpus = 0").replacen("log_port = 0x2f8", "log_port = 0x3f8", 1);
    let report = rejected(text);
    assert!(
        report.contains("workload.vcpus") && report.contains("hypervisor.log_port"),
        "{report}"
    );
    assert!(report.ends_with("2 problems"), "{report}");
}

#[test]
fn syntax_errors_have_a_location() {
    let report = rejected(edited("vcpus = 1", "vcpus = = 1"));
    let line = line_of(DEFAULT, "vcpus = 1");
    assert!(report.contains(&format!("bad.toml:{line}:")), "{report}");
}

fn workload_image_problems(image: &[u8]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("default.toml");
    let config = load(&path).unwrap();
    check_image(&path, &config, image).unwrap_err().to_string()
}

/// A minimal ET_EXEC with one PT_LOAD of `size` bytes at `gpa`.
fn elf(gpa: u64, size: u64) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[24..32].copy_from_slice(&gpa.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    b[64..68].copy_from_slice(&1u32.to_le_bytes());
    b[64 + 16..64 + 24].copy_from_slice(&gpa.to_le_bytes());
    b[64 + 24..64 + 32].copy_from_slice(&gpa.to_le_bytes());
    b[64 + 40..64 + 48].copy_from_slice(&size.to_le_bytes());
    b
}

#[test]
fn the_workload_image_must_be_an_elf64_x86_64_executable() {
    let report = workload_image_problems(b"#!/bin/sh\necho not an ELF\n");
    assert!(
        report.contains("workload.image: \"demo\": not an ELF file"),
        "{report}"
    );
    let mut i386 = elf(0x20_0000, 16);
    i386[4] = 1;
    assert!(workload_image_problems(&i386).contains("not an ELF64 little-endian x86-64 file"));
}

#[test]
fn workload_segments_must_lie_in_private_slots() {
    let report = workload_image_problems(&elf(0x4000_0000, 0x1000));
    assert!(
        report.contains(
            "workload.image: segment [0x40000000, 0x40001000) is not inside a private memory slot"
        ),
        "{report}"
    );
    let report = workload_image_problems(&elf(0x1000, 0x1000));
    assert!(report.contains("segment [0x1000, 0x2000)"), "{report}");
}

/// The board builds SEV and SEV-SNP images (model mode under QEMU).
#[test]
fn the_sev_examples_load() {
    for (file, backend) in [
        ("sev.toml", cloister_config::Backend::Sev),
        ("sev-snp.toml", cloister_config::Backend::SevSnp),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let config = load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config.hypervisor.backend, backend);
        place(&config).unwrap();
    }
}

/// The board builds a TDX image (which stops at boot where the CPU has no TDX).
#[test]
fn the_tdx_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tdx.toml");
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.hypervisor.backend, cloister_config::Backend::Tdx);
    place(&config).unwrap();
    let default_as_tdx = edited("backend = \"svm\"", "backend = \"tdx\"");
    parse(Path::new("tdx.toml"), default_as_tdx).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_missing_workload_image_is_reported_at_its_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("default.toml");
    let line = line_of(DEFAULT, "image = \"demo\"");
    let report = cloister_config::missing_image(&path, Path::new("/nowhere/app.elf")).to_string();
    let head = format!("default.toml:{line}:9: workload.image: no such file: /nowhere/app.elf");
    assert!(report.contains(&head), "{report}");
}

#[test]
fn ram_at_the_top_of_the_address_space_is_not_a_panic() {
    let text = edited(
        "ram = [{ base = 0x0, size = \"512M\" }]",
        "ram = [{ base = \"0xFFFFFFFFFFFFE000\", size = \"4K\" }, { base = 0x0, size = \"512M\" }]",
    );
    parse(Path::new("bad.toml"), text).expect("RAM the board cannot reach is simply not used");
}

#[test]
fn pools_must_end_below_4_gib() {
    let text = edited(
        "ram = [{ base = 0x0, size = \"512M\" }]",
        "ram = [{ base = 0x0, size = \"8G\" }]",
    )
    .replacen(
        "kind = \"private\"",
        "kind = \"private\"\nbase = 0xFFE0_0000",
        1,
    );
    let report = rejected(text);
    assert!(
        report.contains("pool[0].base: [0xffe00000, 0x103e00000) ends above 4 GiB"),
        "{report}"
    );
}

#[test]
fn placed_pools_stay_below_4_gib() {
    let text = edited(
        "ram = [{ base = 0x0, size = \"512M\" }]",
        "ram = [{ base = 0x0, size = \"32M\" }, { base = 0x1_0000_0000, size = \"1G\" }]",
    );
    let report = rejected(text);
    assert!(
        report.contains("pool \"demo-private\" (64M) does not fit in free RAM"),
        "{report}"
    );
}

#[test]
fn the_heap_must_fit_the_reserved_range() {
    let report = rejected(edited("heap_size = \"1M\"", "heap_size = \"1T\""));
    assert!(
        report
            .contains("hypervisor.heap_size: 1T does not fit in the hypervisor's reserved memory"),
        "{report}"
    );
}

#[test]
fn the_entry_point_must_be_above_the_boot_area() {
    let mut image = elf(0x20_0000, 0x1000);
    image[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
    let report = workload_image_problems(&image);
    assert!(
        report.contains("entry point 0x1000 is not in private memory above 0x200000"),
        "{report}"
    );
}

#[test]
fn the_crash_policy_must_be_one_that_can_happen() {
    let cases = [
        (
            "on_crash = \"halt\"\nmax_restarts = 2",
            "workload.max_restarts: 2 restarts allowed, but on_crash = \"halt\" never restarts",
        ),
        (
            "on_crash = \"restart\"",
            "workload.max_restarts: on_crash = \"restart\" with max_restarts = 0 would never restart",
        ),
        (
            "on_crash = \"restart\"\nmax_restarts = 101",
            "workload.max_restarts: 101 restarts: at most 100 are allowed",
        ),
        (
            "on_crash = \"halt\"\nwatchdog_ms = 5",
            "workload.watchdog_ms: 5 ms: the watchdog takes 0 (off) or 10 to 3600000 ms",
        ),
        (
            "on_crash = \"halt\"\nrestart_memory = \"scrubbed\"",
            "workload.restart_memory: invalid value \"scrubbed\"",
        ),
    ];
    for (policy, message) in cases {
        let report = rejected(edited("on_crash = \"halt\"", policy));
        assert!(report.contains(message), "{policy:?}:\n{report}");
    }
    let accepted = edited(
        "on_crash = \"halt\"",
        "on_crash = \"restart\"\nmax_restarts = 3\nrestart_memory = \"fresh\"\nwatchdog_ms = 250",
    );
    parse(Path::new("good.toml"), accepted).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn restart_is_refused_for_the_confidential_backends() {
    let restart = edited(
        "on_crash = \"halt\"",
        "on_crash = \"restart\"\nmax_restarts = 1",
    );
    for backend in ["sev", "sev-snp", "tdx"] {
        let text = restart.replacen("backend = \"svm\"", &format!("backend = \"{backend}\""), 1);
        let report = rejected(text);
        assert!(
            report.contains(&format!(
                "workload.on_crash: on_crash = \"restart\" is not supported with backend \"{backend}\" yet"
            )),
            "{report}"
        );
    }
}
