//! Placeholder: the SEAMCALL wrappers are being written.
