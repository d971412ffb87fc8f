//! Firmware status codes (the low 16 bits of CmdResp), named as Linux names them
//! (`SEV_RET_*`), plus two codes this crate makes up for mailbox failures.

use cloister_core::mmu::VendorError;
use core::fmt;

/// A command's failure: the firmware status and its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirmwareError {
    code: u32,
    name: &'static str,
}

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
        impl FirmwareError {
            $($(#[$doc])* pub const $name: Self = Self { code: $code, name: stringify!($name) };)*

            /// Every status this code knows, by code.
            const KNOWN: &[Self] = &[$(Self::$name),*];
        }
    };
}

statuses! {
    INVALID_PLATFORM_STATE = 0x01,
    INVALID_GUEST_STATE = 0x02,
    INVALID_CONFIG = 0x03,
    INVALID_LEN = 0x04,
    ALREADY_OWNED = 0x05,
    INVALID_CERTIFICATE = 0x06,
    POLICY_FAILURE = 0x07,
    /// The guest has no ASID (not activated).
    INACTIVE = 0x08,
    INVALID_ADDRESS = 0x09,
    BAD_SIGNATURE = 0x0a,
    BAD_MEASUREMENT = 0x0b,
    /// Another guest holds the ASID, or it is not clean.
    ASID_OWNED = 0x0c,
    INVALID_ASID = 0x0d,
    /// DF_FLUSH before every CPU ran WBINVD.
    WBINVD_REQUIRED = 0x0e,
    /// ACTIVATE of a dirty ASID.
    DFFLUSH_REQUIRED = 0x0f,
    /// No such guest (handle or context page).
    INVALID_GUEST = 0x10,
    INVALID_COMMAND = 0x11,
    /// The guest is (still) activated.
    ACTIVE = 0x12,
    HWSEV_RET_PLATFORM = 0x13,
    HWSEV_RET_UNSAFE = 0x14,
    UNSUPPORTED = 0x15,
    INVALID_PARAM = 0x16,
    RESOURCE_LIMIT = 0x17,
    SECURE_DATA_INVALID = 0x18,
    INVALID_PAGE_SIZE = 0x19,
    INVALID_PAGE_STATE = 0x1a,
    INVALID_MDATA_ENTRY = 0x1b,
    INVALID_PAGE_OWNER = 0x1c,
    AEAD_OFLOW = 0x1d,
    EXIT_RING_BUFFER = 0x1f,
    RMP_INIT_REQUIRED = 0x20,
    BAD_SVN = 0x21,
    BAD_VERSION = 0x22,
    SHUTDOWN_REQUIRED = 0x23,
    UPDATE_FAILED = 0x24,
    RESTORE_REQUIRED = 0x25,
    RMP_INITIALIZATION_FAILED = 0x26,
    INVALID_KEY = 0x27,
    /// Not a firmware status: the PSP did not answer within the poll limit.
    MAILBOX_TIMEOUT = 0x1_0000,
    /// Not a firmware status: CmdResp has the recovery bit set; the PSP takes no
    /// commands.
    MAILBOX_RECOVERY = 0x1_0001,
}

impl FirmwareError {
    /// The error for a nonzero status.
    pub fn from_code(code: u32) -> Self {
        Self::KNOWN
            .iter()
            .copied()
            .find(|e| e.code == code)
            .unwrap_or(Self {
                code,
                name: "unknown status",
            })
    }

    /// Decode CmdResp's status field: 0 is success.
    pub fn check(status: u32) -> Result<(), Self> {
        match status {
            0 => Ok(()),
            code => Err(Self::from_code(code)),
        }
    }

    pub const fn code(self) -> u32 {
        self.code
    }

    pub const fn name(self) -> &'static str {
        self.name
    }
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name, self.code)
    }
}

/// No firmware status means "retry": every one is a refusal.
impl From<FirmwareError> for VendorError {
    fn from(error: FirmwareError) -> Self {
        VendorError::failed(error.code.into(), error.name)
    }
}
