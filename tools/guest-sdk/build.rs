//! Puts workload.ld on the linker search path of every workload that depends on the SDK;
//! the workload's own build script adds `-Tworkload.ld` (see `cloister_guest` docs).
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::copy("workload.ld", out.join("workload.ld")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=workload.ld");
}
