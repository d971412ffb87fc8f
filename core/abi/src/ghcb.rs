//! The GHCB wire format (AMD "SEV-ES Guest-Hypervisor Communication Block
//! Standardization", protocol version 2): shared by the hypervisor's SEV-SNP transport
//! and the guest SDK. Pure encoding and decoding, no behaviour.
