//! docs/config.md documents every key the schema accepts, and nothing else.

use cloister_config::{Config, Hypervisor, Memslot, Platform, Pool, RamRange, Workload};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;

/// The keys serde accepts for `T`, read from its "unknown field" error: serde lists
/// every valid field there, so this cannot drift from the derive.
fn fields_of<T: DeserializeOwned>() -> Vec<String> {
    let error = toml::from_str::<T>("__probe__ = 0")
        .err()
        .expect("the probe key is unknown");
    let message = error.message().to_owned();
    let rest = message
        .strip_prefix("unknown field `__probe__`")
        .unwrap_or_else(|| panic!("unexpected: {message}"));
    rest.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn schema_keys() -> BTreeSet<String> {
    let tables: [(&str, Vec<String>); 7] = [
        ("", fields_of::<Config>()),
        ("hypervisor.", fields_of::<Hypervisor>()),
        ("platform.", fields_of::<Platform>()),
        ("platform.ram.", fields_of::<RamRange>()),
        ("pool.", fields_of::<Pool>()),
        ("workload.", fields_of::<Workload>()),
        ("workload.memory.", fields_of::<Memslot>()),
    ];
    tables
        .iter()
        .flat_map(|(prefix, fields)| fields.iter().map(move |f| format!("{prefix}{f}")))
        .collect()
}

/// Keys in the first column of the reference tables: rows starting with "| `key`".
fn documented_keys() -> BTreeSet<String> {
    let doc = include_str!("../../docs/config.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_reference_documents_exactly_the_schema() {
    let schema = schema_keys();
    assert!(
        schema.contains("workload.memory.gpa"),
        "probe works: {schema:?}"
    );
    let documented = documented_keys();
    let undocumented: Vec<_> = schema.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&schema).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from docs/config.md: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "docs/config.md documents keys the schema does not have: {stale:?}"
    );
}
