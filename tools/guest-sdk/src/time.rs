//! The time-stamp counter. Under QEMU's `-icount shift=0` one tick is one executed
//! instruction (hypervisor's and workload's alike), which is what the benchmarks count.

/// The current time-stamp counter.
pub fn ticks() -> u64 {
    // SAFETY: RDTSC only reads the counter; Cloister does not intercept it.
    unsafe { core::arch::x86_64::_rdtsc() }
}
