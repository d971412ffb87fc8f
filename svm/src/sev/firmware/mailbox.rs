//! The PSP's SEV command mailbox, polled: write the command buffer's address to
//! CmdBuf_Lo/CmdBuf_Hi and the command ID, shifted to bit 16, to CmdResp; wait for
//! CmdResp's response bit (31) and read the status from bits 0-15 (Linux
//! `__sev_do_cmd_locked` in its polling form; AMD-ASPFW `sev_dispatch_master`).
//!
//! Compiled, never run: QEMU has no PSP, and nothing here was tried on hardware.
//! Not done: finding the PSP (its PCI function and register BAR) and mapping it, which
//! is the caller's; completion interrupts (polling only); the SME C-bit in the
//! addresses the PSP is given (Linux `__psp_pa`; this hypervisor runs without SME);
//! and, once SNP_INIT ran, turning the pages legacy commands write (the command page
//! for LAUNCH_START and LAUNCH_MEASURE, LAUNCH_UPDATE_DATA's data) into Firmware pages
//! first, as the firmware requires (Linux `snp_prep_cmd_buf`). One object drives the
//! mailbox (`&mut self`); SEV-ES is not enabled at INIT.

mod hw;
#[cfg(test)]
mod tests;

pub use hw::PspMmio;

use super::abi::{self, CommandBuffer};
use super::{FirmwareError, GuestHandle, LaunchMeasurement, SevCommand, SevFirmware, SnpPageType};
use crate::sev::rmp::RmpSize;
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};
use hw::DmaPage;

/// CmdResp: set by the PSP when it has answered.
const RESPONSE: u32 = 1 << 31;
/// CmdResp: the PSP is in recovery mode and takes no commands (Linux
/// `PSP_CMDRESP_RECOVERY`).
const RECOVERY: u32 = 1 << 30;
const STATUS_MASK: u32 = 0xffff;
const COMMAND_SHIFT: u32 = 16;

/// Where in the command page LAUNCH_MEASURE's output goes (after the largest command).
const DATA_OFFSET: usize = 0x800;

/// Polls of CmdResp before giving up (Linux waits up to `psp_timeout` seconds).
const DEFAULT_POLL_LIMIT: u64 = 1 << 32;

/// The register offsets of one PSP generation (Linux `struct sev_vdata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxLayout {
    pub cmdresp: usize,
    pub cmdbuf_lo: usize,
    pub cmdbuf_hi: usize,
}

impl MailboxLayout {
    /// Linux `sevv1` (C2PMSG_32/56/57 at 0x10500): the first PSP generation.
    pub const SEV_V1: Self = Self {
        cmdresp: 0x10580,
        cmdbuf_lo: 0x105e0,
        cmdbuf_hi: 0x105e4,
    };
    /// Linux `sevv2` (C2PMSG_32/56/57 at 0x10900): the later PSP generations.
    pub const SEV_V2: Self = Self {
        cmdresp: 0x10980,
        cmdbuf_lo: 0x109e0,
        cmdbuf_hi: 0x109e4,
    };
}

/// 32-bit register access at an offset into the PSP's register BAR.
pub trait MailboxRegisters {
    fn read(&mut self, offset: usize) -> u32;
    fn write(&mut self, offset: usize, value: u32);
}

/// The hypervisor page command buffers are built in.
#[repr(C, align(4096))]
pub struct CommandPage(pub [u8; 4096]);

impl CommandPage {
    pub const fn zeroed() -> Self {
        Self([0; 4096])
    }
}

/// [`SevFirmware`] through the PSP mailbox (module documentation).
pub struct PspMailbox<R = PspMmio> {
    regs: R,
    layout: MailboxLayout,
    page: DmaPage,
    poll_limit: u64,
    /// A command timed out: the PSP's state is unknown, send nothing more (Linux
    /// `psp_dead`).
    dead: bool,
}

