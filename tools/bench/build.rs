fn main() {
    for arg in [
        "-Tworkload.ld",
        "-nostartfiles",
        "-static",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
