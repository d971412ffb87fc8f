//! Build-time placement of pools in host RAM.

use crate::schema::{Config, PoolKind};

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
    pub pools: Vec<PlacedPool>,
}

impl Layout {
    pub fn pool(&self, name: &str) -> Option<&PlacedPool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

/// Fixed pools where they say; the others first-fit, 2 MiB aligned, in declared RAM
/// above the hypervisor's range, in file order.
pub fn place(config: &Config) -> Result<Layout, String> {
    let ram: Vec<(u64, u64)> = config
        .platform
        .ram
        .iter()
        .map(|r| (r.base.0, r.size.0))
        .collect();
    let in_ram = |base: u64, size: u64| ram.iter().any(|&(b, s)| base >= b && base + size <= b + s);
    let reserved = (
        HYPERVISOR_RESERVED.start,
        HYPERVISOR_RESERVED.end - HYPERVISOR_RESERVED.start,
    );
    let mut taken = vec![reserved];
    let mut pools = Vec::new();
    for pool in config.pools.iter().filter(|p| p.base.is_some()) {
        let base = pool.base.unwrap().0;
        let span = (base, pool.size.0);
        if !in_ram(base, pool.size.0) {
            return Err(format!(
                "pool {:?}: [{base:#x}, {:#x}) is outside platform.ram",
                pool.name,
                base + pool.size.0
            ));
        }
        if taken.iter().any(|&t| overlaps(t, span)) {
            return Err(format!(
                "pool {:?}: base {base:#x} overlaps the hypervisor or another pool",
                pool.name
            ));
        }
        taken.push(span);
        pools.push(PlacedPool {
            name: pool.name.clone(),
            kind: pool.kind,
            base,
            size: pool.size.0,
        });
    }
    for pool in config.pools.iter().filter(|p| p.base.is_none()) {
        let size = pool.size.0;
        let fit = ram.iter().find_map(|&(start, len)| {
            let mut base = start.next_multiple_of(ALIGN_2M);
            while base + size <= start + len {
                match taken.iter().find(|&&t| overlaps(t, (base, size))) {
                    None => return Some(base),
                    Some(&(b, s)) => base = (b + s).next_multiple_of(ALIGN_2M),
                }
            }
            None
        });
        let base = fit.ok_or_else(|| {
            format!(
                "pool {:?}: {} does not fit in the free part of platform.ram",
                pool.name, pool.size
            )
        })?;
        taken.push((base, size));
        pools.push(PlacedPool {
            name: pool.name.clone(),
            kind: pool.kind,
            base,
            size,
        });
    }
    pools.sort_by_key(|p| p.base);
    Ok(Layout { pools })
}
