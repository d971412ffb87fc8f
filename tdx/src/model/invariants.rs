//! Invariants that hold after any sequence of calls, for property tests.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;

use super::pamt::{PageType, pages_in};
use super::{Lifecycle, TdxModel};
use crate::abi::Level;

impl TdxModel {
    /// Checks the model's bookkeeping: TDR.CHLDCNT equals the pages associated with the
    /// TD (control pages, S-EPT pages, private pages weighted by size); every entry has
    /// its parent table; entries and PAMT pages match one to one; the epoch refcounts
    /// match the vCPUs in guest mode. Returns the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let td = &self.td;
        let mut associated = 0;
        for (base, page) in td.pamt.iter() {
            check(page.owner == td.tdr, || {
                format!("{base:#x} owned by {:#x}", page.owner)
            })?;
            if page.ty != PageType::Tdr {
                associated += pages_in(page.size);
            }
        }
        check(td.child_count == associated, || {
            format!("child count {} != {associated} pages owned", td.child_count)
        })?;

        let running = td.vcpus.iter().filter(|vcpu| vcpu.in_guest).count();
        check(td.epoch.running() as usize == running, || {
            format!(
                "epoch refcounts {} != {running} vCPUs in guest",
                td.epoch.running()
            )
        })?;

        if td.lifecycle == Lifecycle::Teardown {
            return check(td.sept.iter().next().is_none(), || {
                "S-EPT entries after KEY.FREEID".into()
            });
        }

        let mut hpas = BTreeSet::new();
        let mut mapped = 0;
        for entry in td.sept.iter() {
            let at = || format!("{:#x} at {:?} ({:?})", entry.gpa, entry.level, entry.state);
            if let Some(parent) = entry.level.parent() {
                let state = td.sept.get(entry.gpa, parent).map(|e| e.state);
                let linked = state.is_some_and(|s| !s.is_leaf());
                check(linked, || format!("{} has parent {state:?}", at()))?;
            }
            let (ty, size) = if entry.state.is_leaf() {
                check(entry.level <= Level::L2M, || {
                    format!("{}: leaf above 2M", at())
                })?;
                mapped += pages_in(entry.level);
                (PageType::Reg, entry.level)
            } else {
                check(entry.level >= Level::L2M, || {
                    format!("{}: table link at 4K", at())
                })?;
                mapped += 1;
                (PageType::Sept, Level::L4K)
            };
            let page = td.pamt.find(entry.hpa);
            let matches =
                page.is_some_and(|(base, p)| base == entry.hpa && p.ty == ty && p.size == size);
            check(matches, || {
                format!("{} maps {:#x}, PAMT {page:?}", at(), entry.hpa)
            })?;
            check(hpas.insert(entry.hpa), || {
                format!("{}: {:#x} mapped twice", at(), entry.hpa)
            })?;
        }
        let control = td
            .control
            .iter()
            .filter(|&&page| td.pamt.page_type(page) == PageType::Tdcs)
            .count() as u64;
        check(td.child_count == control + mapped, || {
            format!(
                "child count {} != {control} control + {mapped} mapped pages",
                td.child_count
            )
        })
    }
}

fn check(holds: bool, violation: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(violation()) }
}
