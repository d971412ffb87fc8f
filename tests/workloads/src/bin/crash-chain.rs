//! Crashes in a different way each time it is started, then exits cleanly: run under
//! `on_crash = "restart"`, one boot walks the hypervisor through every way a workload
//! can die. Which crash comes next is a counter in the last page of private memory,
//! which the image never covers: with `restart_memory = "keep"` it survives restarts
//! (so the instances take the cases in turn); with `"fresh"` every instance finds zeroed
//! memory and takes the first case again.
#![no_std]
#![no_main]

use cloister_guest::abi::MemoryKind;
use cloister_guest::{BootInfo, entry, println};

entry!(main);

/// Marks the counter page as written by an earlier instance of this workload.
const MAGIC: u64 = u64::from_le_bytes(*b"CRASHCHN");
/// Not in any region: the workload's memory ends far below it.
const UNMAPPED_GPA: u64 = 0x1_8000_0000;
/// The local APIC's page on the host: no device answers at this GPA in the guest.
const MMIO_GPA: u64 = 0xfee0_0000;
/// An MSR no hypervisor emulates (AMD's SYSCFG): the read raises #GP in the workload.
const UNEMULATED_MSR: u32 = 0xc001_0010;

/// The cases, in the order the instances take them. The QEMU test expects each
/// one's stop in this order.
const CASES: [&str; 7] = [
    "invalid opcode (#UD)",
    "non-canonical address (#GP)",
    "MSR the hypervisor refuses (#GP)",
    "endless loop with interrupts off",
    "unmapped GPA",
    "MMIO GPA",
    "HLT with interrupts off",
];

fn main(info: &'static BootInfo) -> i32 {
    let Some(private) = info
        .regions()
        .iter()
        .find(|r| r.kind() == Some(MemoryKind::Private))
    else {
        println!("crash-chain: no private memory");
        return 2;
    };
    let counter = (private.gpa + private.size - 16) as *mut [u64; 2];
    // SAFETY: the last 16 bytes of private memory, which nothing else in this workload
    // uses (the image and stack are far below).
    let [magic, count] = unsafe { counter.read_volatile() };
    let done = if magic == MAGIC { count } else { 0 };
    println!("crash-chain: instance found {done} crashes done");
    // SAFETY: as above.
    unsafe { counter.write_volatile([MAGIC, done + 1]) };
    let Some(case) = CASES.get(done as usize) else {
        println!("crash-chain: every case done");
        return 0;
    };
    println!("crash-chain: case {done}: {case}");
    crash(done)
}

fn crash(case: u64) -> ! {
    // SAFETY (all arms): each deliberately ends this instance; the hypervisor stops it
    // and the test checks how.
    unsafe {
        match case {
            0 => core::arch::asm!("ud2", options(noreturn)),
            1 => core::arch::asm!(
                "mov rax, [rcx]",
                "2: jmp 2b",
                in("rcx") 0x8000_0000_0000_0000u64,
                options(noreturn)
            ),
            2 => core::arch::asm!(
                "rdmsr",
                "2: jmp 2b",
                in("ecx") UNEMULATED_MSR,
                options(noreturn)
            ),
            3 => core::arch::asm!("cli", "2: jmp 2b", options(noreturn)),
            4 => {
                (UNMAPPED_GPA as *const u64).read_volatile();
            }
            5 => {
                (MMIO_GPA as *const u32).read_volatile();
            }
            _ => core::arch::asm!("cli", "hlt", options(noreturn)),
        }
    }
    println!("crash-chain: still running after case {case}; the hypervisor should have stopped it");
    loop {
        core::hint::spin_loop();
    }
}
