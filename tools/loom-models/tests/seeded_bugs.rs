//! Seeded bugs: the same models and the same protocol code, run with a broken entry cell
//! or the wrong protocol flag. Each test passes only if loom finds the violation the bug
//! causes, and checks it is the expected one: two accesses the mirror entry's lock
//! failed to order, to the external (S-EPT) state behind that entry.

use cloister_loom_models::models::Racer;
use cloister_loom_models::{Flaw, models, violation};

/// A race loom reported: the kind, where the racing cell was created, and where each
/// of the two racing accesses was made (`file:line:column`).
struct Race<'a> {
    kind: &'a str,
    created: &'a str,
    accesses: Vec<&'a str>,
}

fn race(found: &str) -> Race<'_> {
    let kind = found
        .trim_start()
        .strip_prefix("Causality violation: ")
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("not a race loom reported: {found}"));
    let lines = found.lines().map(str::trim);
    let created = lines.clone().find(|l| l.starts_with("created:")).map(field);
    let accesses = lines.filter(|l| l.contains(" @ ")).map(field).collect();
    Race {
        kind,
        created: created.unwrap_or_else(|| panic!("no creation site: {found}")),
        accesses,
    }
}

/// The last word of a line of loom's report: a location.
fn field(line: &str) -> &str {
    line.rsplit(' ').next().unwrap_or("")
}

fn file(location: &str) -> &str {
    location.split(':').next().unwrap_or("")
}

/// A freeze whose compare-exchange is a load and a separate store: both vCPUs read the
/// entry vacant, both "freeze" it, and both run PAGE.AUG on the S-EPT entry at once.
#[test]
fn a_freeze_without_an_atomic_compare_exchange_lets_two_vcpus_aug_one_gpa() {
    let found = violation(models::two_vcpus_fault_one_gpa(Flaw::SplitCompareExchange));
    let race = race(&found);
    assert_eq!(race.kind, "Concurrent write accesses to `UnsafeCell`.");
    assert!(file(race.created).ends_with("src/external.rs"), "{found}");
    assert_eq!(race.accesses.len(), 2, "{found}");
    assert_eq!(
        race.accesses[0], race.accesses[1],
        "the same S-EPT change (PAGE.AUG) twice: {found}"
    );
}

/// Relaxed publishing: the losing vCPU sees the winner's leaf but not the PAGE.AUG made
/// before it was published, a half-made entry.
#[test]
fn a_relaxed_unfreeze_lets_a_vcpu_see_a_leaf_before_its_sept_change() {
    let found = violation(models::two_vcpus_fault_one_gpa(Flaw::Relaxed));
    let race = race(&found);
    assert_eq!(race.kind, "Concurrent read and write accesses.");
    assert!(file(race.created).ends_with("src/external.rs"), "{found}");
    let files: Vec<&str> = race.accesses.iter().map(|a| file(a)).collect();
    assert_eq!(
        files,
        [
            "tools/loom-models/src/models.rs",
            "tools/loom-models/src/external.rs"
        ],
        "the vCPU's look at the S-EPT after its fault, against PAGE.AUG: {found}"
    );
}

/// A zap of the mirror that clears the entry instead of freezing it (the path for tables
/// without an external copy): a fault finds the entry vacant and runs PAGE.AUG while the
/// zap's PAGE.REMOVE of the old leaf is still running. Found whichever racer starts first.
#[test]
fn a_zap_that_does_not_freeze_the_mirror_entry_lets_a_fault_aug_over_the_old_leaf() {
    for first in [Racer::Fault, Racer::Zap] {
        let found = violation(models::fault_races_zap(true, false, first));
        let race = race(&found);
        assert_eq!(race.kind, "Concurrent write accesses to `UnsafeCell`.");
        assert!(file(race.created).ends_with("src/external.rs"), "{found}");
        assert_eq!(race.accesses.len(), 2, "{found}");
        assert_ne!(
            race.accesses[0], race.accesses[1],
            "two different S-EPT changes (PAGE.REMOVE and PAGE.AUG): {found}"
        );
    }
}

/// The split compare-exchange on a parent entry: both vCPUs link their own table page
/// under one entry, with two SEPT.ADDs at once.
#[test]
fn a_freeze_without_an_atomic_compare_exchange_lets_two_vcpus_link_two_tables() {
    let found = violation(models::two_vcpus_link_one_table(Flaw::SplitCompareExchange));
    let race = race(&found);
    assert_eq!(race.kind, "Concurrent write accesses to `UnsafeCell`.");
    assert!(file(race.created).ends_with("src/link.rs"), "{found}");
    assert_eq!(race.accesses.len(), 2, "{found}");
    assert_eq!(
        race.accesses[0], race.accesses[1],
        "the same S-EPT change (SEPT.ADD) twice: {found}"
    );
}
