//! One workload's VM: its memory, its second-level table, and the exit loop.

use crate::exit::{Access, Exit};
use crate::host::Host;
use crate::memslot::{Backing, MAX_SLOTS, Memslot, SlotSpec};
use crate::mmu::{MmuError, PageSize, Perms, PteFormat, SecondLevelTable};
use crate::stop::Stop;
use crate::vcpu::{Vcpu, vector};
use crate::{cpuid, hypercall};
use cloister_abi::boot::NAME_LEN;
use cloister_privmem::PoolError;

/// Guest-physical address bits the second-level table translates.
const GPA_BITS: u32 = 48;

/// What the board tells core about the workload's VM.
pub struct VmSpec<'a> {
    pub name: &'a str,
    pub slots: &'a [SlotSpec],
    /// Bit i set: hypercall i is permitted.
    pub allowed_calls: u64,
}

/// Counters reported in the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub exits: u64,
    pub npf: u64,
    pub hypercalls: u64,
    pub io: u64,
    /// Pages populated before the first instruction (image, boot info, page tables).
    pub launch_pages: u64,
}

pub struct Vm<F: PteFormat> {
    pub(crate) name: heapless::String<NAME_LEN>,
    pub(crate) slots: heapless::Vec<Memslot, MAX_SLOTS>,
    npt: SecondLevelTable<F>,
    pub(crate) allowed_calls: u64,
    pub(crate) stats: Stats,
    pub(crate) console_at_line_start: bool,
}

/// Why a GPA could not be backed.
pub(crate) enum FaultError {
    Outside,
    OutOfMemory,
    Mmu(MmuError),
}

impl FaultError {
    fn into_stop(self, gpa: u64, access: Access, rip: u64) -> Stop {
        match self {
            Self::Outside => Stop::OutsideMemory { gpa, access, rip },
            Self::OutOfMemory => Stop::OutOfMemory { gpa },
            Self::Mmu(error) => Stop::Mmu { error, gpa },
        }
    }
}

