//! Cache maintenance when frames change hands between the host and a SEV guest (spec
//! digest D.7): lines are tagged with the key they were written under, and a frame
//! moving between keys must leave no dirty line of the old key behind.
//!
//! Every operation takes host-physical frames. The hypervisor never maps private
//! pools, so the real implementation (the board) maps each frame for the flush; the
//! model keeps per-key dirty lines ([`crate::sev::rmp::RmpModel`]).

/// The cache operations the SEV and SEV-SNP hooks need.
pub trait SevCache {
    /// Whether the CPU keeps caches coherent across encryption keys (CPUID
    /// 0x8000_001F EAX bit 10, SME_COHERENT): then host-key lines need no flush before a
    /// frame goes to the guest.
    fn coherent_across_keys(&self) -> bool;
    /// CLFLUSH `frames` frames at `pa` through a host mapping: the host-key lines.
    fn flush_host_lines(&mut self, pa: u64, frames: u64);
    /// VM_PAGE_FLUSH (MSR 0xC001_011E, VA | ASID) of each frame: the lines tagged with
    /// `asid`'s key. Falls back to a full writeback where the MSR is missing.
    fn flush_guest_lines(&mut self, pa: u64, frames: u64, asid: u32);
    /// WBINVD on every CPU: every line of every key is written back.
    fn write_back_all(&mut self);
}
