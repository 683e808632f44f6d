//! The policy index: roles, bindings and the project → tenant map, shaped so a decision is a
//! few hash lookups. Mutations are incremental, so a policy with 100,000 bindings changes in
//! microseconds rather than being rebuilt.

use crate::matcher::Matcher;
use crate::permission::{PermSet, Permission};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Group => "group",
            SubjectKind::ServiceAccount => "service_account",
        }
    }
    pub fn parse(s: &str) -> Option<SubjectKind> {
        [SubjectKind::User, SubjectKind::Group, SubjectKind::ServiceAccount].into_iter().find(|k| k.as_str() == s)
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Who a binding is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Subject {
    pub kind: SubjectKind,
    pub name: String,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

/// A role: permissions granted on projects × domains. A tenant's role covers only that
/// tenant's projects; a platform role (`tenant: None`) covers projects of any tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    pub tenant: Option<String>,
    pub name: String,
    pub permissions: PermSet,
    pub projects: Matcher,
    pub domains: Matcher,
}

/// The caller as authorisation sees it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub service_account: Option<String>,
    pub platform_admin: bool,
}

/// The role and binding that allowed something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub role: String,
    pub role_tenant: Option<String>,
    /// `None` for the platform administrator, who needs no binding.
    pub binding: Option<Subject>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Grant),
    /// The caller may see the target but not do this: 403.
    Deny,
    /// The caller may not see the target at all: 404.
    Hide,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Why a decision came out as it did, role by role.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `allowed`, `denied` or `hidden`.
    pub decision: &'static str,
    pub grant: Option<Grant>,
    /// Every role the caller holds through some binding, and whether it applied.
    pub considered: Vec<Considered>,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Considered {
    pub role: String,
    pub role_tenant: Option<String>,
    pub binding: Subject,
    pub applies: bool,
    pub reason: String,
}

type RoleId = u32;

#[derive(Debug, Default)]
pub struct Policy {
    roles: Vec<Option<RoleDef>>,
    free: Vec<RoleId>,
    role_ids: HashMap<(String, String), RoleId>,
    /// Per subject kind: subject name → roles bound.
    bindings: [HashMap<String, Vec<RoleId>>; 3],
    binding_count: usize,
    project_tenant: HashMap<String, String>,
    tenant_projects: HashMap<String, BTreeSet<String>>,
}

const PLATFORM: &str = "";

fn role_key(tenant: Option<&str>, name: &str) -> (String, String) {
    (tenant.unwrap_or(PLATFORM).to_string(), name.to_string())
}

impl Policy {
    pub fn new() -> Policy {
        Policy::default()
    }

    pub fn binding_count(&self) -> usize {
        self.binding_count
    }

    pub fn project_count(&self) -> usize {
        self.project_tenant.len()
    }

    pub fn set_project(&mut self, project: &str, tenant: &str) {
        if let Some(old) = self.project_tenant.insert(project.to_string(), tenant.to_string()) {
            if let Some(s) = self.tenant_projects.get_mut(&old) {
                s.remove(project);
            }
        }
        self.tenant_projects.entry(tenant.to_string()).or_default().insert(project.to_string());
    }

    pub fn remove_project(&mut self, project: &str) {
        if let Some(t) = self.project_tenant.remove(project) {
            if let Some(s) = self.tenant_projects.get_mut(&t) {
                s.remove(project);
            }
        }
    }

    pub fn project_tenant(&self, project: &str) -> Option<&str> {
        self.project_tenant.get(project).map(String::as_str)
    }

    /// Adds or replaces a role; bindings to it stay.
    pub fn upsert_role(&mut self, def: RoleDef) {
        let key = role_key(def.tenant.as_deref(), &def.name);
        match self.role_ids.get(&key) {
            Some(&id) => self.roles[id as usize] = Some(def),
            None => {
                let id = match self.free.pop() {
                    Some(id) => {
                        self.roles[id as usize] = Some(def);
                        id
                    }
                    None => {
                        self.roles.push(Some(def));
                        (self.roles.len() - 1) as RoleId
                    }
                };
                self.role_ids.insert(key, id);
            }
        }
    }

    pub fn role(&self, tenant: Option<&str>, name: &str) -> Option<&RoleDef> {
        let id = *self.role_ids.get(&role_key(tenant, name))?;
        self.roles[id as usize].as_ref()
    }

