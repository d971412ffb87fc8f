//! The hypervisor's own settings, defaults filled in.

use super::table::fields;
use cloister_config::{Backend, Config};

pub fn section(config: &Config) -> String {
    let h = &config.hypervisor;
    let pairs = [
        ("board", h.board.clone()),
        ("backend", backend_name(h.backend).to_owned()),
        ("log level", h.log_level.as_str().to_owned()),
        ("heap", h.heap_size.to_string()),
        (
            "console port",
            format!("{} (text console UART)", h.console_port),
        ),
        ("log port", format!("{} (defmt log UART)", h.log_port)),
    ];
    format!("Hypervisor\n{}", fields(2, &pairs))
}

/// As the configuration spells it.
fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Svm => "svm",
        Backend::Sev => "sev",
        Backend::SevSnp => "sev-snp",
        Backend::Tdx => "tdx",
    }
}
