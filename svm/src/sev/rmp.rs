//! Placeholder: the RMP trait and model are being written.