impl PspMailbox<PspMmio> {
    /// # Safety
    ///
    /// `mmio_base` maps the PSP's register BAR (uncached, for the life of the program)
    /// with the `layout` of that PSP generation, and nothing else sends it commands.
    /// The firmware reads and writes physical memory each command names: every address
    /// passed to a [`SevFirmware`] method must be memory the caller hands over for
    /// exactly that (LAUNCH_UPDATE_DATA encrypts its range in place; SNP commands
    /// write context and guest pages), and `page` must be at its physical address
    /// (the hypervisor's identity map).
    pub unsafe fn new(
        mmio_base: NonNull<u8>,
        layout: MailboxLayout,
        page: &'static mut CommandPage,
    ) -> Self {
        // SAFETY: the caller's contract covers `PspMmio::new`'s.
        let regs = unsafe { PspMmio::new(mmio_base) };
        Self::with_registers(regs, layout, page)
    }
}

impl<R: MailboxRegisters> PspMailbox<R> {
    /// A mailbox over any register access: the real [`PspMmio`], or a stand-in.
    pub fn with_registers(regs: R, layout: MailboxLayout, page: &'static mut CommandPage) -> Self {
        Self {
            regs,
            layout,
            page: DmaPage::new(page),
            poll_limit: DEFAULT_POLL_LIMIT,
            dead: false,
        }
    }

    /// Give up on a command after `polls` reads of CmdResp.
    pub fn with_poll_limit(mut self, polls: u64) -> Self {
        self.poll_limit = polls;
        self
    }

    /// Send `command` with `buffer` (encoded at the start of the page).
    fn send<C: CommandBuffer>(
        &mut self,
        command: SevCommand,
        buffer: &C,
    ) -> Result<(), FirmwareError> {
        let mut bytes = [0u8; DATA_OFFSET];
        buffer.encode(&mut bytes);
        self.page.write(0, &bytes[..C::LEN]);
        self.exchange(command, self.page.pa())
    }

    /// One command: address, doorbell, poll, status. `buffer` 0 sends no buffer.
    fn exchange(&mut self, command: SevCommand, buffer: u64) -> Result<(), FirmwareError> {
        if self.dead {
            return Err(FirmwareError::MAILBOX_TIMEOUT);
        }
        if self.regs.read(self.layout.cmdresp) & RECOVERY != 0 {
            return Err(FirmwareError::MAILBOX_RECOVERY);
        }
        self.regs.write(self.layout.cmdbuf_lo, buffer as u32);
        self.regs
            .write(self.layout.cmdbuf_hi, (buffer >> 32) as u32);
        // The command buffer is complete in memory before the PSP is told to read it.
        fence(Ordering::SeqCst);
        self.regs
            .write(self.layout.cmdresp, command.id() << COMMAND_SHIFT);
        for _ in 0..self.poll_limit {
            let reg = self.regs.read(self.layout.cmdresp);
            if reg & RESPONSE != 0 {
                // Results the PSP wrote are read after its answer.
                fence(Ordering::SeqCst);
                return FirmwareError::check(reg & STATUS_MASK);
            }
            core::hint::spin_loop();
        }
        self.dead = true;
        Err(FirmwareError::MAILBOX_TIMEOUT)
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let mut bytes = [0; 4];
        self.page.read(offset, &mut bytes);
        u32::from_le_bytes(bytes)
    }
}

impl<R: MailboxRegisters> SevFirmware for PspMailbox<R> {
    fn init(&mut self) -> Result<(), FirmwareError> {
        self.send(SevCommand::Init, &abi::Init::default())
    }

    fn snp_init(&mut self) -> Result<(), FirmwareError> {
        self.exchange(SevCommand::SnpInit, 0)
    }

    fn df_flush(&mut self) -> Result<(), FirmwareError> {
        self.exchange(SevCommand::DfFlush, 0)
    }

    fn snp_df_flush(&mut self) -> Result<(), FirmwareError> {
        self.exchange(SevCommand::SnpDfFlush, 0)
    }

