//! SEV and SEV-SNP: the RMP and the PSP firmware behind traits, each with the real
//! instruction or mailbox and a software model (issue 8).

pub mod rmp;
