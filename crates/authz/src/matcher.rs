//! Which projects or domains a role covers: names, `*`, or globs such as `ml-*`.

use std::collections::HashSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    any: bool,
    exact: HashSet<String>,
    globs: Vec<String>,
}

impl Matcher {
    pub fn any() -> Matcher {
        Matcher { any: true, ..Default::default() }
    }

    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Matcher {
        let mut m = Matcher::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p == "*" {
                m.any = true;
            } else if p.contains('*') {
                m.globs.push(p.to_string());
            } else {
                m.exact.insert(p.to_string());
            }
        }
        m
    }

    pub fn matches(&self, name: &str) -> bool {
        self.any || self.exact.contains(name) || self.globs.iter().any(|g| glob(g, name))
    }

    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether every name this matcher covers is covered by `other` too.
    pub fn within(&self, other: &Matcher) -> bool {
        if other.any {
            return true;
        }
        if self.any {
            return false;
        }
        self.exact.iter().all(|n| other.matches(n)) && self.globs.iter().all(|g| other.globs.contains(g))
    }

    /// The exact names, if the matcher is only names (no `*`, no globs).
    pub fn exact_names(&self) -> Option<&HashSet<String>> {
        (!self.any && self.globs.is_empty()).then_some(&self.exact)
    }

    pub fn patterns(&self) -> Vec<String> {
        let mut v: Vec<String> = self.exact.iter().cloned().collect();
        v.sort();
        v.extend(self.globs.iter().cloned());
        if self.any {
            v.insert(0, "*".into());
        }
        v
    }
}

/// `*` matches any run of characters; nothing else is special.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_containment() {
        let m = Matcher::new(&["ml-*", "data-beta"]);
        assert!(m.matches("ml-alpha") && m.matches("data-beta") && !m.matches("web-alpha"));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxc") && glob("*", "") && !glob("ab*ba", "aba"));
        assert!(Matcher::new(&["ml-alpha"]).within(&m));
        assert!(!Matcher::new(&["web-alpha"]).within(&m));
        assert!(!Matcher::any().within(&m));
        assert!(m.within(&Matcher::any()));
    }
}
