//! The mailbox protocol against a stand-in PSP that answers from a script.

use super::*;
use alloc::boxed::Box;
use alloc::vec::Vec;
use std::vec;

/// One scripted answer: the status, the polls before it, bytes to write at an offset.
type Answer = (u32, u32, Option<(usize, Vec<u8>)>);

/// A PSP that answers each doorbell with the next scripted status, after an optional
/// number of "busy" polls, and can write results into the command page.
struct FakePsp {
    cmdresp: u32,
    lo: u32,
    hi: u32,
    script: Vec<Answer>,
    busy_polls: u32,
    /// Each doorbell: command ID, buffer address, the first 64 buffer bytes.
    seen: Vec<(u32, u64, [u8; 64])>,
}

impl FakePsp {
    fn new(script: Vec<Answer>) -> Self {
        Self {
            cmdresp: RESPONSE,
            lo: 0,
            hi: 0,
            script,
            busy_polls: 0,
            seen: Vec::new(),
        }
    }

    fn page(address: u64) -> *mut u8 {
        address as *mut u8
    }
}

impl MailboxRegisters for FakePsp {
    fn read(&mut self, offset: usize) -> u32 {
        assert_eq!(
            offset,
            MailboxLayout::SEV_V2.cmdresp,
            "only CmdResp is read"
        );
        if self.busy_polls > 0 {
            self.busy_polls -= 1;
            return self.cmdresp & !RESPONSE;
        }
        self.cmdresp
    }

    fn write(&mut self, offset: usize, value: u32) {
        let layout = MailboxLayout::SEV_V2;
        if offset == layout.cmdbuf_lo {
            self.lo = value;
        } else if offset == layout.cmdbuf_hi {
            self.hi = value;
        } else {
            assert_eq!(offset, layout.cmdresp);
            assert_eq!(value & 0xffff, 0, "polling: no IOC, no status bits");
            let address = u64::from(self.hi) << 32 | u64::from(self.lo);
            let mut first = [0; 64];
            if address != 0 {
                // SAFETY: the address is the leaked command page's (the identity map
                // of this test process), and the mailbox is waiting for us.
                let page = unsafe { core::slice::from_raw_parts_mut(Self::page(address), 4096) };
                first.copy_from_slice(&page[..64]);
            }
            self.seen.push((value >> 16, address, first));
            let (status, polls, reply) = self.script.remove(0);
            if let Some((at, bytes)) = reply {
                // SAFETY: as above.
                let page = unsafe { core::slice::from_raw_parts_mut(Self::page(address), 4096) };
                page[at..at + bytes.len()].copy_from_slice(&bytes);
            }
            self.busy_polls = polls;
            self.cmdresp = RESPONSE | status;
        }
    }
}

fn mailbox(script: Vec<Answer>) -> PspMailbox<FakePsp> {
    let page = Box::leak(Box::new(CommandPage::zeroed()));
    PspMailbox::with_registers(FakePsp::new(script), MailboxLayout::SEV_V2, page)
}

#[test]
fn launch_start_sends_the_policy_and_reads_back_the_handle() {
    let mut psp = mailbox(vec![(0, 3, Some((0, 5u32.to_le_bytes().to_vec())))]);
    assert_eq!(psp.launch_start(0x1), Ok(GuestHandle(5)));
    let (command, address, buf) = psp.regs.seen[0];
    assert_eq!(command, 0x030);
    assert_eq!(address, psp.page.pa());
    assert_eq!(
        &buf[0..8],
        &[0, 0, 0, 0, 1, 0, 0, 0],
        "handle 0 in, policy 1"
    );
}

#[test]
fn a_status_comes_back_as_the_firmware_error() {
    let mut psp = mailbox(vec![(0x0f, 0, None), (0x1a, 0, None)]);
    assert_eq!(
        psp.activate(GuestHandle(1), 3),
        Err(FirmwareError::DFFLUSH_REQUIRED)
    );
    let reclaim = psp.snp_page_reclaim(0x20_0000, RmpSize::Size2M);
    assert_eq!(reclaim, Err(FirmwareError::INVALID_PAGE_STATE));
    let (command, _, buf) = psp.regs.seen[1];
    assert_eq!(command, 0x0c7);
    assert_eq!(&buf[0..8], &0x20_0001u64.to_le_bytes());
}

#[test]
fn commands_without_a_buffer_send_address_zero() {
    let mut psp = mailbox(vec![(0, 0, None), (0x0e, 0, None)]);
    assert_eq!(psp.snp_init(), Ok(()));
    assert_eq!(psp.df_flush(), Err(FirmwareError::WBINVD_REQUIRED));
    let ids: Vec<_> = psp.regs.seen.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(ids, [(0x081, 0), (0x00a, 0)]);
}

#[test]
fn launch_measure_points_the_firmware_into_the_page_and_reads_the_result() {
    let out: Vec<u8> = (0..48).collect();
    let mut psp = mailbox(vec![(0, 1, Some((DATA_OFFSET, out.clone())))]);
    let measured = psp.launch_measure(GuestHandle(2)).unwrap();
    assert_eq!(&measured.measurement[..], &out[..32]);
    assert_eq!(&measured.mnonce[..], &out[32..]);
    let (_, address, buf) = psp.regs.seen[0];
    let data = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    assert_eq!(data, address + DATA_OFFSET as u64);
    assert_eq!(u32::from_le_bytes(buf[16..20].try_into().unwrap()), 48);
}

#[test]
fn no_answer_within_the_poll_limit_times_out_and_the_mailbox_stays_dead() {
    let mut psp = mailbox(vec![(0, 100, None)]).with_poll_limit(10);
    assert_eq!(
        psp.decommission(GuestHandle(1)),
        Err(FirmwareError::MAILBOX_TIMEOUT)
    );
    assert_eq!(psp.df_flush(), Err(FirmwareError::MAILBOX_TIMEOUT));
    assert_eq!(psp.regs.seen.len(), 1, "nothing sent after the timeout");
}

#[test]
fn a_psp_in_recovery_gets_no_command() {
    let mut psp = mailbox(vec![]);
    psp.regs.cmdresp = RECOVERY;
    assert_eq!(psp.snp_df_flush(), Err(FirmwareError::MAILBOX_RECOVERY));
    assert!(psp.regs.seen.is_empty());
}

#[test]
fn snp_launch_update_encodes_the_page_type_value() {
    let mut psp = mailbox(vec![(0, 0, None)]);
    psp.snp_launch_update(0x9000, 0x7000, RmpSize::Size4K, SnpPageType::Cpuid)
        .unwrap();
    let (command, _, buf) = psp.regs.seen[0];
    assert_eq!(command, 0x0a1);
    assert_eq!(u32::from_le_bytes(buf[8..12].try_into().unwrap()), 6 << 1);
    assert_eq!(u64::from_le_bytes(buf[16..24].try_into().unwrap()), 0x7000);
}
