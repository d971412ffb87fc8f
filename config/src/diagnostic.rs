//! A configuration problem tied to the TOML key it is about.

use std::fmt;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where in the document a problem is: `pool[1].size`, `workload.memory[0].gpa`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by table key `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by array index `index`.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

/// `KeyPath` from literal segments: `key_path!["pool", 1, "size"]`.
#[macro_export]
macro_rules! key_path {
    ($($segment:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut path = $crate::KeyPath::root();
        $( path = $crate::diagnostic::IntoSegment::extend(path, $segment); )*
        path
    }};
}

/// What `key_path!` accepts as a segment.
pub trait IntoSegment {
    fn extend(path: KeyPath, segment: Self) -> KeyPath;
}

impl IntoSegment for &str {
    fn extend(path: KeyPath, segment: Self) -> KeyPath {
        path.key(segment)
    }
}

impl IntoSegment for usize {
    fn extend(path: KeyPath, segment: Self) -> KeyPath {
        path.index(segment)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A problem with the value at `key`, and optionally what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub key: KeyPath,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(key: KeyPath, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_print_like_toml_keys() {
        assert_eq!(key_path!["pool", 1, "size"].to_string(), "pool[1].size");
        assert_eq!(
            key_path!["workload", "memory", 0, "gpa"].to_string(),
            "workload.memory[0].gpa"
        );
        assert_eq!(KeyPath::root().to_string(), "(top level)");
    }
}
