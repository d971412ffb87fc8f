//! Hypercall numbers, register convention and error codes.
//!
//! Register convention (KVM's): the call number in RAX, arguments in RBX, RCX, RDX, RSI;
//! the result in RAX. A result `>= 0` is success; a negative result is an [`Error`].
//! No other register changes. Transport on plain SVM: the 3-byte `VMMCALL` instruction.

/// Hypercall numbers. Frozen once released: numbers are never reused.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Write bytes to the appliance console. RBX = GPA, RCX = length (at most
    /// [`CONSOLE_WRITE_MAX`]); the buffer must lie entirely in one shared region.
    /// Returns the number of bytes written.
    ConsoleWrite = 1,
    /// Stop the workload. RBX = status (the low 32 bits are reported). Does not return.
    Exit = 2,
    /// Copy the current [`crate::BootInfo`] (version, features, memory map, permitted
    /// calls) to RBX = GPA, RCX = length (at least [`crate::boot::BOOT_INFO_SIZE`]), in
    /// shared memory. Returns the number of bytes written.
    Info = 3,
    /// Copy the SHA-384 launch digest ([`MEASUREMENT_SIZE`] bytes) to RBX = GPA,
    /// RCX = length (at least [`MEASUREMENT_SIZE`]), in shared memory. Returns the number
    /// of bytes written.
    Measurement = 4,
    /// Convert guest-physical ranges between private and shared, a bounded batch per
    /// call. RBX = GPA of a list of [`ConvertRange`] entries in shared memory, RCX = the
    /// number of entries (1 to [`CONVERT_MAX_ENTRIES`]), RDX = [`CONVERT_TO_SHARED`] or
    /// [`CONVERT_TO_PRIVATE`], RSI = pages already done (0 at first). Returns the pages
    /// done so far; the request is complete when that equals the list's total.
    MemoryConvert = 5,
}

/// Calls only images built for benchmarks answer (`cargo xtask bench`); every other
/// image returns UNKNOWN_CALL. Not part of the ABI.
pub mod bench {
    /// Zap every private mapping (frames stay prepared), so the next touches refault.
    pub const ZAP_PRIVATE: u64 = 0xbe00_0001;
}

/// MEMORY_CONVERT direction: private to shared.
pub const CONVERT_TO_SHARED: u64 = 1;
/// MEMORY_CONVERT direction: shared to private.
pub const CONVERT_TO_PRIVATE: u64 = 2;
/// Most entries in one MEMORY_CONVERT list (one 4 KiB page of 16-byte entries).
pub const CONVERT_MAX_ENTRIES: u64 = 256;
/// Most pages one MEMORY_CONVERT call converts (2 MiB): a huge request never keeps the
/// hypervisor from its other work for long.
pub const CONVERT_MAX_PAGES_PER_CALL: u64 = 512;

/// One MEMORY_CONVERT entry: `pages` 4 KiB pages from `gpa` (4 KiB aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvertRange {
    pub gpa: u64,
    pub pages: u64,
}

/// Size of a [`ConvertRange`] in the list.
pub const CONVERT_RANGE_SIZE: u64 = 16;

/// Size of the launch digest MEASUREMENT writes: SHA-384.
pub const MEASUREMENT_SIZE: u64 = 48;