impl<F: PteFormat> Vm<F> {
    /// A VM with `spec`'s memslots and an empty second-level table. The slots come from a
    /// validated configuration; more than [`MAX_SLOTS`] are ignored.
    pub fn new(spec: &VmSpec<'_>, host: &mut impl Host) -> Result<Self, MmuError> {
        let mut name = heapless::String::new();
        for c in spec.name.chars() {
            if name.push(c).is_err() {
                break;
            }
        }
        let slots = spec
            .slots
            .iter()
            .take(MAX_SLOTS)
            .map(Memslot::new)
            .collect();
        Ok(Self {
            name,
            slots,
            npt: SecondLevelTable::new(host)?,
            allowed_calls: spec.allowed_calls,
            stats: Stats::default(),
            console_at_line_start: true,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Physical address of the second-level root the vCPU must use.
    pub fn npt_root(&self) -> u64 {
        self.npt.root()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Run the workload until it stops.
    pub fn run(&mut self, vcpu: &mut impl Vcpu, host: &mut impl Host) -> Stop {
        loop {
            let exit = vcpu.run();
            self.stats.exits += 1;
            if let Some(stop) = self.handle(exit, vcpu, host) {
                return stop;
            }
        }
    }

    fn handle(&mut self, exit: Exit, vcpu: &mut impl Vcpu, host: &mut impl Host) -> Option<Stop> {
        let rip = vcpu.regs().rip;
        match exit {
            Exit::NestedPageFault {
                gpa,
                access,
                present,
            } => {
                self.stats.npf += 1;
                if present {
                    // Everything is mapped with full rights, so this is a bug, not a
                    // workload choice: stop rather than spin on the same fault.
                    return Some(Stop::Unsupported {
                        what: "permission fault on a mapped page",
                        rip,
                    });
                }
                self.fault_in(gpa, host)
                    .err()
                    .map(|e| e.into_stop(gpa, access, rip))
            }
            Exit::Hypercall { insn_len } => {
                self.stats.hypercalls += 1;
                let regs = vcpu.regs_mut();
                regs.rip = regs.rip.wrapping_add(insn_len);
                hypercall::dispatch(self, regs, host)
            }
            Exit::Io { string: true, .. } => Some(Stop::Unsupported {
                what: "string port I/O",
                rip,
            }),
            Exit::Io {
                size,
                write,
                next_rip,
                ..
            } => {
                // No device is attached to any port: reads float high, writes vanish.
                self.stats.io += 1;
                let regs = vcpu.regs_mut();
                if !write {
                    regs.rax = match size {
                        4 => 0xffff_ffff,
                        2 => regs.rax | 0xffff,
                        _ => regs.rax | 0xff,
                    };
                }
                regs.rip = next_rip;
                None
            }
            Exit::Hlt => Some(Stop::Halted { rip }),
            Exit::Shutdown => Some(Stop::TripleFault { rip }),
            Exit::Cpuid { insn_len } => {
                let regs = vcpu.regs_mut();
                let (leaf, subleaf) = (regs.rax as u32, regs.rcx as u32);
                let out = cpuid::filter(leaf, subleaf, host.cpuid(leaf, subleaf));
                regs.rax = out.eax.into();
                regs.rbx = out.ebx.into();
                regs.rcx = out.ecx.into();
                regs.rdx = out.edx.into();
                regs.rip = regs.rip.wrapping_add(insn_len);
                None
            }
            Exit::Msr { .. } => {
                // No MSR is emulated: the architectural answer to an unknown MSR is #GP.
                vcpu.inject_exception(vector::GP, Some(0));
                None
            }
            Exit::Interrupt | Exit::Nmi => None,
            Exit::VmrunFailed { code } => Some(Stop::VmrunFailed { code }),
            Exit::Unknown { code, info1, info2 } => Some(Stop::UnknownExit {
                code,
                info1,
                info2,
                rip,
            }),
        }
    }

    /// The host frame backing the 4 KiB page at `gpa`, mapping it on first use: private
    /// pages get a zeroed frame from the slot's pool; shared memory is mapped with 2 MiB
    /// leaves where the slot and its host range allow, else 4 KiB.
    pub(crate) fn fault_in(&mut self, gpa: u64, host: &mut impl Host) -> Result<u64, FaultError> {
        // The 4-level table translates 48 bits; a wider GPA would alias a low mapping.
        if gpa >> GPA_BITS != 0 {
            return Err(FaultError::Outside);
        }
        let page = gpa & !(PageSize::Size4K.bytes() - 1);
        if let Some(mapping) = self.npt.lookup(host, page) {
            return Ok(mapping.pa & !(PageSize::Size4K.bytes() - 1));
        }
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.contains(page, PageSize::Size4K.bytes()));
        let slot = slot.ok_or(FaultError::Outside)?;
        let (map_gpa, pa, size) = match &mut slot.backing {
            Backing::Private(pool) => {
                let pa = pool
                    .alloc(1)
                    .map_err(|_: PoolError| FaultError::OutOfMemory)?;
                host.with_frame(pa, |frame| frame.fill(0));
                (page, pa, PageSize::Size4K)
            }
            Backing::Shared { host_base } => {
                let host_base = *host_base;
                let huge = page & !(PageSize::Size2M.bytes() - 1);
                let huge_pa = host_base.wrapping_add(huge.wrapping_sub(slot.gpa));
                if slot.contains(huge, PageSize::Size2M.bytes())
                    && huge_pa.is_multiple_of(PageSize::Size2M.bytes())
                {
                    (huge, huge_pa, PageSize::Size2M)
                } else {
                    (page, host_base + (page - slot.gpa), PageSize::Size4K)
                }
            }
        };
        if let Err(error) = self.npt.map(host, map_gpa, pa, size, Perms::ALL) {
            if let Backing::Private(pool) = &mut slot.backing {
                // The frame was allocated just above from this pool: returning it cannot fail.
                let _ = pool.free(pa, 1);
            }
            return Err(FaultError::Mmu(error));
        }
        Ok(pa + (page - map_gpa))
    }

    pub(crate) fn is_unmapped(&self, gpa: u64, host: &mut impl Host) -> bool {
        self.npt.lookup(host, gpa).is_none()
    }

    /// The slot holding all of `[gpa, gpa + len)`, if one does.
    pub(crate) fn slot_containing(&self, gpa: u64, len: u64) -> Option<&Memslot> {
        self.slots.iter().find(|s| s.contains(gpa, len))
    }
}
