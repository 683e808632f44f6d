//! Permissions: `resource:action`, with `*` for every resource or action, held as a bitset.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! names {
    ($t:ident { $($v:ident = $s:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $t { $($v),* }
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),*];
            pub fn as_str(self) -> &'static str { match self { $($t::$v => $s),* } }
            pub fn parse(s: &str) -> Option<$t> { match s { $($s => Some($t::$v),)* _ => None } }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

names!(Resource {
    Workflows = "workflows",
    Tasks = "tasks",
    Launchplans = "launchplans",
    Executions = "executions",
    Projects = "projects",
    Attributes = "attributes",
    Data = "data",
    Audit = "audit",
    Roles = "roles",
    Tenants = "tenants",
    Workspaces = "workspaces",
});

names!(Action {
    Create = "create",
    Read = "read",
    Update = "update",
    Delete = "delete",
    Execute = "execute",
    Terminate = "terminate",
    Write = "write",
});

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(pub Resource, pub Action);

impl Permission {
    fn bit(self) -> u128 {
        1u128 << (self.0 as usize * Action::ALL.len() + self.1 as usize)
    }

    pub fn all() -> impl Iterator<Item = Permission> {
        Resource::ALL.iter().flat_map(|r| Action::ALL.iter().map(move |a| Permission(*r, *a)))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The workspace guide's vocabulary: executing a workflow is launching an execution of it, so
/// a role granting `workflows:execute` grants `executions:execute`.
const IMPLIED: [(Permission, Permission); 1] =
    [(Permission(Resource::Workflows, Action::Execute), Permission(Resource::Executions, Action::Execute))];

/// A set of permissions; `parse` accepts `resource:action`, `resource:*`, `*:action`, `*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermSet(u128);

impl PermSet {
    pub const EMPTY: PermSet = PermSet(0);

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    pub fn is_subset(self, other: PermSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: PermSet) -> PermSet {
        PermSet(self.0 | other.0)
    }

    pub fn minus(self, other: PermSet) -> PermSet {
        PermSet(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::all().filter(move |p| self.contains(*p))
    }

    /// Parses one permission pattern into the set it stands for.
    pub fn parse_one(s: &str) -> Result<PermSet, String> {
        let s = s.trim();
        let (r, a) = match s {
            "*" => ("*", "*"),
            _ => s.split_once(':').ok_or_else(|| format!("`{s}` is not `resource:action`"))?,
        };
        let resources: Vec<Resource> = if r == "*" {
            Resource::ALL.to_vec()
        } else {
            vec![Resource::parse(r).ok_or_else(|| {
                format!(
                    "unknown resource `{r}` in `{s}`; expected one of {}",
                    Resource::ALL.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?]
        };
        let actions: Vec<Action> = if a == "*" {
            Action::ALL.to_vec()
        } else {
            vec![Action::parse(a).ok_or_else(|| {
                format!(
                    "unknown action `{a}` in `{s}`; expected one of {}",
                    Action::ALL.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?]
        };
        let mut set = PermSet::EMPTY;
        for r in &resources {
            for a in &actions {
                set.insert(Permission(*r, *a));
            }
        }
        for (given, implied) in IMPLIED {
            if set.contains(given) {
                set.insert(implied);
            }
        }
        Ok(set)
    }

    /// Parses a list; errors name the index.
    pub fn parse_all<S: AsRef<str>>(items: &[S]) -> Result<PermSet, (usize, String)> {
        let mut set = PermSet::EMPTY;
        for (i, s) in items.iter().enumerate() {
            set = set.union(PermSet::parse_one(s.as_ref()).map_err(|e| (i, e))?);
        }
        Ok(set)
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|p| p.to_string()).collect()
    }
}

impl Permission {
    pub fn parse(s: &str) -> Result<Permission, String> {
        let (r, a) = s.split_once(':').ok_or_else(|| format!("`{s}` is not `resource:action`"))?;
        let r = Resource::parse(r).ok_or_else(|| format!("unknown resource `{r}`"))?;
        let a = Action::parse(a).ok_or_else(|| format!("unknown action `{a}`"))?;
        Ok(Permission(r, a))
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Permission::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let s = PermSet::parse_all(&["workflows:create", "executions:*"]).unwrap();
        assert!(s.contains(Permission(Resource::Workflows, Action::Create)));
        assert!(s.contains(Permission(Resource::Executions, Action::Terminate)));
        assert!(!s.contains(Permission(Resource::Workflows, Action::Read)));
        assert_eq!(PermSet::parse_one("*").unwrap().iter().count(), Resource::ALL.len() * Action::ALL.len());
        assert!(PermSet::parse_all(&["workflows:create", "flows:read"])
            .unwrap_err()
            .1
            .contains("unknown resource `flows`"));
        assert!(PermSet::parse_one("workflows").is_err());
        assert!(Resource::ALL.len() * Action::ALL.len() <= 128);
        let run = PermSet::parse_one("workflows:execute").unwrap();
        assert!(run.contains(Permission(Resource::Executions, Action::Execute)), "the guide's run permission");
    }
}