    /// Removes a role and every binding to it.
    pub fn remove_role(&mut self, tenant: Option<&str>, name: &str) {
        let Some(id) = self.role_ids.remove(&role_key(tenant, name)) else { return };
        self.roles[id as usize] = None;
        self.free.push(id);
        for map in &mut self.bindings {
            map.retain(|_, ids| {
                let before = ids.len();
                ids.retain(|r| *r != id);
                self.binding_count -= before - ids.len();
                !ids.is_empty()
            });
        }
    }

    /// Binds `subject` to a role; returns false when the role does not exist.
    pub fn bind(&mut self, subject: &Subject, tenant: Option<&str>, role: &str) -> bool {
        let Some(&id) = self.role_ids.get(&role_key(tenant, role)) else { return false };
        let ids = self.bindings[subject.kind.index()].entry(subject.name.clone()).or_default();
        if !ids.contains(&id) {
            ids.push(id);
            self.binding_count += 1;
        }
        true
    }

    pub fn unbind(&mut self, subject: &Subject, tenant: Option<&str>, role: &str) {
        let Some(&id) = self.role_ids.get(&role_key(tenant, role)) else { return };
        let map = &mut self.bindings[subject.kind.index()];
        if let Some(ids) = map.get_mut(&subject.name) {
            let before = ids.len();
            ids.retain(|r| *r != id);
            self.binding_count -= before - ids.len();
            if ids.is_empty() {
                map.remove(&subject.name);
            }
        }
    }

    /// Every (binding subject, role) the caller holds.
    fn caller_roles<'a>(&'a self, c: &'a Caller) -> impl Iterator<Item = (SubjectKind, &'a str, &'a RoleDef)> + 'a {
        let user = c.user.iter().map(|u| (SubjectKind::User, u.as_str()));
        let groups = c.groups.iter().map(|g| (SubjectKind::Group, g.as_str()));
        let sa = c.service_account.iter().map(|s| (SubjectKind::ServiceAccount, s.as_str()));
        user.chain(groups).chain(sa).flat_map(move |(kind, name)| {
            self.bindings[kind.index()]
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(move |id| self.roles[*id as usize].as_ref().map(|r| (kind, name, r)))
        })
    }

    fn covers(role: &RoleDef, project: &str, tenant: &str) -> bool {
        role.tenant.as_deref().is_none_or(|t| t == tenant) && role.projects.matches(project)
    }

    fn grant(kind: SubjectKind, name: &str, role: &RoleDef) -> Grant {
        Grant {
            role: role.name.clone(),
            role_tenant: role.tenant.clone(),
            binding: Some(Subject { kind, name: name.to_string() }),
        }
    }

    fn admin_grant() -> Grant {
        Grant { role: "platform-admin".into(), role_tenant: None, binding: None }
    }

    /// May `caller` do `perm` on `project` (in `domain`, for domain-scoped operations)?
    pub fn decide(&self, caller: &Caller, perm: Permission, project: &str, domain: Option<&str>) -> Decision {
        if caller.platform_admin {
            return Decision::Allow(Self::admin_grant());
        }
        let Some(tenant) = self.project_tenant.get(project) else { return Decision::Hide };
        let mut visible = false;
        for (kind, name, role) in self.caller_roles(caller) {
            if !Self::covers(role, project, tenant) {
                continue;
            }
            visible = true;
            if role.permissions.contains(perm) && domain.is_none_or(|d| role.domains.matches(d)) {
                return Decision::Allow(Self::grant(kind, name, role));
            }
        }
        if visible {
            Decision::Deny
        } else {
            Decision::Hide
        }
    }

    /// Whether the caller may see `project` at all (holds any role covering it).
    pub fn can_see(&self, caller: &Caller, project: &str) -> bool {
        if caller.platform_admin {
            return self.project_tenant.contains_key(project);
        }
        let Some(tenant) = self.project_tenant.get(project) else { return false };
        self.caller_roles(caller).any(|(_, _, r)| Self::covers(r, project, tenant))
    }

    /// May `caller` do `perm` on the tenant itself (roles, bindings, credentials)? Needs a
    /// role of that tenant (or a platform role) granting `perm` on all its projects.
    pub fn decide_tenant(&self, caller: &Caller, perm: Permission, tenant: &str) -> Decision {
        if caller.platform_admin {
            return Decision::Allow(Self::admin_grant());
        }
        let mut visible = false;
        for (kind, name, role) in self.caller_roles(caller) {
            let own = role.tenant.as_deref() == Some(tenant);
            let platform_wide = role.tenant.is_none() && role.projects.is_any();
            if !(own || platform_wide) {
                continue;
            }
            visible = true;
            if role.permissions.contains(perm) && role.projects.is_any() && role.domains.is_any() {
                return Decision::Allow(Self::grant(kind, name, role));
            }
        }
        if visible {
            Decision::Deny
        } else {
            Decision::Hide
        }
    }

