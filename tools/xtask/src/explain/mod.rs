//! `cargo xtask config explain`: a configuration as the build resolves it, in tables a
//! person can check against what they meant: the hypervisor's settings, where every
//! pool landed in host RAM, what backs each guest-physical range of the workload, and
//! the workload image.

mod guest_map;
mod host_map;
mod hypervisor;
mod image_section;
mod table;
mod workload_image;

pub use workload_image::WorkloadImage;

use cloister_config::{Config, Layout, PageSize, PoolKind};
use std::path::Path;

/// Every section for `config` (read from `config_path`) placed as `layout`, with what
/// is known of its workload image.
pub fn render(
    config_path: &Path,
    config: &Config,
    layout: &Layout,
    image: &WorkloadImage,
) -> String {
    [
        hypervisor::section(config),
        host_map::section(config, layout),
        guest_map::section(config, layout),
        image_section::section(config_path, config, image),
    ]
    .join("\n")
}

/// `[base, end)` in hex, as the hypervisor's own messages write ranges.
fn span(base: u64, size: u64) -> String {
    format!("[{base:#x}, {:#x})", base.saturating_add(size))
}

fn kind_name(kind: PoolKind) -> &'static str {
    match kind {
        PoolKind::Private => "private",
        PoolKind::Shared => "shared",
    }
}

fn page_size_name(page_size: PageSize) -> &'static str {
    match page_size {
        PageSize::Size4K => "4K",
        PageSize::Size2M => "2M",
    }
}

#[cfg(test)]
mod tests;
