//! A violation names the document, the field path inside it, and what was expected.

use serde::Serialize;
use std::fmt;

/// One thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `Kind/name` of the document, or `document[i]` when it has no usable name.
    pub document: String,
    /// Dotted path inside the document, e.g. `nodes[1].inputs.table`; empty for the whole document.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.document.is_empty(), self.field.is_empty()) {
            (true, true) => write!(f, "{}", self.message),
            (true, false) => write!(f, "{}: {}", self.field, self.message),
            (false, true) => write!(f, "{}: {}", self.document, self.message),
            (false, false) => write!(f, "{}: {}: {}", self.document, self.field, self.message),
        }
    }
}

/// Everything wrong with a bundle; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    pub fn push(&mut self, document: &str, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation { document: document.to_string(), field: field.into(), message: message.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result<T>(self, ok: T) -> Result<T, Violations> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut it = self.0.iter();
        if let Some(first) = it.next() {
            write!(f, "{first}")?;
        }
        let rest = self.0.len().saturating_sub(1);
        if rest > 0 {
            write!(f, " (and {rest} more)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// Joins path segments: `join("nodes[1]", "inputs")` → `nodes[1].inputs`.
pub fn join(base: &str, seg: &str) -> String {
    if seg.is_empty() {
        base.to_string()
    } else if base.is_empty() {
        seg.to_string()
    } else if seg.starts_with('[') {
        format!("{base}{seg}")
    } else {
        format!("{base}.{seg}")
    }
}
