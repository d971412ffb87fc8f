//! Compiles the appliance configuration into the image and links it with our script.
//!
//! Inputs (set by `cargo xtask`): CLOISTER_CONFIG, the TOML file (default:
//! config/default.toml); CLOISTER_WORKLOAD_ELF, the workload image to embed (when unset,
//! as under `cargo clippy`, an empty image is embedded and launch reports it);
//! CLOISTER_SELFTEST, test-only: one of SELFTESTS makes the hypervisor fail on purpose
//! right after boot, so tests can check the crash report, the panic path and that a
//! private frame is not in the hypervisor's page tables. The runner's `Selftest` enum
//! (tools/runner/src/build_options.rs) lists the same names.

use std::path::PathBuf;

/// "page-fault": read an unmapped address; "panic": panic; "read-private": read the
/// first private pool through its physical address once the hypervisor's own tables
/// are in place.
const SELFTESTS: [&str; 3] = ["page-fault", "panic", "read-private"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=CLOISTER_CONFIG");
    println!("cargo:rerun-if-env-changed=CLOISTER_WORKLOAD_ELF");
    println!("cargo:rerun-if-env-changed=CLOISTER_SELFTEST");
    println!("cargo:rerun-if-env-changed=CLOISTER_BENCH_HOOKS");
    // Benchmark images answer the bench-only calls (cloister_abi::hypercall::bench).
    let bench_hooks = std::env::var("CLOISTER_BENCH_HOOKS").is_ok_and(|v| v == "1");
    let selftest = std::env::var("CLOISTER_SELFTEST").unwrap_or_default();
    if !selftest.is_empty() && !SELFTESTS.contains(&selftest.as_str()) {
        fail(&format!(
            "CLOISTER_SELFTEST={selftest:?}: expected empty or one of {SELFTESTS:?}"
        ));
    }
    let config_path = std::env::var_os("CLOISTER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../config/default.toml"));
    println!("cargo:rerun-if-changed={}", config_path.display());
    let config = cloister_config::load(&config_path).unwrap_or_else(|e| fail(&e.to_string()));
    let layout = cloister_config::place(&config).expect("load() checked placement");
    let workload = match std::env::var_os("CLOISTER_WORKLOAD_ELF") {
        Some(path) => PathBuf::from(path),
        None => {
            let empty = out.join("no-workload.elf");
            std::fs::write(&empty, b"").unwrap();
            empty
        }
    };
    println!("cargo:rerun-if-changed={}", workload.display());
    if std::env::var_os("CLOISTER_WORKLOAD_ELF").is_some() {
        let image = std::fs::read(&workload)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", workload.display())));
        cloister_config::check_image(&config_path, &config, &image)
            .unwrap_or_else(|e| fail(&e.to_string()));
    }
    let mut code = cloister_config::generate(&config, &layout, &workload);
    code.push_str(&format!("pub const SELFTEST: &str = {selftest:?};\n"));
    code.push_str(&format!("pub const BENCH_HOOKS: bool = {bench_hooks};\n"));
    std::fs::write(out.join("config.rs"), code).unwrap();

    let script = manifest.join("link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    link_arg(&format!("-T{}", script.display()));
    link_arg("-nostartfiles");
    link_arg("-static");
    link_arg("-Wl,--build-id=none");
    link_arg("-Wl,-z,max-page-size=4096");
}

fn link_arg(arg: &str) {
    println!("cargo:rustc-link-arg-bins={arg}");
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
