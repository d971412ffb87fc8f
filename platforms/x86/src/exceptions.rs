//! CPU exceptions in the hypervisor are bugs: each one ends in a crash report on the
//! console (vector, error code, RIP, CR2, registers, what the hypervisor was doing) and
//! the board's fatal exit. Workload exceptions never come here: they are delivered in
//! the workload or surface as VM exits.

use core::arch::global_asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

/// Distance between exception stubs: stub `v` is at `stubs_base() + v * STUB_STRIDE`.
pub const STUB_STRIDE: usize = 16;

/// Register state pushed by the stubs and the CPU, lowest address first.
#[repr(C)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

// Vectors 8, 10-14, 17, 21, 29 and 30 push an error code; the others get a 0 so that
// every frame has the same shape. NMI (vector 2) is not a bug: one that arrives while the
// workload runs stays pending across the exit and is taken right after STGI. Its stub
// just returns (IRETQ also unblocks further NMIs); it runs on its own IST stack and
// touches no register.
global_asm!(
    ".pushsection .text.cloister_exceptions, \"ax\"",
    ".balign 16",
    "cloister_exception_stubs:",
    ".balign 16; push 0; push 0; jmp cloister_exception_common",
    ".balign 16; push 0; push 1; jmp cloister_exception_common",
    ".balign 16; iretq",
    ".balign 16; push 0; push 3; jmp cloister_exception_common",
    ".balign 16; push 0; push 4; jmp cloister_exception_common",
    ".balign 16; push 0; push 5; jmp cloister_exception_common",
    ".balign 16; push 0; push 6; jmp cloister_exception_common",
    ".balign 16; push 0; push 7; jmp cloister_exception_common",
    ".balign 16; push 8; jmp cloister_exception_common",
    ".balign 16; push 0; push 9; jmp cloister_exception_common",
    ".balign 16; push 10; jmp cloister_exception_common",
    ".balign 16; push 11; jmp cloister_exception_common",
    ".balign 16; push 12; jmp cloister_exception_common",
    ".balign 16; push 13; jmp cloister_exception_common",
    ".balign 16; push 14; jmp cloister_exception_common",
    ".balign 16; push 0; push 15; jmp cloister_exception_common",
    ".balign 16; push 0; push 16; jmp cloister_exception_common",
    ".balign 16; push 17; jmp cloister_exception_common",
    ".balign 16; push 0; push 18; jmp cloister_exception_common",
    ".balign 16; push 0; push 19; jmp cloister_exception_common",
    ".balign 16; push 0; push 20; jmp cloister_exception_common",
    ".balign 16; push 21; jmp cloister_exception_common",
    ".balign 16; push 0; push 22; jmp cloister_exception_common",
    ".balign 16; push 0; push 23; jmp cloister_exception_common",
    ".balign 16; push 0; push 24; jmp cloister_exception_common",
    ".balign 16; push 0; push 25; jmp cloister_exception_common",
    ".balign 16; push 0; push 26; jmp cloister_exception_common",
    ".balign 16; push 0; push 27; jmp cloister_exception_common",
    ".balign 16; push 0; push 28; jmp cloister_exception_common",
    ".balign 16; push 29; jmp cloister_exception_common",
    ".balign 16; push 30; jmp cloister_exception_common",
    ".balign 16; push 0; push 31; jmp cloister_exception_common",
    ".balign 16",
    "cloister_exception_common:",
    "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
    "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
    "mov rdi, rsp",
    "call {report}",
    "ud2",
    ".popsection",
    report = sym report,
);

unsafe extern "C" {
    static cloister_exception_stubs: u8;
}

pub fn stubs_base() -> u64 {
    core::ptr::addr_of!(cloister_exception_stubs) as u64
}

const NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

/// Set once a report has started: a fault while reporting must not report (and fault)
/// again on the same IST stack forever.
static REPORTING: AtomicBool = AtomicBool::new(false);

extern "sysv64" fn report(frame: &ExceptionFrame) -> ! {
    if REPORTING.swap(true, Ordering::Relaxed) {
        crate::fatal_exit(crate::Failure::Hypervisor)
    }
    // SAFETY: reading control registers has no side effects.
    let (cr0, cr2, cr3, cr4) = unsafe {
        (
            x86::controlregs::cr0().bits(),
            x86::controlregs::cr2(),
            x86::controlregs::cr3(),
            x86::controlregs::cr4().bits(),
        )
    };
    if let Some(mut out) = crate::console::emergency() {
        let f = frame;
        let name = NAMES.get(f.vector as usize).copied().unwrap_or("?");
        let _ = writeln!(
            out,
            "\ncloister: CPU exception in the hypervisor: {name} (vector {})",
            f.vector
        );
        let _ = writeln!(out, "  while: {}", crate::phase());
        let _ = writeln!(out, "  error code: {:#x}", f.error_code);
        let _ = writeln!(
            out,
            "  rip: {:#018x}  cs: {:#x}  rflags: {:#x}",
            f.rip, f.cs, f.rflags
        );
        let _ = writeln!(out, "  rsp: {:#018x}  ss: {:#x}", f.rsp, f.ss);
        let _ = writeln!(out, "  cr2: {cr2:#018x}  (faulting address for #PF)");
        let _ = writeln!(out, "  cr0: {cr0:#x}  cr3: {cr3:#x}  cr4: {cr4:#x}");
        let _ = writeln!(
            out,
            "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
            f.rax, f.rbx, f.rcx, f.rdx
        );
        let _ = writeln!(
            out,
            "  rsi {:#018x} rdi {:#018x} rbp {:#018x}",
            f.rsi, f.rdi, f.rbp
        );
        let _ = writeln!(
            out,
            "  r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}",
            f.r8, f.r9, f.r10, f.r11
        );
        let _ = writeln!(
            out,
            "  r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}",
            f.r12, f.r13, f.r14, f.r15
        );
    }
    crate::fatal_exit(crate::Failure::Hypervisor)
}
