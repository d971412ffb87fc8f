//! The configuration text, for turning byte spans into `file:line:col` and a snippet.

use crate::diagnostic::Diagnostic;
use std::fmt::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> Self {
        Self {
            path: path.to_path_buf(),
            text,
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// `file:line:col: key: message`, the offending line with a caret, and the hint.
    pub fn render(&self, diagnostic: &Diagnostic, span: Option<Range<usize>>) -> String {
        let mut out = String::new();
        let file = self.path.display();
        let Some(span) = span else {
            let _ = write!(out, "{file}: {}: {}", diagnostic.key, diagnostic.message);
            if let Some(hint) = &diagnostic.hint {
                let _ = write!(out, "\n  = help: {hint}");
            }
            return out;
        };
        let (line, col) = self.line_col(span.start);
        let _ = write!(
            out,
            "{file}:{line}:{col}: {}: {}",
            diagnostic.key, diagnostic.message
        );
        if let Some(text) = self.text.lines().nth(line - 1) {
            let width = line.to_string().len();
            let line_end = self.text[span.start..]
                .find('\n')
                .map_or(self.text.len(), |i| span.start + i);
            let marked = self.text[span.start..span.end.clamp(span.start, line_end)]
                .chars()
                .count()
                .max(1);
            let _ = write!(
                out,
                "\n{:width$} |\n{line} | {text}\n{:width$} | {}{}",
                "",
                "",
                " ".repeat(col - 1),
                "^".repeat(marked)
            );
        }
        if let Some(hint) = &diagnostic.hint {
            let width = line.to_string().len();
            let _ = write!(out, "\n{:width$} = help: {hint}", "");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_path;

    #[test]
    fn renders_location_snippet_and_hint() {
        let source = SourceFile::new(Path::new("a.toml"), "[hypervisor]\nlog_levle = 1\n".into());
        assert_eq!(source.line_col(13), (2, 1));
        let d = Diagnostic::new(key_path!["hypervisor", "log_levle"], "unknown key")
            .hint("did you mean `log_level`?");
        let text = source.render(&d, Some(13..22));
        assert_eq!(
            text,
            "a.toml:2:1: hypervisor.log_levle: unknown key\n  |\n2 | log_levle = 1\n  | ^^^^^^^^^\n  = help: did you mean `log_level`?"
        );
    }
}