/// `BootInfo::features` bit: the launch digest is SHA-384 over the launch pages and the
/// configuration (docs/abi.md, MEASUREMENT).
pub const FEATURE_MEASUREMENT_SHA384: u64 = 1 << 0;
/// `BootInfo::features` bit: calls travel by TDG.VP.VMCALL (Intel TDX) instead of
/// VMMCALL, and memory is converted with the MapGPA TDVMCALL (docs/abi.md, transports).
pub const FEATURE_TRANSPORT_TDVMCALL: u64 = 1 << 1;
/// `BootInfo::features` bit: calls travel through the GHCB (AMD SEV-SNP: the GHCB MSR
/// protocol and the GHCB page, entered by VMGEXIT), and memory is converted with Page
/// State Change requests (docs/abi.md, transports; [`crate::ghcb`]).
pub const FEATURE_TRANSPORT_GHCB: u64 = 1 << 2;
/// `BootInfo::features` bit: the SEV-SNP hardware is a software model inside the
/// hypervisor (QEMU has no SEV). The workload must not execute PVALIDATE, which the CPU
/// does not have; the model validates each page the workload is given, as the workload
/// would (docs/memory.md, model mode).
pub const FEATURE_SNP_MODEL: u64 = 1 << 3;
/// Every backend-independent feature this hypervisor implements; the backend adds its
/// transport bit.
pub const FEATURES: u64 = FEATURE_MEASUREMENT_SHA384;

/// Largest CONSOLE_WRITE accepted in one call, in bytes.
pub const CONSOLE_WRITE_MAX: u64 = 4096;
/// Bytes of an accepted CONSOLE_WRITE sent per VM exit; longer writes drain over the
/// following exits.
pub const CONSOLE_DRAIN_PER_EXIT: u64 = 256;

impl Call {
    pub const ALL: [Call; 5] = [
        Call::ConsoleWrite,
        Call::Exit,
        Call::Info,
        Call::Measurement,
        Call::MemoryConvert,
    ];

    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            1 => Some(Self::ConsoleWrite),
            2 => Some(Self::Exit),
            3 => Some(Self::Info),
            4 => Some(Self::Measurement),
            5 => Some(Self::MemoryConvert),
            _ => None,
        }
    }

    /// The bit for this call in `BootInfo::allowed_calls`.
    pub const fn mask(self) -> u64 {
        1 << (self as u64)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::ConsoleWrite => "console_write",
            Self::Exit => "exit",
            Self::Info => "info",
            Self::Measurement => "measurement",
            Self::MemoryConvert => "memory_convert",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Errors, returned in RAX as their negative value.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The call number is not defined by this ABI version.
    UnknownCall = -1,
    /// An argument is out of range (length too large, range wraps, ...).
    InvalidArgument = -2,
    /// A buffer is not entirely inside one shared memory region.
    NotShared = -3,
    /// The configuration does not allow this workload to make this call.
    Denied = -4,
    /// The hypervisor still uses part of the range (a console write draining from it):
    /// retry the same call later.
    Busy = -5,
}

impl Error {
    pub const fn from_raw(raw: i64) -> Option<Self> {
        match raw {
            -1 => Some(Self::UnknownCall),
            -2 => Some(Self::InvalidArgument),
            -3 => Some(Self::NotShared),
            -4 => Some(Self::Denied),
            -5 => Some(Self::Busy),
            _ => None,
        }
    }

    /// The value placed in RAX.
    pub const fn to_rax(self) -> u64 {
        self as i64 as u64
    }
}

/// Decodes RAX after a hypercall into a value or an error.
pub fn decode_result(rax: u64) -> Result<u64, Result<Error, i64>> {
    let signed = rax as i64;
    if signed >= 0 {
        Ok(rax)
    } else {
        Err(Error::from_raw(signed).ok_or(signed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_round_trips_through_its_number_and_name() {
        for call in Call::ALL {
            assert_eq!(Call::from_raw(call as u64), Some(call));
            assert_eq!(Call::from_name(call.name()), Some(call));
        }
        assert_eq!(Call::from_raw(0), None);
        assert_eq!(Call::from_raw(u64::MAX), None);
        assert_eq!(Call::from_name("reboot"), None);
    }

    #[test]
    fn results_decode_into_values_and_errors() {
        assert_eq!(decode_result(5), Ok(5));
        assert_eq!(
            decode_result(Error::NotShared.to_rax()),
            Err(Ok(Error::NotShared))
        );
        assert_eq!(decode_result(-99i64 as u64), Err(Err(-99)));
    }
}
