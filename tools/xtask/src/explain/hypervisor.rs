//! The hypervisor's own settings, defaults filled in.

use super::table::fields;
use cloister_config::Config;

pub fn section(config: &Config) -> String {
    let h = &config.hypervisor;
    let pairs = [
        ("board", h.board.clone()),
        ("backend", h.backend.as_str().to_owned()),
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
