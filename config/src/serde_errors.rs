//! serde's messages, retold in the configuration's terms: the key, and a suggestion.

use crate::diagnostic::Diagnostic;
use crate::locate::path_at;
use crate::suggest::nearest;
use toml::Spanned;
use toml::de::DeTable;

/// The names between backticks in serde's "expected one of `a`, `b`" lists.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// A diagnostic for a parse or deserialisation error at `offset`.
pub fn diagnose(root: Option<&Spanned<DeTable<'_>>>, offset: usize, message: &str) -> Diagnostic {
    let path = root.map(|r| path_at(r, offset)).unwrap_or_default();
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let (name, expected) = names.split_first().map_or(("?", &[][..]), |(n, e)| (*n, e));
        let d = Diagnostic::new(path, format!("unknown key `{name}`"));
        return match nearest(name, expected.iter().copied()) {
            Some(near) => d.hint(format!("did you mean `{near}`?")),
            None if expected.is_empty() => d.hint("this table takes no keys"),
            None => d.hint(format!("valid keys here: {}", expected.join(", "))),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        let (name, expected) = names.split_first().map_or(("?", &[][..]), |(n, e)| (*n, e));
        let d = Diagnostic::new(path, format!("invalid value \"{name}\""));
        return match nearest(name, expected.iter().copied()) {
            Some(near) => d.hint(format!("did you mean \"{near}\"?")),
            None => d.hint(format!("expected one of: {}", expected.join(", "))),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let name = backticked(rest).first().copied().unwrap_or("?");
        return Diagnostic::new(path.key(name), "missing required key");
    }
    Diagnostic::new(path, message.to_owned())
}
