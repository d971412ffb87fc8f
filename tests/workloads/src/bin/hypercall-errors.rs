//! Makes bad hypercalls and checks each gets its documented error. Its configuration
//! permits console_write and exit only.
#![no_std]
#![no_main]

use cloister_guest::abi::{Call, Error, MemoryKind};
use cloister_guest::hypercall::raw_hypercall;
use cloister_guest::{BootInfo, entry, println};

entry!(main);

fn main(info: &'static BootInfo) -> i32 {
    let private = info
        .regions()
        .iter()
        .find(|r| r.kind() == Some(MemoryKind::Private))
        .map_or(0, |r| r.gpa + 0x30_0000);
    let shared = info.shared_region().map_or(0, |r| r.gpa);
    let cases: [(&str, u64, [u64; 4], Error); 6] = [
        (
            "console_write from private memory",
            Call::ConsoleWrite as u64,
            [private, 8, 0, 0],
            Error::NotShared,
        ),
        (
            "console_write running off shared memory",
            Call::ConsoleWrite as u64,
            [shared + (2 << 20) - 4, 8, 0, 0],
            Error::NotShared,
        ),
        (
            "console_write too long",
            Call::ConsoleWrite as u64,
            [shared, 4097, 0, 0],
            Error::InvalidArgument,
        ),
        ("unknown call 0", 0, [0; 4], Error::UnknownCall),
        (
            "unknown call 0xdead",
            0xdead,
            [shared, 8, 0, 0],
            Error::UnknownCall,
        ),
        (
            "measurement (not permitted)",
            Call::Measurement as u64,
            [shared, 48, 0, 0],
            Error::Denied,
        ),
    ];
    let mut failed = 0;
    for (what, number, args, expected) in cases {
        let got = raw_hypercall(number, args);
        let ok = got == expected.to_rax();
        failed += u32::from(!ok);
        println!(
            "hypercall-errors: {what}: {} ({})",
            got as i64,
            if ok { "as documented" } else { "WRONG" }
        );
    }
    println!("hypercall-errors: {failed} wrong");
    if failed == 0 { 0 } else { 1 }
}
