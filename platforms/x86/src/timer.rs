//! The hypervisor's preemption tick: the local APIC timer, periodic, so that a workload
//! that never exits (an endless loop with its interrupts off) still gives the CPU back.
//!
//! The hypervisor itself runs with interrupts off. The world switch enters the guest with
//! the host's IF set and GIF clear, so the tick becomes an INTR exit (V_INTR_MASKING: the
//! guest's IF masks only its own virtual interrupts), and takes the pending interrupt
//! right after the exit in a one-instruction window where only [`TIMER_VECTOR`] and
//! [`SPURIOUS_VECTOR`] can arrive. Their stubs acknowledge the interrupt and return:
//! counting ticks is the VM's business (each INTR exit is one).

use core::arch::global_asm;

/// The tick's IDT vector: the first after the 32 exception vectors.
pub const TIMER_VECTOR: u8 = 32;
/// Where the APIC sends a spurious interrupt (low nibble all ones, as older APICs
/// require). It gets no EOI.
pub const SPURIOUS_VECTOR: u8 = 47;
/// Vectors the IDT covers.
pub const IDT_VECTORS: usize = SPURIOUS_VECTOR as usize + 1;

/// The xAPIC's registers, at the architectural reset base (checked in [`start`]).
const APIC_BASE: u64 = 0xfee0_0000;
const APIC_BASE_MSR: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const REG_EOI: u64 = 0xb0;
const REG_SPURIOUS: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_LINT0: u64 = 0x350;
const REG_LVT_LINT1: u64 = 0x360;
const REG_INITIAL_COUNT: u64 = 0x380;
const REG_DIVIDE: u64 = 0x3e0;
const SPURIOUS_APIC_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;

/// Why the tick cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// The APIC is in x2APIC mode or moved from its reset base; this module drives the
    /// xAPIC at 0xfee0_0000 only.
    ApicNotAtResetBase { apic_base_msr: u64 },
    /// The period does not fit the 32-bit initial count.
    PeriodTooLong,
}

/// Start the tick: every `period_counts` APIC timer counts (the bus clock divided by 1),
/// an interrupt on [`TIMER_VECTOR`]. The legacy PICs are masked first, so the tick is the
/// only external interrupt the workload's exits can carry.
pub fn start(period_counts: u64) -> Result<(), TimerError> {
    let initial = u32::try_from(period_counts).map_err(|_| TimerError::PeriodTooLong)?;
    // SAFETY: the APIC base MSR exists on every x86-64 CPU; reading it has no effect.
    let msr = unsafe { x86::msr::rdmsr(APIC_BASE_MSR) };
    if msr & APIC_BASE_X2APIC != 0 || msr & !0xfff != APIC_BASE {
        return Err(TimerError::ApicNotAtResetBase { apic_base_msr: msr });
    }
    mask_legacy_pics();
    // SAFETY: enabling the xAPIC at its reset base, which the checks above confirmed.
    unsafe { x86::msr::wrmsr(APIC_BASE_MSR, msr | APIC_BASE_ENABLE) };
    write(
        REG_SPURIOUS,
        SPURIOUS_APIC_ENABLE | u32::from(SPURIOUS_VECTOR),
    );
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_DIVIDE, DIVIDE_BY_1);
    write(REG_LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(REG_INITIAL_COUNT, initial);
    Ok(())
}

/// Both 8259s masked: firmware (SeaBIOS on `-M pc`) leaves the PIT's IRQ 0 routed to a
/// vector that is an exception vector here.
fn mask_legacy_pics() {
    // SAFETY: writing the interrupt mask registers of the 8259s has no other effect;
    // without the chips the writes go nowhere.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}

fn write(register: u64, value: u32) {
    let address = (APIC_BASE + register) as *mut u32;
    // SAFETY: the xAPIC page is identity mapped (the low 4 GiB are) and `register` is one
    // of its 32-bit registers; MMIO needs a volatile access.
    unsafe { address.write_volatile(value) }
}

// Timer: EOI, then return. Spurious: return. Neither touches the interrupted stack's red
// zone (both run on an IST stack) nor any register but RAX, which they restore.
global_asm!(
    ".pushsection .text.cloister_timer, \"ax\"",
    ".global cloister_timer_interrupt",
    "cloister_timer_interrupt:",
    "push rax",
    "mov rax, {eoi}",
    "mov dword ptr [rax], 0",
    "pop rax",
    "iretq",
    ".global cloister_spurious_interrupt",
    "cloister_spurious_interrupt:",
    "iretq",
    ".popsection",
    eoi = const APIC_BASE + REG_EOI,
);

unsafe extern "C" {
    static cloister_timer_interrupt: u8;
    static cloister_spurious_interrupt: u8;
}

/// The IDT handler for `vector` if it is one of this module's.
pub(crate) fn handler(vector: usize) -> Option<u64> {
    match vector {
        v if v == usize::from(TIMER_VECTOR) => {
            Some(core::ptr::addr_of!(cloister_timer_interrupt) as u64)
        }
        v if v == usize::from(SPURIOUS_VECTOR) => {
            Some(core::ptr::addr_of!(cloister_spurious_interrupt) as u64)
        }
        _ => None,
    }
}
