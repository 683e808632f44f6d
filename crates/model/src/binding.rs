//! Bindings: how a node input or workflow output gets its value.
//!
//! A value is a literal, a reference (`{{ inputs.x }}`, `{{ node.outputs.y }}`), a string
//! template mixing text and references, or a list whose items are any of these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a referenced value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ref {
    /// A workflow input.
    Input(String),
    /// An output of another node.
    NodeOutput { node: String, output: String },
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Input(n) => write!(f, "{{{{ inputs.{n} }}}}"),
            Ref::NodeOutput { node, output } => write!(f, "{{{{ {node}.outputs.{output} }}}}"),
        }
    }
}

/// A compiled binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    Literal(Value),
    Ref(Ref),
    Template(Vec<Part>),
    List(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Text(String),
    Ref(Ref),
}

impl Expr {
    /// Every reference in this binding, in order.
    pub fn refs(&self) -> Vec<&Ref> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a Ref>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Ref(r) => out.push(r),
            Expr::Template(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Ref(r) => Some(r),
                Part::Text(_) => None,
            })),
            Expr::List(items) => items.iter().for_each(|e| e.collect_refs(out)),
        }
    }
}

/// What a string holds: plain text, exactly one reference, or a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Text,
    Ref(Ref),
    Template(Vec<Part>),
}

/// Parses the `{{ … }}` placeholders of a string.
pub fn parse_string(s: &str) -> Result<Parsed, String> {
    if !s.contains("{{") {
        if s.contains("}}") {
            return Err(format!("`}}}}` without a matching `{{{{` in \"{s}\""));
        }
        return Ok(Parsed::Text);
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("unclosed `{{{{` in \"{s}\""));
        };
        parts.push(Part::Ref(parse_ref(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        if rest.contains("}}") {
            return Err(format!("`}}}}` without a matching `{{{{` in \"{s}\""));
        }
        parts.push(Part::Text(rest.to_string()));
    }
    if let [Part::Ref(r)] = parts.as_slice() {
        return Ok(Parsed::Ref(r.clone()));
    }
    Ok(Parsed::Template(parts))
}

fn parse_ref(expr: &str) -> Result<Ref, String> {
    let segs: Vec<&str> = expr.split('.').map(str::trim).collect();
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match segs.as_slice() {
        ["inputs", name] if ok(name) => Ok(Ref::Input(name.to_string())),
        [node, "outputs", name] if ok(node) && ok(name) => {
            Ok(Ref::NodeOutput { node: node.to_string(), output: name.to_string() })
        }
        _ => Err(format!(
            "cannot read `{{{{ {expr} }}}}`; expected `{{{{ inputs.NAME }}}}` or `{{{{ NODE.outputs.NAME }}}}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_string("plain").unwrap(), Parsed::Text);
        assert_eq!(parse_string("{{ inputs.x }}").unwrap(), Parsed::Ref(Ref::Input("x".into())));
        assert_eq!(
            parse_string("{{load.outputs.table}}").unwrap(),
            Parsed::Ref(Ref::NodeOutput { node: "load".into(), output: "table".into() })
        );
        assert_eq!(
            parse_string("s3://b/{{ inputs.day }}/x").unwrap(),
            Parsed::Template(vec![
                Part::Text("s3://b/".into()),
                Part::Ref(Ref::Input("day".into())),
                Part::Text("/x".into())
            ])
        );
        assert!(parse_string("{{ inputs.x ").unwrap_err().contains("unclosed"));
        assert!(parse_string("{{ load.table }}").unwrap_err().contains("expected"));
        assert!(parse_string("a }} b").is_err());
    }
}
