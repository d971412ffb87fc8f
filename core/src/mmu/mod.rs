//! The second-level (nested) page-table engine, generic over the vendor's entry format.

mod format;
mod table;

pub use format::{PageSize, Perms, PteFormat};
pub use table::{ENTRIES, Mapping, MmuError, SecondLevelTable, TableMemory};
