//! The second-level (nested) page-table engine, generic over the vendor's entry format.

mod format;
mod table;

mod vendor;

pub use format::{PageSize, Perms, PteFormat, Scope};
pub use table::{ENTRIES, Mapping, MmuError, SecondLevelTable, TableMemory};
pub use vendor::{VendorError, VendorMmu};
