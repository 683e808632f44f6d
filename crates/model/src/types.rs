//! The type system of task and workflow interfaces, and checking literal values against it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A value type in an interface.
/// Serialised as its name (`integer`, `list<file>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Boolean,
    Integer,
    Float,
    String,
    Datetime,
    Duration,
    File,
    Directory,
    Json,
    List(Box<Type>),
}

pub const SCALAR_NAMES: &[&str] =
    &["boolean", "integer", "float", "string", "datetime", "duration", "file", "directory", "json"];

impl Type {
    /// Parses a type name: a scalar name, `list` with an item type given separately, or the
    /// shorthand `list<T>`.
    pub fn parse(name: &str, items: Option<Type>) -> Result<Type, String> {
        let name = name.trim();
        if let Some(inner) = name.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
            if items.is_some() {
                return Err("give the item type either as `list<T>` or in `items`, not both".into());
            }
            return Ok(Type::List(Box::new(Type::parse(inner, None)?)));
        }
        Ok(match name {
            "boolean" => Type::Boolean,
            "integer" => Type::Integer,
            "float" => Type::Float,
            "string" => Type::String,
            "datetime" => Type::Datetime,
            "duration" => Type::Duration,
            "file" => Type::File,
            "directory" => Type::Directory,
            "json" => Type::Json,
            "list" => match items {
                Some(t) => Type::List(Box::new(t)),
                None => return Err("a `list` needs an item type: `items: {type: T}` or `list<T>`".into()),
            },
            other => {
                return Err(format!("unknown type `{other}`; expected one of {}, or list<T>", SCALAR_NAMES.join(", ")))
            }
        })
    }

    /// Whether a value of type `from` may be bound to a parameter of type `self`.
    /// Exact match, integer widening to float, anything into json, and lists element-wise.
    pub fn accepts(&self, from: &Type) -> bool {
        match (self, from) {
            (a, b) if a == b => true,
            (Type::Float, Type::Integer) => true,
            (Type::Json, _) => true,
            (Type::List(a), Type::List(b)) => a.accepts(b),
            _ => false,
        }
    }

    /// Types that can be interpolated into a string template.
    pub fn is_scalar(&self) -> bool {
        !matches!(self, Type::List(_) | Type::Json)
    }

    /// Checks a literal value; the error says what was expected and what was found.
    pub fn check_value(&self, v: &Value) -> Result<(), String> {
        let ok = match self {
            Type::Boolean => v.is_boolean(),
            Type::Integer => v.is_i64() || v.is_u64(),
            Type::Float => v.is_number(),
            Type::String | Type::File | Type::Directory => v.is_string(),
            Type::Json => true,
            Type::Datetime => match v.as_str() {
                Some(s) => {
                    return humantime::parse_rfc3339_weak(s)
                        .map(|_| ())
                        .map_err(|_| format!("expected an RFC 3339 datetime, got `{s}`"))
                }
                None => false,
            },
            Type::Duration => match v.as_str() {
                Some(s) => {
                    return humantime::parse_duration(s)
                        .map(|_| ())
                        .map_err(|_| format!("expected a duration such as `90s` or `10m`, got `{s}`"))
                }
                None => false,
            },
            Type::List(item) => match v.as_array() {
                Some(arr) => {
                    for (i, el) in arr.iter().enumerate() {
                        item.check_value(el).map_err(|e| format!("[{i}]: {e}"))?;
                    }
                    true
                }
                None => false,
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}, got {}", self.describe(), describe_value(v)))
        }
    }

    fn describe(&self) -> String {
        match self {
            Type::Integer => "an integer".into(),
            Type::Float => "a number".into(),
            Type::Boolean => "a boolean".into(),
            Type::File => "a file path (string)".into(),
            Type::Directory => "a directory path (string)".into(),
            Type::List(t) => format!("a list of {t}"),
            t => format!("a {t}"),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Boolean => f.write_str("boolean"),
            Type::Integer => f.write_str("integer"),
            Type::Float => f.write_str("float"),
            Type::String => f.write_str("string"),
            Type::Datetime => f.write_str("datetime"),
            Type::Duration => f.write_str("duration"),
            Type::File => f.write_str("file"),
            Type::Directory => f.write_str("directory"),
            Type::Json => f.write_str("json"),
            Type::List(t) => write!(f, "list<{t}>"),
        }
    }
}

impl Serialize for Type {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Type::parse(&s, None).map_err(serde::de::Error::custom)
    }
}

/// A short description of a JSON value for error messages.
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() > 40 => format!("string \"{}…\"", &s[..s.floor_char_boundary_compat(40)]),
        Value::String(s) => format!("string \"{s}\""),
        Value::Array(a) => format!("a list of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}
impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_and_accept() {
        assert_eq!(Type::parse("list<integer>", None).unwrap(), Type::List(Box::new(Type::Integer)));
        assert_eq!(Type::parse("list", Some(Type::File)).unwrap(), Type::List(Box::new(Type::File)));
        assert!(Type::parse("list", None).is_err());
        assert!(Type::parse("strin", None).unwrap_err().contains("unknown type `strin`"));
        assert!(Type::Float.accepts(&Type::Integer));
        assert!(!Type::Integer.accepts(&Type::Float));
        assert!(!Type::File.accepts(&Type::String));
        assert!(Type::Json.accepts(&Type::List(Box::new(Type::File))));
    }

    #[test]
    fn values() {
        assert!(Type::Integer.check_value(&json!(3)).is_ok());
        assert!(Type::Integer.check_value(&json!(3.5)).unwrap_err().contains("expected an integer"));
        assert!(Type::Datetime.check_value(&json!("2024-01-01T00:00:00Z")).is_ok());
        assert!(Type::Datetime.check_value(&json!("yesterday")).is_err());
        assert!(Type::Duration.check_value(&json!("10m")).is_ok());
        let l = Type::List(Box::new(Type::Integer));
        assert!(l.check_value(&json!([1, 2])).is_ok());
        assert!(l.check_value(&json!([1, "x"])).unwrap_err().starts_with("[1]"));
    }
}
