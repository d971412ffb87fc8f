//! What the VM needs from the board it runs on.

use crate::mmu::TableMemory;

/// CPUID output registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

pub trait Host: TableMemory {
    /// Run `f` on the 4 KiB host frame at `pa`. Private frames are not in the
    /// hypervisor's address space: the board maps such a frame only for the call.
    fn with_frame<R>(&mut self, pa: u64, f: impl FnOnce(&mut [u8; 4096]) -> R) -> R;
    /// Append workload console output to the appliance console.
    fn console_write(&mut self, bytes: &[u8]);
    /// The host CPU's CPUID, the base the workload's view is filtered from.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
    /// A monotonic cycle counter, for the counters the benchmarks read.
    fn ticks(&self) -> u64;
}