    /// The tenants in which the caller holds any role.
    pub fn tenants_of(&self, caller: &Caller) -> BTreeSet<String> {
        self.caller_roles(caller).filter_map(|(_, _, r)| r.tenant.clone()).collect()
    }

    /// Projects the caller may see, sorted. Cost grows with what is visible, not with the
    /// number of tenants (except for platform-wide glob roles, which scan the directory).
    pub fn visible_projects(&self, caller: &Caller) -> Vec<String> {
        if caller.platform_admin {
            let mut all: Vec<String> = self.project_tenant.keys().cloned().collect();
            all.sort();
            return all;
        }
        let mut out = BTreeSet::new();
        for (_, _, role) in self.caller_roles(caller) {
            match (&role.tenant, role.projects.exact_names()) {
                (_, Some(names)) => out.extend(
                    names
                        .iter()
                        .filter(|p| {
                            self.project_tenant
                                .get(p.as_str())
                                .is_some_and(|t| role.tenant.as_deref().is_none_or(|rt| rt == t))
                        })
                        .cloned(),
                ),
                (Some(t), None) => {
                    if let Some(ps) = self.tenant_projects.get(t) {
                        out.extend(ps.iter().filter(|p| role.projects.matches(p)).cloned());
                    }
                }
                (None, None) => out.extend(self.project_tenant.keys().filter(|p| role.projects.matches(p)).cloned()),
            }
        }
        out.into_iter().collect()
    }

    /// Union of what the caller may do on `project` in `domain`.
    pub fn effective(&self, caller: &Caller, project: &str, domain: &str) -> PermSet {
        if caller.platform_admin {
            return PermSet::parse_one("*").expect("valid");
        }
        let Some(tenant) = self.project_tenant.get(project) else { return PermSet::EMPTY };
        self.caller_roles(caller)
            .filter(|(_, _, r)| Self::covers(r, project, tenant) && r.domains.matches(domain))
            .fold(PermSet::EMPTY, |acc, (_, _, r)| acc.union(r.permissions))
    }

