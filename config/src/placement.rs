//! Build-time placement of pools in host RAM: fixed pools where they say, the others
//! first-fit in file order, 2 MiB aligned, in declared RAM above the hypervisor.

use crate::diagnostic::Diagnostic;
use crate::key_path;
use crate::schema::{Config, PoolKind};
use crate::units::Size;
use crate::validate::overlaps;

/// Pools must end at or below this: the qemu-x86_64 board reaches them (shared ones
/// directly, private ones through its window) via an identity map of the low 4 GiB.
pub const POOL_LIMIT: u64 = 1 << 32;

/// Host-physical range kept for the hypervisor image, its stacks, heap and tables. The
/// image's linker script fails the link if the image outgrows it.
pub const HYPERVISOR_RESERVED: std::ops::Range<u64> = 0..0x200_0000;

const ALIGN_2M: u64 = 0x20_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPool {
    pub name: String,
    pub kind: PoolKind,
    pub base: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// In address order.
    pub pools: Vec<PlacedPool>,
}

impl Layout {
    pub fn pool(&self, name: &str) -> Option<&PlacedPool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// Place every pool, or say for each one that cannot be placed why, in TOML terms.
pub fn place(config: &Config) -> Result<Layout, Vec<Diagnostic>> {
    // Only RAM the board can reach holds pools; clipping also keeps the arithmetic
    // below far from overflow.
    let ram: Vec<(u64, u64)> = config
        .platform
        .ram
        .iter()
        .filter(|r| r.base.0 < POOL_LIMIT)
        .map(|r| (r.base.0, r.size.0.min(POOL_LIMIT - r.base.0)))
        .collect();
    let in_ram = |base: u64, size: u64| {
        ram.iter()
            .any(|&(b, s)| base >= b && base.saturating_add(size) <= b + s)
    };
    let reserved = (
        HYPERVISOR_RESERVED.start,
        HYPERVISOR_RESERVED.end - HYPERVISOR_RESERVED.start,
    );
    let mut taken: Vec<(u64, u64, String)> =
        vec![(reserved.0, reserved.1, "the hypervisor image".into())];
    let mut pools = Vec::new();
    let mut errors = Vec::new();
    let fixed = config
        .pools
        .iter()
        .enumerate()
        .filter(|(_, p)| p.base.is_some());
    for (i, pool) in fixed {
        let base = pool.base.map_or(0, |b| b.0);
        let span = (base, pool.size.0);
        let end = base.saturating_add(pool.size.0);
        if end > POOL_LIMIT {
            errors.push(
                Diagnostic::new(
                    key_path!["pool", i, "base"],
                    format!("[{base:#x}, {end:#x}) ends above 4 GiB"),
                )
                .hint(
                    "the qemu-x86_64 board reaches pools through its identity map of the low 4 GiB",
                ),
            );
            continue;
        }
        if !in_ram(base, pool.size.0) {
            errors.push(
                Diagnostic::new(key_path!["pool", i, "base"], format!("[{base:#x}, {end:#x}) is outside the RAM declared in platform.ram"))
                    .hint("move the pool into a platform.ram range, or drop `base` to let the build place it"),
            );
        } else if let Some((_, _, owner)) = taken.iter().find(|&&(b, s, _)| overlaps((b, s), span))
        {
            errors.push(
                Diagnostic::new(
                    key_path!["pool", i, "base"],
                    format!("[{base:#x}, {end:#x}) overlaps {owner}"),
                )
                .hint(format!(
                    "pools must start at or above {:#x} and must not overlap",
                    HYPERVISOR_RESERVED.end
                )),
            );
        }
        taken.push((base, pool.size.0, format!("pool {:?}", pool.name)));
        pools.push(PlacedPool {
            name: pool.name.clone(),
            kind: pool.kind,
            base,
            size: pool.size.0,
        });
    }
    // Every span in `taken` now ends at or below POOL_LIMIT.
    for (i, pool) in config
        .pools
        .iter()
        .enumerate()
        .filter(|(_, p)| p.base.is_none())
    {
        let size = pool.size.0;
        let fit = ram.iter().find_map(|&(start, len)| {
            let mut base = start.next_multiple_of(ALIGN_2M);
            while base.saturating_add(size) <= start + len {
                match taken
                    .iter()
                    .find(|&&(b, s, _)| overlaps((b, s), (base, size)))
                {
                    None => return Some(base),
                    Some(&(b, s, _)) => base = (b + s).next_multiple_of(ALIGN_2M),
                }
            }
            None
        });
        let Some(base) = fit else {
            errors.push(
                Diagnostic::new(key_path!["pool", i, "size"], format!("pool {:?} ({}) does not fit in free RAM", pool.name, pool.size))
                    .hint(format!(
                        "largest free block is {}; shrink the pool, or declare more RAM in platform.ram (and give QEMU that much -m)",
                        Size(largest_free_block(&ram, &taken))
                    )),
            );
            continue;
        };
        taken.push((base, size, format!("pool {:?}", pool.name)));
        pools.push(PlacedPool {
            name: pool.name.clone(),
            kind: pool.kind,
            base,
            size,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    pools.sort_by_key(|p| p.base);
    Ok(Layout { pools })
}

/// The largest 2 MiB-aligned block of declared RAM that nothing occupies.
fn largest_free_block(ram: &[(u64, u64)], taken: &[(u64, u64, String)]) -> u64 {
    let mut best = 0;
    for &(start, len) in ram {
        let end = start + len;
        let mut edges: Vec<(u64, u64)> = taken
            .iter()
            .map(|&(b, s, _)| (b, b.saturating_add(s)))
            .collect();
        edges.sort();
        let mut cursor = start.next_multiple_of(ALIGN_2M);
        for (b, e) in edges {
            if e <= cursor || b >= end {
                continue;
            }
            best = best.max(b.min(end).saturating_sub(cursor));
            cursor = cursor.max(e.next_multiple_of(ALIGN_2M));
        }
        best = best.max(end.saturating_sub(cursor));
    }
    best
}
