//! Kubernetes-style resource quantities: cpu in cores or millicores, memory in bytes with
//! binary (`Mi`, `Gi`) or decimal (`M`, `G`) suffixes.

use serde_json::Value;

/// Parses a cpu quantity (`"200m"`, `"1"`, `0.5`, `2`) into millicores.
pub fn parse_cpu(v: &Value) -> Result<u64, String> {
    let s = quantity_text(v)?;
    let (num, scale) = match s.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (s.as_str(), 1000.0),
    };
    let x: f64 = num.parse().map_err(|_| format!("expected a cpu quantity such as `500m` or `2`, got `{s}`"))?;
    let milli = x * scale;
    if !milli.is_finite() || !(0.0..=1e9).contains(&milli) {
        return Err(format!("cpu quantity `{s}` is out of range"));
    }
    if milli.fract() != 0.0 {
        return Err(format!("cpu quantity `{s}` is finer than 1m"));
    }
    Ok(milli as u64)
}

/// Parses a memory quantity (`"500Mi"`, `"1Gi"`, `"2G"`, `1048576`) into bytes.
pub fn parse_memory(v: &Value) -> Result<u64, String> {
    let s = quantity_text(v)?;
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, mult) =
        UNITS.iter().find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m))).unwrap_or((s.as_str(), 1.0));
    let x: f64 = num.parse().map_err(|_| format!("expected a memory quantity such as `512Mi` or `2Gi`, got `{s}`"))?;
    let bytes = x * mult;
    if !bytes.is_finite() || !(0.0..=1e15).contains(&bytes) {
        return Err(format!("memory quantity `{s}` is out of range"));
    }
    Ok(bytes.round() as u64)
}

fn quantity_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected a quantity (string or number), got {}", crate::types::describe_value(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu(&json!("200m")).unwrap(), 200);
        assert_eq!(parse_cpu(&json!("1")).unwrap(), 1000);
        assert_eq!(parse_cpu(&json!(0.5)).unwrap(), 500);
        assert!(parse_cpu(&json!("fast")).is_err());
        assert!(parse_cpu(&json!("-1")).is_err());
        assert_eq!(parse_memory(&json!("500Mi")).unwrap(), 500 * 1048576);
        assert_eq!(parse_memory(&json!("1Gi")).unwrap(), 1073741824);
        assert_eq!(parse_memory(&json!("2G")).unwrap(), 2_000_000_000);
        assert!(parse_memory(&json!("lots")).is_err());
    }
}
