use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivMemError {
    /// The offset or range is outside the object, or not frame (or block) aligned.
    OutOfRange { offset: u64 },
    /// The object is bound to another VM instance (a pool serves one VM at a time).
    BoundElsewhere { vm: u64 },
    /// The object is not bound to the asking VM instance (released, or never bound).
    NotBound,
    /// The page was converted to shared: a private access to it is the workload's
    /// mistake, reported as a memory fault, and nothing is mapped.
    NotPrivate { offset: u64 },
    /// The page is private, not converted to shared.
    NotShared { offset: u64 },
    /// The frame is poisoned and will never be handed out again.
    Poisoned { offset: u64 },
    /// The vendor refused to prepare the frame; carries the vendor's code.
    Vendor { code: u64 },
    /// A mapping of the range could not be removed (the vendor's code); nothing changed
    /// hands.
    Unmap { code: u64 },
}

impl fmt::Display for PrivMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfRange { offset } => {
                write!(f, "offset {offset:#x} is outside the private memory object")
            }
            Self::BoundElsewhere { vm } => {
                write!(f, "the private memory object is bound to VM instance {vm}")
            }
            Self::NotBound => {
                f.write_str("the private memory object is not bound to this VM instance")
            }
            Self::NotPrivate { offset } => write!(f, "offset {offset:#x} is shared, not private"),
            Self::NotShared { offset } => write!(f, "offset {offset:#x} is private, not shared"),
            Self::Poisoned { offset } => write!(f, "offset {offset:#x} is poisoned"),
            Self::Vendor { code } => write!(
                f,
                "the vendor refused to prepare the frame (code {code:#x})"
            ),
            Self::Unmap { code } => write!(
                f,
                "a mapping could not be removed (vendor code {code:#x}); nothing changed"
            ),
        }
    }
}
