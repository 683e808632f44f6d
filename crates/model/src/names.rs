//! Identifier rules shared by tenants, projects, domains, entity names, versions and node ids.

/// Longest identifier accepted anywhere.
pub const MAX_ID_LEN: usize = 63;

/// A DNS-label-like identifier: lowercase letters, digits, `-` and `_`, starting with a letter
/// or digit. Used for tenants, projects, domains, entity names and node ids.
pub fn check_id(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_ID_LEN {
        return Err(format!("must be at most {MAX_ID_LEN} characters (got {})", s.len()));
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!("`{s}` must start with a lowercase letter or digit"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')) {
        return Err(format!("`{s}` contains `{c}`; expected lowercase letters, digits, `-` or `_`"));
    }
    Ok(())
}

/// Versions are freer than ids (`v1.2.0`, `2024-01-01`, a git sha) but still path-safe.
pub fn check_version(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 128 {
        return Err(format!("must be at most 128 characters (got {})", s.len()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))) {
        return Err(format!("`{s}` contains `{c}`; expected letters, digits, `-`, `_`, `.` or `+`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("ml-alpha").is_ok());
        assert!(check_id("ws_ml_prod_001").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("Alpha").is_err());
        assert!(check_id("-x").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id(&"a".repeat(64)).is_err());
        assert!(check_version("v1.2.0+build").is_ok());
        assert!(check_version("v1/2").is_err());
    }
}
