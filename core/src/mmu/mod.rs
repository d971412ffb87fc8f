//! The second-level (nested) page-table engine, generic over the vendor's entry format.

mod format;
pub mod frozen;
mod table;

mod vendor;

pub use format::{PageSize, Perms, PteFormat, Scope};
pub use table::{
    ENTRIES, ExternalSync, Mapping, MmuError, NoExternal, SecondLevelTable, Span, TableMemory,
};
pub use vendor::{ExternalTable, VendorError, VendorMmu};
