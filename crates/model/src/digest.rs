//! Content digests: sha256 over canonical JSON (object keys sorted, no whitespace), so that
//! the same content always has the same digest whatever order or format it was written in.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `v` as canonical JSON.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `sha256:<hex>` of the canonical JSON of `v`.
pub fn digest(v: &Value) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(canonical_json(v).as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_independent() {
        assert_eq!(
            digest(&json!({"a": 1, "b": [1, {"y": 2, "x": 1}]})),
            digest(&json!({"b": [1, {"x": 1, "y": 2}], "a": 1}))
        );
        assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": 2})));
        assert_eq!(canonical_json(&json!({"b": 1, "a": "x"})), r#"{"a":"x","b":1}"#);
    }
}
