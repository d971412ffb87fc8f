//! Shared by the `measure` and `measure-variant` workloads, which differ only in the
//! `VARIANT` string each embeds: prints INFO's view and the launch measurement.

use cloister_guest::abi::ABI_VERSION;
use cloister_guest::abi::hypercall::FEATURES;
use cloister_guest::{BootInfo, info, println};

pub fn run(_: &'static BootInfo, variant: &str) -> i32 {
    let Ok(bytes) = info::info_bytes() else {
        println!("measure: INFO failed");
        return 1;
    };
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let features = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or([0; 8]));
    println!(
        "measure: info version={version:#x} features={features:#x} ok={}",
        version == ABI_VERSION && features == FEATURES
    );
    let Ok(digest) = info::measurement() else {
        println!("measure: MEASUREMENT failed");
        return 1;
    };
    let mut hex = [0u8; 96];
    for (i, b) in digest.iter().enumerate() {
        hex[2 * i] = b"0123456789abcdef"[usize::from(b >> 4)];
        hex[2 * i + 1] = b"0123456789abcdef"[usize::from(b & 0xf)];
    }
    println!(
        "measure: variant {variant} digest {}",
        core::str::from_utf8(&hex).unwrap_or("?")
    );
    0
}
