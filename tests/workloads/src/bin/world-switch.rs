//! Checks that exits preserve the workload's registers: loads every GPR and XMM register
//! with a distinct pattern, takes a hypercall exit and a port I/O exit, and compares.
//! Only RAX may change (it carries the hypercall's result).
#![no_std]
#![no_main]

use cloister_guest::{BootInfo, entry, println};
use core::arch::global_asm;

entry!(main);

/// 14 GPRs (all but RAX, RSP) then 16 XMM registers as 32 quadwords.
const SLOTS: usize = 14 + 32;

global_asm!(
    ".global world_switch_probe",
    "world_switch_probe:",
    // rdi = output buffer. Save the callee-saved registers we overwrite.
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi",
    "mov rax, 0x5151515151515151",
    "movq xmm0, rax",
    "punpcklqdq xmm0, xmm0",
    ".irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
    "mov rax, 0x0101010101010101 * \\n + 0x0f00",
    "movq xmm\\n, rax",
    "punpcklqdq xmm\\n, xmm\\n",
    ".endr",
    "mov rbx, 0xb0b0b0b0b0b0b0b0",
    "mov rcx, 0xc0c0c0c0c0c0c0c0",
    "mov rdx, 0xd0d0d0d0d0d0d0d0",
    "mov rsi, 0x5151515151515151",
    "mov rbp, 0xbdbdbdbdbdbdbdbd",
    "mov r8, 0x0808080808080808",
    "mov r9, 0x0909090909090909",
    "mov r10, 0x1010101010101010",
    "mov r11, 0x1111111111111111",
    "mov r12, 0x1212121212121212",
    "mov r13, 0x1313131313131313",
    "mov r14, 0x1414141414141414",
    "mov r15, 0x1515151515151515",
    "mov rax, 0xffff", // not a call: the hypervisor answers UNKNOWN_CALL in RAX
    "vmmcall",
    "out 0x80, al", // a port nobody claims: an I/O exit
    "vmmcall",
    "mov rax, [rsp]", // the output buffer
    "mov [rax + 0], rbx",
    "mov [rax + 8], rcx",
    "mov [rax + 16], rdx",
    "mov [rax + 24], rsi",
    "mov [rax + 32], rdi",
    "mov [rax + 40], rbp",
    "mov [rax + 48], r8",
    "mov [rax + 56], r9",
    "mov [rax + 64], r10",
    "mov [rax + 72], r11",
    "mov [rax + 80], r12",
    "mov [rax + 88], r13",
    "mov [rax + 96], r14",
    "mov [rax + 104], r15",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
    "movdqu [rax + 112 + 16 * \\n], xmm\\n",
    ".endr",
    "pop rdi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
);

unsafe extern "sysv64" {
    fn world_switch_probe(out: *mut [u64; SLOTS]);
}

fn main(_: &'static BootInfo) -> i32 {
    let mut out = [0u64; SLOTS];
    // SAFETY: the probe writes exactly SLOTS quadwords to `out` and restores every
    // callee-saved register; it clobbers caller-saved GPRs and XMM registers, which the
    // call already treats as clobbered.
    unsafe { world_switch_probe(&mut out) };
    let rdi = out.as_ptr() as u64;
    let gprs = [
        ("rbx", 0xb0b0b0b0b0b0b0b0),
        ("rcx", 0xc0c0c0c0c0c0c0c0),
        ("rdx", 0xd0d0d0d0d0d0d0d0),
        ("rsi", 0x5151515151515151),
        ("rdi", rdi),
        ("rbp", 0xbdbdbdbdbdbdbdbd),
        ("r8", 0x0808080808080808),
        ("r9", 0x0909090909090909),
        ("r10", 0x1010101010101010),
        ("r11", 0x1111111111111111),
        ("r12", 0x1212121212121212),
        ("r13", 0x1313131313131313),
        ("r14", 0x1414141414141414),
        ("r15", 0x1515151515151515),
    ];
    let mut bad = 0;
    for (i, (name, want)) in gprs.iter().enumerate() {
        if out[i] != *want {
            println!("world-switch: {name} = {:#x}, expected {want:#x}", out[i]);
            bad += 1;
        }
    }
    for n in 0..16u64 {
        let want = if n == 0 {
            0x5151515151515151
        } else {
            0x0101010101010101u64.wrapping_mul(n) + 0x0f00
        };
        let (lo, hi) = (out[14 + 2 * n as usize], out[15 + 2 * n as usize]);
        if lo != want || hi != want {
            println!("world-switch: xmm{n} = {hi:#x}:{lo:#x}, expected {want:#x} twice");
            bad += 1;
        }
    }
    println!(
        "world-switch: {} registers checked across 3 exits, {bad} changed",
        gprs.len() + 16
    );
    if bad == 0 { 0 } else { 1 }
}