    /// The roles the caller holds, with the binding through which it holds each.
    pub fn roles_of<'a>(&'a self, caller: &'a Caller) -> Vec<(Subject, &'a RoleDef)> {
        self.caller_roles(caller).map(|(kind, name, r)| (Subject { kind, name: name.to_string() }, r)).collect()
    }

    /// Why `decide` answers as it does, naming every role considered.
    pub fn explain(&self, caller: &Caller, perm: Permission, project: &str, domain: Option<&str>) -> Explanation {
        let decision = self.decide(caller, perm, project, domain);
        let tenant = self.project_tenant.get(project);
        let mut considered = Vec::new();
        for (kind, name, role) in self.caller_roles(caller) {
            // Every way of not covering the project reads the same, so an explanation never
            // tells whether a project the caller cannot see exists.
            let covers = tenant.is_some_and(|t| Self::covers(role, project, t));
            let reason = if !covers {
                format!("the role does not cover project `{project}`")
            } else if !role.permissions.contains(perm) {
                format!("the role does not grant `{perm}`")
            } else if domain.is_some_and(|d| !role.domains.matches(d)) {
                format!("domain `{}` is not in the role's domains {:?}", domain.unwrap_or(""), role.domains.patterns())
            } else {
                format!("grants `{perm}` here")
            };
            let applies = matches!(&decision, Decision::Allow(g) if g.role == role.name && g.role_tenant == role.tenant && g.binding.as_ref().is_some_and(|b| b.kind == kind && b.name == name));
            considered.push(Considered {
                role: role.name.clone(),
                role_tenant: role.tenant.clone(),
                binding: Subject { kind, name: name.to_string() },
                applies,
                reason,
            });
        }
        let where_ = match domain {
            Some(d) => format!("{project}/{d}"),
            None => project.to_string(),
        };
        let (word, grant, summary) = match decision {
            Decision::Allow(g) => {
                let s = match &g.binding {
                    Some(b) => format!("allowed: role `{}` bound to {b} grants `{perm}` on {where_}", g.role),
                    None => "allowed: platform administrator".to_string(),
                };
                ("allowed", Some(g), s)
            }
            Decision::Deny => ("denied", None, format!("denied: no role of the caller grants `{perm}` on {where_}")),
            Decision::Hide => ("hidden", None, format!("hidden: no role of the caller covers project `{project}`")),
        };
        Explanation { decision: word, grant, considered, summary }
    }

    /// Checks that `caller` holds everything `role` would grant (no escalation): every
    /// permission on at least the same projects and domains, in the same tenant.
    pub fn holds(&self, caller: &Caller, role: &RoleDef) -> Result<(), String> {
        if caller.platform_admin {
            return Ok(());
        }
        if role.tenant.is_none() {
            return Err("only platform administrators manage platform roles".into());
        }
        let mine: Vec<&RoleDef> = self
            .caller_roles(caller)
            .map(|(_, _, r)| r)
            .filter(|r| r.tenant == role.tenant || (r.tenant.is_none() && r.projects.is_any()))
            .collect();
        for p in role.permissions.iter() {
            let held = mine.iter().any(|r| {
                r.permissions.contains(p) && role.projects.within(&r.projects) && role.domains.within(&r.domains)
            });
            if !held {
                return Err(format!(
                    "cannot grant `{p}` on projects {:?} × domains {:?}: the caller does not hold it there",
                    role.projects.patterns(),
                    role.domains.patterns()
                ));
            }
        }
        Ok(())
    }

    /// Removes every role of `tenant` and every binding to them (one pass over the bindings);
    /// returns how many roles were removed.
    pub fn remove_tenant_roles(&mut self, tenant: &str) -> usize {
        let keys: Vec<(String, String)> = self.role_ids.keys().filter(|(t, _)| t == tenant).cloned().collect();
        let ids: HashSet<RoleId> = keys.iter().filter_map(|k| self.role_ids.remove(k)).collect();
        for id in &ids {
            self.roles[*id as usize] = None;
            self.free.push(*id);
        }
        for map in &mut self.bindings {
            map.retain(|_, bound| {
                let before = bound.len();
                bound.retain(|r| !ids.contains(r));
                self.binding_count -= before - bound.len();
                !bound.is_empty()
            });
        }
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permission::{Action, Resource};

    fn role(tenant: &str, name: &str, perms: &[&str], projects: &[&str], domains: &[&str]) -> RoleDef {
        RoleDef {
            tenant: Some(tenant.into()),
            name: name.into(),
            permissions: PermSet::parse_all(perms).unwrap(),
            projects: Matcher::new(projects),
            domains: Matcher::new(domains),
        }
    }

    fn user(u: &str, groups: &[&str]) -> Caller {
        Caller { user: Some(u.into()), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }
    }

    fn seed() -> Policy {
        let mut p = Policy::new();
        for (proj, t) in [
            ("ml-alpha", "team-alpha"),
            ("web-alpha", "team-alpha"),
            ("data-beta", "team-beta"),
            ("api-beta", "team-beta"),
        ] {
            p.set_project(proj, t);
        }
        p.upsert_role(role(
            "team-alpha",
            "alpha-developer",
            &["workflows:create", "workflows:read", "executions:create"],
            &["ml-alpha", "web-alpha"],
            &["development", "staging"],
        ));
        p.upsert_role(role(
            "team-alpha",
            "alpha-senior",
            &["workflows:*", "executions:*"],
            &["ml-alpha", "web-alpha"],
            &["development", "staging", "production"],
        ));
        p.upsert_role(role(
            "team-beta",
            "beta-lead",
            &["workflows:*", "executions:*"],
            &["data-beta", "api-beta"],
            &["development", "production"],
        ));
        // A tenant's role naming another tenant's project covers nothing there.
        p.upsert_role(role("team-beta", "sneaky", &["*"], &["ml-alpha"], &["*"]));
        p.bind(
            &Subject { kind: SubjectKind::User, name: "alice@company.com".into() },
            Some("team-alpha"),
            "alpha-developer",
        );
        p.bind(
            &Subject { kind: SubjectKind::User, name: "bob@company.com".into() },
            Some("team-alpha"),
            "alpha-senior",
        );
        p.bind(&Subject { kind: SubjectKind::Group, name: "team-beta-leads".into() }, Some("team-beta"), "beta-lead");
        p.bind(&Subject { kind: SubjectKind::User, name: "mallory".into() }, Some("team-beta"), "sneaky");
        p
    }

    const CREATE_WF: Permission = Permission(Resource::Workflows, Action::Create);
    const TERMINATE: Permission = Permission(Resource::Executions, Action::Terminate);

    #[test]
    fn seed_rules() {
        let p = seed();
        let alice = user("alice@company.com", &[]);
        assert!(p.decide(&alice, CREATE_WF, "ml-alpha", Some("development")).is_allowed());
        assert_eq!(p.decide(&alice, CREATE_WF, "ml-alpha", Some("production")), Decision::Deny);
        assert_eq!(p.decide(&alice, CREATE_WF, "data-beta", Some("development")), Decision::Hide);
        assert_eq!(p.decide(&alice, CREATE_WF, "no-such", Some("development")), Decision::Hide);
        let bob = user("bob@company.com", &[]);
        assert!(p.decide(&bob, TERMINATE, "ml-alpha", Some("production")).is_allowed());
        let lead = user("nobody@company.com", &["team-beta-leads"]);
        let d = p.decide(&lead, TERMINATE, "data-beta", Some("production"));
        assert!(
            matches!(&d, Decision::Allow(g) if g.role == "beta-lead" && g.binding.as_ref().unwrap().kind == SubjectKind::Group)
        );
        assert_eq!(p.visible_projects(&alice), ["ml-alpha", "web-alpha"]);
        assert_eq!(p.visible_projects(&lead), ["api-beta", "data-beta"]);
        let mallory = user("mallory", &[]);
        assert_eq!(p.decide(&mallory, CREATE_WF, "ml-alpha", Some("development")), Decision::Hide);
        assert!(p.visible_projects(&mallory).is_empty());
    }

    #[test]
    fn explain_names_role_and_binding() {
        let p = seed();
        let alice = user("alice@company.com", &[]);
        let e = p.explain(&alice, CREATE_WF, "ml-alpha", Some("production"));
        assert_eq!(e.decision, "denied");
        assert!(e.considered[0].reason.contains("domain `production`"), "{e:?}");
        let e = p.explain(&alice, CREATE_WF, "ml-alpha", Some("development"));
        assert!(e.summary.contains("alpha-developer") && e.summary.contains("alice@company.com"), "{}", e.summary);
        assert!(e.considered[0].applies);
    }

    #[test]
    fn no_escalation() {
        let mut p = seed();
        p.upsert_role(role("team-alpha", "alpha-admin", &["roles:*", "workflows:*"], &["*"], &["*"]));
        p.bind(&Subject { kind: SubjectKind::User, name: "ada".into() }, Some("team-alpha"), "alpha-admin");
        let ada = user("ada", &[]);
        assert!(p.holds(&ada, &role("team-alpha", "x", &["workflows:read"], &["ml-alpha"], &["development"])).is_ok());
        assert!(p
            .holds(&ada, &role("team-alpha", "x", &["executions:terminate"], &["ml-alpha"], &["development"]))
            .is_err());
        assert!(p.holds(&ada, &role("team-beta", "x", &["workflows:read"], &["data-beta"], &["development"])).is_err());
        assert!(p.decide_tenant(&ada, Permission(Resource::Roles, Action::Create), "team-alpha").is_allowed());
        assert_eq!(p.decide_tenant(&ada, Permission(Resource::Roles, Action::Create), "team-beta"), Decision::Hide);
        let alice = user("alice@company.com", &[]);
        assert_eq!(p.decide_tenant(&alice, Permission(Resource::Roles, Action::Create), "team-alpha"), Decision::Deny);
    }

    #[test]
    fn removal_is_immediate() {
        let mut p = seed();
        let alice = user("alice@company.com", &[]);
        let s = Subject { kind: SubjectKind::User, name: "alice@company.com".into() };
        p.unbind(&s, Some("team-alpha"), "alpha-developer");
        assert_eq!(p.decide(&alice, CREATE_WF, "ml-alpha", Some("development")), Decision::Hide);
        let bob = user("bob@company.com", &[]);
        p.remove_role(Some("team-alpha"), "alpha-senior");
        assert_eq!(p.decide(&bob, TERMINATE, "ml-alpha", Some("production")), Decision::Hide);
        assert_eq!(p.binding_count(), 2);
    }

    #[test]
    fn removing_a_tenants_roles_leaves_other_tenants_alone() {
        let mut p = seed();
        let before = p.binding_count();
        assert_eq!(p.remove_tenant_roles("team-alpha"), 2);
        for u in ["alice@company.com", "bob@company.com"] {
            assert_eq!(p.decide(&user(u, &[]), CREATE_WF, "ml-alpha", Some("development")), Decision::Hide);
        }
        assert!(p.role(Some("team-beta"), "beta-lead").is_some());
        assert!(p.binding_count() < before);
        assert_eq!(p.remove_tenant_roles("team-alpha"), 0);
        // Freed slots are reused without disturbing what remains.
        p.upsert_role(role("team-alpha", "again", &["workflows:read"], &["ml-alpha"], &["*"]));
        assert!(p.role(Some("team-beta"), "sneaky").is_some());
    }
}
