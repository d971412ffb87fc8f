//! Command buffer layouts, as Linux `include/linux/psp-sev.h` declares them (`__packed`,
//! little-endian) and the firmware reads them (AMD-ASPFW `sev_mcmd.h`). Each encodes
//! itself into the bytes the PSP reads; the offsets are the ABI, so the tests pin them.

/// Write `value` at `offset`, little-endian.
fn put(buf: &mut [u8], offset: usize, value: &[u8]) {
    buf[offset..offset + value.len()].copy_from_slice(value);
}

/// A command buffer: its length and its bytes.
pub trait CommandBuffer {
    const LEN: usize;
    /// Fill `buf[..Self::LEN]`.
    fn encode(&self, buf: &mut [u8]);
}

/// `struct sev_data_init`: flags (bit 0 SEV-ES), TMR address and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Init {
    pub flags: u32,
    pub tmr_address: u64,
    pub tmr_len: u32,
}

impl CommandBuffer for Init {
    const LEN: usize = 20;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.flags.to_le_bytes());
        put(buf, 4, &0u32.to_le_bytes());
        put(buf, 8, &self.tmr_address.to_le_bytes());
        put(buf, 16, &self.tmr_len.to_le_bytes());
    }
}

/// `struct sev_data_activate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activate {
    pub handle: u32,
    pub asid: u32,
}

impl CommandBuffer for Activate {
    const LEN: usize = 8;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.handle.to_le_bytes());
        put(buf, 4, &self.asid.to_le_bytes());
    }
}

/// `struct sev_data_deactivate`, `sev_data_decommission`, `sev_data_launch_finish`:
/// the handle alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    pub handle: u32,
}

impl CommandBuffer for Handle {
    const LEN: usize = 4;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.handle.to_le_bytes());
    }
}

/// `struct sev_data_launch_start`. The firmware writes the new handle back at offset 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchStart {
    /// 0 for a new key; another guest's handle to share its key.
    pub handle: u32,
    pub policy: u32,
    pub dh_cert_address: u64,
    pub dh_cert_len: u32,
    pub session_address: u64,
    pub session_len: u32,
}

impl LaunchStart {
    pub const HANDLE_OFFSET: usize = 0;
}

impl CommandBuffer for LaunchStart {
    const LEN: usize = 36;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.handle.to_le_bytes());
        put(buf, 4, &self.policy.to_le_bytes());
        put(buf, 8, &self.dh_cert_address.to_le_bytes());
        put(buf, 16, &self.dh_cert_len.to_le_bytes());
        put(buf, 20, &0u32.to_le_bytes());
        put(buf, 24, &self.session_address.to_le_bytes());
        put(buf, 32, &self.session_len.to_le_bytes());
    }
}

/// `struct sev_data_launch_update_data` and `sev_data_launch_measure` share this
/// layout: handle, reserved, address, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleRegion {
    pub handle: u32,
    pub address: u64,
    pub len: u32,
}

impl CommandBuffer for HandleRegion {
    const LEN: usize = 20;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.handle.to_le_bytes());
        put(buf, 4, &0u32.to_le_bytes());
        put(buf, 8, &self.address.to_le_bytes());
        put(buf, 16, &self.len.to_le_bytes());
    }
}

/// `struct sev_user_data_launch_measure`-sized output of LAUNCH_MEASURE: the 32-byte
/// measurement, then the 16-byte nonce.
pub const MEASUREMENT_LEN: usize = 48;

/// `struct sev_data_snp_addr`: SNP_GCTX_CREATE and SNP_DECOMMISSION name one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpAddr {
    pub address: u64,
}

impl CommandBuffer for SnpAddr {
    const LEN: usize = 8;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.address.to_le_bytes());
    }
}

/// `struct sev_data_snp_activate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpActivate {
    pub gctx_paddr: u64,
    pub asid: u32,
}

impl CommandBuffer for SnpActivate {
    const LEN: usize = 12;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.gctx_paddr.to_le_bytes());
        put(buf, 8, &self.asid.to_le_bytes());
    }
}

/// `struct sev_data_snp_launch_start` (firmware `snp_mcmd_launch_start_t`): bit 0 of
/// the flags word is MA_EN, bit 1 IMI_EN; then the desired TSC frequency and GOSVW.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnpLaunchStart {
    pub gctx_paddr: u64,
    pub policy: u64,
    pub ma_gctx_paddr: u64,
    pub flags: u32,
    pub desired_tsc_khz: u32,
    pub gosvw: [u8; 16],
}

impl CommandBuffer for SnpLaunchStart {
    const LEN: usize = 48;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.gctx_paddr.to_le_bytes());
        put(buf, 8, &self.policy.to_le_bytes());
        put(buf, 16, &self.ma_gctx_paddr.to_le_bytes());
        put(buf, 24, &self.flags.to_le_bytes());
        put(buf, 28, &self.desired_tsc_khz.to_le_bytes());
        put(buf, 32, &self.gosvw);
    }
}

/// `struct sev_data_snp_launch_update`: page size (bit 0), type (bits 1-3) and
/// IMI_PAGE (bit 4) in the first flags word; VMPL1-3 permissions in bits 8-31 of the
/// second. The GPA is not an operand: the firmware takes the page's RMP entry's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpLaunchUpdate {
    pub gctx_paddr: u64,
    pub page_size_2m: bool,
    pub page_type: u8,
    pub address: u64,
    pub vmpl_perms: [u8; 3],
}

