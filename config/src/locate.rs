//! From key paths to byte spans in the parsed document, and back.

use crate::diagnostic::{KeyPath, Segment};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The span of the value at `path`; where the path leaves the document (a missing key),
/// the span of the deepest part that exists.
pub fn span_of(root: &Spanned<DeTable<'_>>, path: &KeyPath) -> Option<Range<usize>> {
    let mut span = None;
    let mut node: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for segment in &path.0 {
        let next = match (segment, table, node) {
            (Segment::Key(key), Some(t), _) => t.get(key.as_str()),
            (Segment::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = Some(next.span());
        node = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    span
}

/// The key path of the innermost key or value whose span contains `offset`. Table
/// spans cover only their `[header]`, so every branch is searched, not just the one
/// whose span contains the offset.
pub fn path_at(root: &Spanned<DeTable<'_>>, offset: usize) -> KeyPath {
    search_table(root.get_ref(), offset, &KeyPath::root()).unwrap_or_default()
}

fn search_table(table: &DeTable<'_>, offset: usize, path: &KeyPath) -> Option<KeyPath> {
    table.iter().find_map(|(key, value)| {
        let here = path.key(key.get_ref());
        if key.span().contains(&offset) {
            return Some(here);
        }
        search_value(value, offset, &here)
    })
}

fn search_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &KeyPath) -> Option<KeyPath> {
    let inner = match value.get_ref() {
        DeValue::Table(table) => search_table(table, offset, path),
        DeValue::Array(array) => array
            .iter()
            .enumerate()
            .find_map(|(i, v)| search_value(v, offset, &path.index(i))),
        _ => None,
    };
    inner.or_else(|| value.span().contains(&offset).then(|| path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_path;

    const DOC: &str = "[hypervisor]\nboard = \"x\"\n\n[[pool]]\nname = \"a\"\n\n[[pool]]\nname = \"b\"\nsize = \"4K\"\n";

    #[test]
    fn paths_and_spans_round_trip() {
        let root = DeTable::parse(DOC).unwrap();
        let span = span_of(&root, &key_path!["pool", 1, "size"]).unwrap();
        assert_eq!(&DOC[span.clone()], "\"4K\"");
        assert_eq!(path_at(&root, span.start), key_path!["pool", 1, "size"]);
        let board = span_of(&root, &key_path!["hypervisor", "board"]).unwrap();
        assert_eq!(&DOC[board], "\"x\"");
        // A missing key falls back to its table's header.
        let missing = span_of(&root, &key_path!["pool", 0, "size"]).unwrap();
        assert_eq!(
            (missing.start, &DOC[missing]),
            (DOC.find("[[pool]]").unwrap(), "[[pool]]")
        );
    }
}