    fn launch_start(&mut self, policy: u32) -> Result<GuestHandle, FirmwareError> {
        let start = abi::LaunchStart {
            policy,
            ..abi::LaunchStart::default()
        };
        self.send(SevCommand::LaunchStart, &start)?;
        Ok(GuestHandle(self.read_u32(abi::LaunchStart::HANDLE_OFFSET)))
    }

    fn launch_update_data(
        &mut self,
        guest: GuestHandle,
        pa: u64,
        len: u32,
    ) -> Result<(), FirmwareError> {
        let update = abi::HandleRegion {
            handle: guest.0,
            address: pa,
            len,
        };
        self.send(SevCommand::LaunchUpdateData, &update)
    }

    fn launch_measure(&mut self, guest: GuestHandle) -> Result<LaunchMeasurement, FirmwareError> {
        let measure = abi::HandleRegion {
            handle: guest.0,
            address: self.page.pa() + DATA_OFFSET as u64,
            len: abi::MEASUREMENT_LEN as u32,
        };
        self.send(SevCommand::LaunchMeasure, &measure)?;
        let mut out = LaunchMeasurement {
            measurement: [0; 32],
            mnonce: [0; 16],
        };
        self.page.read(DATA_OFFSET, &mut out.measurement);
        self.page.read(DATA_OFFSET + 32, &mut out.mnonce);
        Ok(out)
    }

    fn launch_finish(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.send(SevCommand::LaunchFinish, &abi::Handle { handle: guest.0 })
    }

    fn activate(&mut self, guest: GuestHandle, asid: u32) -> Result<(), FirmwareError> {
        let activate = abi::Activate {
            handle: guest.0,
            asid,
        };
        self.send(SevCommand::Activate, &activate)
    }

    fn deactivate(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.send(SevCommand::Deactivate, &abi::Handle { handle: guest.0 })
    }

    fn decommission(&mut self, guest: GuestHandle) -> Result<(), FirmwareError> {
        self.send(SevCommand::Decommission, &abi::Handle { handle: guest.0 })
    }

    fn snp_gctx_create(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.send(SevCommand::SnpGctxCreate, &abi::SnpAddr { address: gctx })
    }

    fn snp_launch_start(&mut self, gctx: u64, policy: u64) -> Result<(), FirmwareError> {
        let start = abi::SnpLaunchStart {
            gctx_paddr: gctx,
            policy,
            ..abi::SnpLaunchStart::default()
        };
        self.send(SevCommand::SnpLaunchStart, &start)
    }

    fn snp_activate(&mut self, gctx: u64, asid: u32) -> Result<(), FirmwareError> {
        let activate = abi::SnpActivate {
            gctx_paddr: gctx,
            asid,
        };
        self.send(SevCommand::SnpActivate, &activate)
    }

    fn snp_launch_update(
        &mut self,
        gctx: u64,
        pa: u64,
        size: RmpSize,
        page_type: SnpPageType,
    ) -> Result<(), FirmwareError> {
        let update = abi::SnpLaunchUpdate {
            gctx_paddr: gctx,
            page_size_2m: size == RmpSize::Size2M,
            page_type: page_type as u8,
            address: pa,
            vmpl_perms: [0; 3],
        };
        self.send(SevCommand::SnpLaunchUpdate, &update)
    }

    fn snp_launch_finish(&mut self, gctx: u64, host_data: [u8; 32]) -> Result<(), FirmwareError> {
        let finish = abi::SnpLaunchFinish {
            gctx_paddr: gctx,
            host_data,
            ..abi::SnpLaunchFinish::default()
        };
        self.send(SevCommand::SnpLaunchFinish, &finish)
    }

    fn snp_page_reclaim(&mut self, pa: u64, size: RmpSize) -> Result<(), FirmwareError> {
        let reclaim = abi::SnpPageReclaim {
            address: pa,
            page_size_2m: size == RmpSize::Size2M,
        };
        self.send(SevCommand::SnpPageReclaim, &reclaim)
    }

    fn snp_decommission(&mut self, gctx: u64) -> Result<(), FirmwareError> {
        self.send(SevCommand::SnpDecommission, &abi::SnpAddr { address: gctx })
    }
}
