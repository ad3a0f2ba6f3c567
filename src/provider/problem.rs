//! `Problem`: one finding about a provider file, printed as `FILE:LINE:COL: message` plus a hint.

use std::fmt;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

impl Position {
    /// The start of a file (for problems about the file as a whole).
    pub const START: Position = Position { line: 1, column: 1 };

    /// The position of byte `offset` in `text` (clamped to the text, rounded down to a char).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let (line, column) = crate::oauth::wire::line_col(text, offset);
        Position { line, column }
    }
}

/// How bad a problem is: errors make a file unusable, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file cannot be used.
    Error,
    /// The file is used, but something deserves attention.
    Warning,
}

/// One finding about a provider file: where, what and how to fix it.
///
/// Displays as `FILE:LINE:COL: message` (warnings as `FILE:LINE:COL: warning: message`),
/// followed by `\n  hint: ...`. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problem {
    /// The file as the user named it (a path, or `<bundled>/NAME.toml` for a template).
    pub file: String,
    /// Where in the file; `None` when the file itself could not be read.
    pub position: Option<Position>,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, one line.
    pub message: String,
    /// How to fix it, one line.
    pub hint: String,
}

impl Problem {
    /// An error at `position` in `file`.
    pub fn error(
        file: impl Into<String>,
        position: Position,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            position: Some(position),
            severity: Severity::Error,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A warning at `position` in `file`.
    pub fn warning(
        file: impl Into<String>,
        position: Position,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, position, message, hint)
        }
    }

    /// True for errors (the file is unusable), false for warnings.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}\n  hint: {}", self.message, self.hint)
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_char_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 6),
            Position { line: 2, column: 1 }
        );
        // `=` after the two-byte `é` is the 4th character of line 2.
        let eq = text.find(" =").map(|i| i + 1).unwrap_or_default();
        let eq = text[6..].find('=').map(|i| i + 6).unwrap_or(eq);
        assert_eq!(
            Position::of_offset(text, eq),
            Position { line: 2, column: 4 }
        );
        assert_eq!(Position::of_offset(text, 10_000).line, 3);
    }

    #[test]
    fn display_is_file_line_col_message_then_hint() {
        let p = Problem::error("a.toml", Position { line: 3, column: 7 }, "bad", "fix it");
        assert_eq!(p.to_string(), "a.toml:3:7: bad\n  hint: fix it");
        let w = Problem::warning("a.toml", Position::START, "meh", "maybe");
        assert_eq!(w.to_string(), "a.toml:1:1: warning: meh\n  hint: maybe");
        assert!(p.is_error() && !w.is_error());
    }

    #[test]
    fn closest_suggests_typos_only() {
        let fields = ["client_id", "client_secret", "scopes"];
        assert_eq!(closest("client_di", fields), Some("client_id"));
        assert_eq!(closest("scope", fields), Some("scopes"));
        assert_eq!(closest("banana", fields), None);
    }
}