impl CommandBuffer for SnpLaunchUpdate {
    const LEN: usize = 32;
    fn encode(&self, buf: &mut [u8]) {
        let flags = u32::from(self.page_size_2m) | u32::from(self.page_type & 7) << 1;
        let [v1, v2, v3] = self.vmpl_perms;
        let perms = u32::from(v1) << 8 | u32::from(v2) << 16 | u32::from(v3) << 24;
        put(buf, 0, &self.gctx_paddr.to_le_bytes());
        put(buf, 8, &flags.to_le_bytes());
        put(buf, 12, &0u32.to_le_bytes());
        put(buf, 16, &self.address.to_le_bytes());
        put(buf, 24, &perms.to_le_bytes());
        put(buf, 28, &0u32.to_le_bytes());
    }
}

/// `struct sev_data_snp_launch_finish`: bit 0 ID_BLOCK_EN, bit 1 AUTH_KEY_EN, bit 2
/// VCEK_DISABLED in the flags quadword, then HOST_DATA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnpLaunchFinish {
    pub gctx_paddr: u64,
    pub id_block_paddr: u64,
    pub id_auth_paddr: u64,
    pub flags: u64,
    pub host_data: [u8; 32],
}

impl CommandBuffer for SnpLaunchFinish {
    const LEN: usize = 64;
    fn encode(&self, buf: &mut [u8]) {
        put(buf, 0, &self.gctx_paddr.to_le_bytes());
        put(buf, 8, &self.id_block_paddr.to_le_bytes());
        put(buf, 16, &self.id_auth_paddr.to_le_bytes());
        put(buf, 24, &self.flags.to_le_bytes());
        put(buf, 32, &self.host_data);
    }
}

/// `struct sev_data_snp_page_reclaim`: the page address with its size in bit 0. Bits
/// 1-11 are reserved: an unaligned address reaches the firmware as given, to be
/// refused (INVALID_PARAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpPageReclaim {
    pub address: u64,
    pub page_size_2m: bool,
}

impl CommandBuffer for SnpPageReclaim {
    const LEN: usize = 8;
    fn encode(&self, buf: &mut [u8]) {
        let paddr = self.address | u64::from(self.page_size_2m);
        put(buf, 0, &paddr.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<C: CommandBuffer>(command: &C) -> [u8; 64] {
        let mut buf = [0xaa; 64];
        command.encode(&mut buf);
        assert!(buf[C::LEN..].iter().all(|&b| b == 0xaa), "wrote past LEN");
        buf
    }

    fn u32_at(buf: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(buf[off..off + 4].try_into().unwrap())
    }

    fn u64_at(buf: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(buf[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn legacy_layouts_match_linux_packed_structs() {
        let start = LaunchStart {
            handle: 7,
            policy: 0x5,
            session_address: 0x1122_3344_5566,
            session_len: 0x40,
            ..LaunchStart::default()
        };
        let buf = bytes(&start);
        assert_eq!((u32_at(&buf, 0), u32_at(&buf, 4)), (7, 5));
        assert_eq!(
            (u64_at(&buf, 24), u32_at(&buf, 32)),
            (0x1122_3344_5566, 0x40)
        );
        let update = bytes(&HandleRegion {
            handle: 3,
            address: 0xdead_b000,
            len: 0x2000,
        });
        assert_eq!(u32_at(&update, 0), 3);
        assert_eq!(u32_at(&update, 4), 0, "reserved");
        assert_eq!(
            (u64_at(&update, 8), u32_at(&update, 16)),
            (0xdead_b000, 0x2000)
        );
        let activate = bytes(&Activate { handle: 2, asid: 9 });
        assert_eq!((u32_at(&activate, 0), u32_at(&activate, 4)), (2, 9));
        assert_eq!(HandleRegion::LEN, 20);
        assert_eq!(Init::LEN, 20);
        assert_eq!(LaunchStart::LEN, 36);
    }

    #[test]
    fn snp_launch_update_packs_size_type_and_permissions() {
        let buf = bytes(&SnpLaunchUpdate {
            gctx_paddr: 0x9000,
            page_size_2m: true,
            page_type: 6,
            address: 0x20_0000,
            vmpl_perms: [1, 2, 3],
        });
        assert_eq!(u64_at(&buf, 0), 0x9000);
        assert_eq!(u32_at(&buf, 8), 1 | 6 << 1);
        assert_eq!(u64_at(&buf, 16), 0x20_0000);
        assert_eq!(u32_at(&buf, 24), 1 << 8 | 2 << 16 | 3 << 24);
        assert_eq!(SnpLaunchUpdate::LEN, 32);
    }

    #[test]
    fn snp_layouts_have_the_firmware_offsets() {
        let start = bytes(&SnpLaunchStart {
            gctx_paddr: 0x5000,
            policy: 0x30000,
            gosvw: [0x11; 16],
            ..SnpLaunchStart::default()
        });
        assert_eq!((u64_at(&start, 0), u64_at(&start, 8)), (0x5000, 0x30000));
        assert_eq!(&start[32..48], &[0x11; 16]);
        let finish = bytes(&SnpLaunchFinish {
            gctx_paddr: 0x5000,
            host_data: [0x22; 32],
            ..SnpLaunchFinish::default()
        });
        assert_eq!(&finish[32..64], &[0x22; 32]);
        let reclaim = bytes(&SnpPageReclaim {
            address: 0x40_0000,
            page_size_2m: true,
        });
        assert_eq!(u64_at(&reclaim, 0), 0x40_0001);
        let activate = bytes(&SnpActivate {
            gctx_paddr: 0x5000,
            asid: 4,
        });
        assert_eq!((u64_at(&activate, 0), u32_at(&activate, 8)), (0x5000, 4));
    }
}
