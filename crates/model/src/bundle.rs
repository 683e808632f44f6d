//! Parsing a bundle: a YAML stream (`---`-separated) or JSON holding spec documents.
//!
//! Each YAML document is one spec document, or a list of them (which also covers a JSON array).
//! Errors name the document (`Kind/name`, else `document[i]`) and the field path.

use crate::spec::{EntityKind, LaunchPlanSpec, Spec, TaskSpec, WorkflowSpec};
use crate::violation::Violations;
use serde::Deserialize;
use serde_json::Value;

/// Most documents in one bundle.
pub const MAX_DOCUMENTS: usize = 20_000;

/// A parsed document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// Position in the bundle, counting from 0.
    pub index: usize,
    pub spec: Spec,
}

impl Document {
    /// How errors name this document: `Workflow/alpha-ml-workflow`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.spec.kind().as_str(), self.spec.name())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub documents: Vec<Document>,
    /// The version given inside the bundle (JSON envelope `{"version": …, "documents": […]}`).
    pub version: Option<String>,
}

/// Parses YAML or JSON text into documents. Every document is checked for shape; all shape
/// errors are returned together.
pub fn parse_bundle(text: &str) -> Result<Bundle, Violations> {
    let mut errors = Violations::default();
    let mut raw: Vec<Value> = Vec::new();
    let mut version = None;
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(Value::Object(mut m)) if i == 0 && m.contains_key("documents") && !m.contains_key("kind") => {
                match m.remove("version") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(v)) => version = Some(v),
                    Some(other) => {
                        errors.push(
                            "",
                            "version",
                            format!("expected a string, got {}", crate::types::describe_value(&other)),
                        );
                        return Err(errors);
                    }
                }
                if let Some(k) = m.keys().find(|k| *k != "documents") {
                    errors.push("", k.as_str(), "unknown field; a bundle envelope holds `version` and `documents`");
                    return Err(errors);
                }
                match m.remove("documents") {
                    Some(Value::Array(items)) => raw.extend(items),
                    other => {
                        errors.push(
                            "",
                            "documents",
                            format!(
                                "expected a list of documents, got {}",
                                crate::types::describe_value(&other.unwrap_or(Value::Null))
                            ),
                        );
                        return Err(errors);
                    }
                }
            }
            Ok(Value::Array(items)) => raw.extend(items),
            Ok(v) => raw.push(v),
            Err(e) => {
                errors.push(&format!("document[{i}]"), "", format!("not valid YAML or JSON: {}", yaml_message(&e)));
                return Err(errors);
            }
        }
        if raw.len() > MAX_DOCUMENTS {
            errors.push("", "", format!("a bundle holds at most {MAX_DOCUMENTS} documents"));
            return Err(errors);
        }
    }
    if raw.is_empty() {
        errors.push("", "", "the bundle holds no documents; expected at least one `kind: Task|Workflow|LaunchPlan`");
        return Err(errors);
    }
    let mut documents = Vec::with_capacity(raw.len());
    for (index, v) in raw.into_iter().enumerate() {
        match parse_document(v) {
            Ok(spec) => documents.push(Document { index, spec }),
            Err((label, field, message)) => {
                errors.push(&label.unwrap_or_else(|| format!("document[{index}]")), field, message)
            }
        }
    }
    errors.into_result(Bundle { documents, version })
}

type DocError = (Option<String>, String, String);

fn parse_document(v: Value) -> Result<Spec, DocError> {
    let Value::Object(map) = &v else {
        return Err((
            None,
            String::new(),
            format!("expected a mapping with `kind`, got {}", crate::types::describe_value(&v)),
        ));
    };
    let name = map.get("name").and_then(Value::as_str).map(str::to_string);
    let kind = match map.get("kind") {
        None => return Err((None, "kind".into(), "missing; expected Task, Workflow or LaunchPlan".into())),
        Some(Value::String(k)) => k.clone(),
        Some(other) => {
            return Err((
                None,
                "kind".into(),
                format!("expected a string, got {}", crate::types::describe_value(other)),
            ))
        }
    };
    let Some(kind) = EntityKind::from_kind(&kind) else {
        return Err((None, "kind".into(), format!("unknown kind `{kind}`; expected Task, Workflow or LaunchPlan")));
    };
    let label = name.map(|n| format!("{}/{}", kind.as_str(), n));
    let mut body = v;
    if let Value::Object(m) = &mut body {
        m.remove("kind");
    }
    let res = match kind {
        EntityKind::Task => typed::<TaskSpec>(body).map(Spec::Task),
        EntityKind::Workflow => typed::<WorkflowSpec>(body).map(Spec::Workflow),
        EntityKind::LaunchPlan => typed::<LaunchPlanSpec>(body).map(Spec::LaunchPlan),
    };
    res.map_err(|(field, msg)| (label.or_else(|| Some(format!("{}/?", kind.as_str()))), field, msg))
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

fn yaml_message(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    match e.location() {
        Some(loc) if !msg.contains("line") => format!("{msg} at line {} column {}", loc.line(), loc.column()),
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_stream_and_json() {
        let b = parse_bundle(
            "kind: Task\nname: a\ncontainer: {command: [run]}\n---\n---\nkind: Task\nname: b\ncontainer: {command: [x]}\n",
        )
        .unwrap();
        assert_eq!(b.documents.len(), 2);
        let j = parse_bundle(r#"[{"kind":"Task","name":"a","container":{"command":["x"]}}]"#).unwrap();
        assert_eq!(j.documents[0].label(), "Task/a");
    }

    #[test]
    fn errors_name_document_and_field() {
        let e = parse_bundle("kind: Task\nname: a\ncontainer: {command: x}\n").unwrap_err();
        assert_eq!(e.0[0].document, "Task/a");
        assert_eq!(e.0[0].field, "container.command");
        let e = parse_bundle("kind: Tsk\nname: a\n").unwrap_err();
        assert_eq!(e.0[0].field, "kind");
        let e = parse_bundle("kind: Task\nname: a\ncontainer: {command: [x]}\nretires: 2\n").unwrap_err();
        assert!(e.0[0].message.contains("unknown field `retires`"), "{e}");
        let e = parse_bundle("kind: [\n").unwrap_err();
        assert!(e.0[0].message.contains("not valid YAML"), "{e}");
    }
}
