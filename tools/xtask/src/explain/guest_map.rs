//! The workload's guest-physical memory: each memslot, what its pages are at launch,
//! and the host range behind it (a pool backs one slot, from the pool's base).

use super::table::{Align, Table};
use super::{kind_name, span};
use cloister_config::{Config, Layout};

pub fn section(config: &Config, layout: &Layout) -> String {
    let mut table = Table::new(&[
        ("guest range", Align::Left),
        ("size", Align::Right),
        ("attribute", Align::Left),
        ("pool", Align::Left),
        ("host range", Align::Left),
    ]);
    let mut slots: Vec<_> = config.workload.memory.iter().collect();
    slots.sort_by_key(|slot| slot.gpa);
    for slot in slots {
        let placed = layout.pool(&slot.pool);
        let attribute = slot.default.or(placed.map(|p| p.kind));
        table.row(vec![
            span(slot.gpa.0, slot.size.0),
            slot.size.to_string(),
            attribute.map_or("?", kind_name).into(),
            slot.pool.clone(),
            placed.map_or_else(|| "?".into(), |p| span(p.base, slot.size.0)),
        ]);
    }
    format!(
        "Workload '{}': guest-physical memory\n{}",
        config.workload.name,
        table.render(2)
    )
}
