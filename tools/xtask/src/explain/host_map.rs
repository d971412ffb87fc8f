//! Host-physical memory: the hypervisor's reserved range and every pool where the build
//! placed it, then the declared RAM and how much of it nothing uses.

use super::table::{Align, Table};
use super::{kind_name, page_size_name, span};
use cloister_config::{Config, HYPERVISOR_RESERVED, Layout, Size};

pub fn section(config: &Config, layout: &Layout) -> String {
    let mut map = Table::new(&[
        ("range", Align::Left),
        ("size", Align::Right),
        ("what", Align::Left),
        ("kind", Align::Left),
        ("pages", Align::Left),
        ("placement", Align::Left),
    ]);
    let reserved = (
        HYPERVISOR_RESERVED.start,
        HYPERVISOR_RESERVED.end - HYPERVISOR_RESERVED.start,
    );
    map.row(vec![
        span(reserved.0, reserved.1),
        Size(reserved.1).to_string(),
        "hypervisor image, stacks, heap, tables".into(),
        "-".into(),
        "-".into(),
        "reserved".into(),
    ]);
    // The layout lists pools in address order, all above the reserved range.
    for placed in &layout.pools {
        let pool = config.pool(&placed.name);
        let page_size = pool.map_or("?", |p| page_size_name(p.page_size));
        let fixed = pool.is_some_and(|p| p.base.is_some());
        map.row(vec![
            span(placed.base, placed.size),
            Size(placed.size).to_string(),
            format!("pool {}", placed.name),
            kind_name(placed.kind).into(),
            page_size.into(),
            if fixed { "fixed" } else { "placed" }.into(),
        ]);
    }
    let mut occupied: Vec<(u64, u64)> = vec![reserved];
    occupied.extend(layout.pools.iter().map(|p| (p.base, p.size)));
    let mut ram = Table::new(&[
        ("declared RAM", Align::Left),
        ("size", Align::Right),
        ("free", Align::Right),
    ]);
    for range in &config.platform.ram {
        let (base, size) = (range.base.0, range.size.0);
        let used: u64 = occupied.iter().map(|&o| overlap(o, (base, size))).sum();
        ram.row(vec![
            span(base, size),
            Size(size).to_string(),
            Size(size.saturating_sub(used)).to_string(),
        ]);
    }
    format!("Host-physical memory\n{}\n{}", map.render(2), ram.render(2))
}

/// Bytes two ranges share. Occupied ranges never overlap each other (placement checks
/// that), so summing this over them counts every used byte once.
fn overlap((a, a_size): (u64, u64), (b, b_size): (u64, u64)) -> u64 {
    let start = a.max(b);
    let end = a.saturating_add(a_size).min(b.saturating_add(b_size));
    end.saturating_sub(start)
}
