//! Workspaces: the desired state a workspace service declares for one workspace, and the plan
//! of steps that converges what exists to it.
//!
//! A workspace `ws` is a tenant `ws` holding one project `ws` with the workspace's domains; two
//! roles in that tenant, `owner` (every domain) and `contributor` (development and staging),
//! scoped to the project; one binding per member (by e-mail) to the role of their membership;
//! and the workspace's quota. Invariant: `plan` is a pure function of (desired, observed) —
//! it writes nothing, returns no step for what already matches (an unchanged workspace plans
//! nothing), and after its steps are carried out it plans nothing again.

use crate::names::check_id;
use crate::violation::Violations;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Domains a workspace gets unless it names its own.
pub const DEFAULT_DOMAINS: [&str; 3] = ["development", "staging", "production"];
/// Domains a contributor may work in (those the workspace has).
pub const CONTRIBUTOR_DOMAINS: [&str; 2] = ["development", "staging"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Owner,
    Contributor,
}

impl MemberRole {
    /// The role in the workspace's tenant that this membership binds to.
    pub fn role_name(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::Contributor => "contributor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub user_id: String,
    /// The identity the member signs in with (the OIDC `email` claim).
    pub email: String,
    pub role: MemberRole,
}

/// What the workspace service declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Display name, e.g. `Customer Churn Analysis`.
    pub name: String,
    #[serde(default)]
    pub members: Vec<Member>,
    /// Where the workspace's data lives, e.g. `s3://ws-churn-001-data/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_location: Option<String>,
    /// Service tier of the tenant (`basic`, `standard`, `premium`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The tenant's quota, as `PUT /api/v1/tenants/{tenant}/quota` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Value>,
    /// Default: development, staging, production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
}

impl WorkspaceSpec {
    /// The tenant's tier: as declared, else `standard`.
    pub fn tier(&self) -> String {
        self.tier.clone().unwrap_or_else(|| "standard".into())
    }

    pub fn domains(&self) -> Vec<String> {
        self.domains.clone().unwrap_or_else(|| DEFAULT_DOMAINS.iter().map(|d| d.to_string()).collect())
    }

    /// Everything wrong with this declaration for workspace `id`; fields are named.
    pub fn check(&self, id: &str) -> Violations {
        let mut errs = Violations::default();
        let doc = "";
        if let Err(e) = check_id(id) {
            errs.push(doc, "id", e);
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            errs.push(doc, "name", "expected 1–200 characters");
        }
        let mut seen = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if m.user_id.trim().is_empty() || m.user_id.len() > 200 {
                errs.push(doc, format!("members[{i}].user_id"), "expected 1–200 characters");
            }
            let at = m.email.find('@');
            if m.email.len() > 254 || at.is_none_or(|a| a == 0 || a == m.email.len() - 1) || m.email.contains(' ') {
                errs.push(doc, format!("members[{i}].email"), format!("expected an e-mail address, got `{}`", m.email));
            }
            if !seen.insert(m.email.to_lowercase()) {
                errs.push(doc, format!("members[{i}].email"), format!("`{}` is listed twice", m.email));
            }
        }
        if let Some(ds) = &self.domains {
            if ds.is_empty() {
                errs.push(doc, "domains", "at least one domain");
            }
            let mut seen = BTreeSet::new();
            for (i, d) in ds.iter().enumerate() {
                if let Err(e) = check_id(d) {
                    errs.push(doc, format!("domains[{i}]"), e);
                } else if !seen.insert(d) {
                    errs.push(doc, format!("domains[{i}]"), format!("`{d}` is listed twice"));
                }
            }
        }
        if let Some(t) = &self.tier {
            if !["basic", "standard", "premium"].contains(&t.as_str()) {
                errs.push(doc, "tier", format!("expected basic, standard or premium, got `{t}`"));
            }
        }
        if self.quota.as_ref().is_some_and(|q| !q.is_object()) {
            errs.push(doc, "quota", "expected a mapping");
        }
        errs
    }
}

/// A role as the plan compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleShape {
    pub permissions: Vec<String>,
    pub projects: Vec<String>,
    pub domains: Vec<String>,
}

/// What exists now for a workspace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The tenant's (name, tier), if it exists.
    pub tenant: Option<(String, String)>,
    /// The project's (name, domain ids), if it exists.
    pub project: Option<(String, Vec<String>)>,
    pub roles: BTreeMap<String, RoleShape>,
    /// (role, user) bindings in the tenant.
    pub bindings: BTreeSet<(String, String)>,
    /// The tenant's quota as set, if one was.
    pub quota: Option<Value>,
}

/// One change toward the desired state, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    CreateTenant { name: String, tier: String },
    UpdateTenant { name: String, tier: String },
    CreateProject { name: String, domains: Vec<String> },
    UpdateProject { name: String, domains: Vec<String> },
    PutRole { name: String, role: RoleShape },
    Bind { role: String, user: String },
    Unbind { role: String, user: String },
    SetQuota(Value),
}

impl Step {
    /// Whether carrying it out changes who may do what (projects, roles, bindings).
    pub fn changes_access(&self) -> bool {
        !matches!(self, Step::SetQuota(_) | Step::CreateTenant { .. } | Step::UpdateTenant { .. })
    }
}

/// The two roles' permissions, from the built-in templates (given by the caller, which owns
/// them): `(owner, contributor)`.
pub struct Templates<'a> {
    pub owner: &'a [&'a str],
    pub contributor: &'a [&'a str],
}

/// The roles a workspace wants.
pub fn desired_roles(id: &str, spec: &WorkspaceSpec, t: &Templates<'_>) -> BTreeMap<String, RoleShape> {
    let domains = spec.domains();
    let contributor_domains: Vec<String> =
        domains.iter().filter(|d| CONTRIBUTOR_DOMAINS.contains(&d.as_str())).cloned().collect();
    let shape = |perms: &[&str], domains: Vec<String>| RoleShape {
        permissions: perms.iter().map(|p| p.to_string()).collect(),
        projects: vec![id.to_string()],
        domains,
    };
    BTreeMap::from([
        ("owner".to_string(), shape(t.owner, domains)),
        ("contributor".to_string(), shape(t.contributor, contributor_domains)),
    ])
}

/// The steps from `observed` to `spec`; empty when they already match.
pub fn plan(id: &str, spec: &WorkspaceSpec, observed: &Observed, t: &Templates<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    let tier = spec.tier();
    match &observed.tenant {
        None => steps.push(Step::CreateTenant { name: spec.name.clone(), tier }),
        Some((name, have)) if *name != spec.name || *have != tier => {
            steps.push(Step::UpdateTenant { name: spec.name.clone(), tier })
        }
        Some(_) => {}
    }
    let domains = spec.domains();
    match &observed.project {
        None => steps.push(Step::CreateProject { name: spec.name.clone(), domains: domains.clone() }),
        Some((name, have)) => {
            // Domains are added, never removed: a removed domain may hold executions and data.
            let mut merged = have.clone();
            merged.extend(domains.iter().filter(|d| !have.contains(d)).cloned());
            if *name != spec.name || merged != *have {
                steps.push(Step::UpdateProject { name: spec.name.clone(), domains: merged });
            }
        }
    }
    for (name, role) in desired_roles(id, spec, t) {
        if observed.roles.get(&name) != Some(&role) {
            steps.push(Step::PutRole { name, role });
        }
    }
    let want: BTreeSet<(String, String)> =
        spec.members.iter().map(|m| (m.role.role_name().to_string(), m.email.clone())).collect();
    // Unbind first: a member moved from owner to contributor never holds both at once.
    for (role, user) in observed.bindings.difference(&want) {
        steps.push(Step::Unbind { role: role.clone(), user: user.clone() });
    }
    for (role, user) in want.difference(&observed.bindings) {
        steps.push(Step::Bind { role: role.clone(), user: user.clone() });
    }
    if let Some(q) = &spec.quota {
        if observed.quota.as_ref() != Some(q) {
            steps.push(Step::SetQuota(q.clone()));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: Templates<'static> =
        Templates { owner: &["workflows:create", "executions:terminate"], contributor: &["workflows:create"] };

    fn churn() -> WorkspaceSpec {
        serde_json::from_value(json!({
            "name": "Customer Churn Analysis",
            "members": [
                {"user_id": "alice", "email": "alice@company.com", "role": "owner"},
                {"user_id": "bob", "email": "bob@company.com", "role": "contributor"}
            ],
            "quota": {"cpu": 4}
        }))
        .unwrap()
    }

    /// What exists after carrying out `steps` on `o`.
    fn apply(mut o: Observed, steps: &[Step]) -> Observed {
        for s in steps {
            match s {
                Step::CreateTenant { name, tier } | Step::UpdateTenant { name, tier } => {
                    o.tenant = Some((name.clone(), tier.clone()))
                }
                Step::CreateProject { name, domains } | Step::UpdateProject { name, domains } => {
                    o.project = Some((name.clone(), domains.clone()))
                }
                Step::PutRole { name, role } => drop(o.roles.insert(name.clone(), role.clone())),
                Step::Bind { role, user } => drop(o.bindings.insert((role.clone(), user.clone()))),
                Step::Unbind { role, user } => drop(o.bindings.remove(&(role.clone(), user.clone()))),
                Step::SetQuota(q) => o.quota = Some(q.clone()),
            }
        }
        o
    }

    #[test]
    fn a_new_workspace_is_provisioned_as_the_guide_defines_it() {
        let steps = plan("ws-churn", &churn(), &Observed::default(), &T);
        assert!(matches!(&steps[0], Step::CreateTenant { tier, .. } if tier == "standard"));
        assert!(
            matches!(&steps[1], Step::CreateProject { domains, .. } if domains == &["development", "staging", "production"])
        );
        let roles = desired_roles("ws-churn", &churn(), &T);
        assert_eq!(roles["owner"].domains, ["development", "staging", "production"]);
        assert_eq!(roles["contributor"].domains, ["development", "staging"]);
        assert_eq!(roles["contributor"].projects, ["ws-churn"]);
        assert!(steps.contains(&Step::Bind { role: "owner".into(), user: "alice@company.com".into() }));
        assert!(steps.contains(&Step::Bind { role: "contributor".into(), user: "bob@company.com".into() }));
        assert!(steps.contains(&Step::SetQuota(json!({"cpu": 4}))));
    }

    #[test]
    fn converged_workspaces_plan_nothing() {
        let spec = churn();
        let done = apply(Observed::default(), &plan("ws-churn", &spec, &Observed::default(), &T));
        assert_eq!(plan("ws-churn", &spec, &done, &T), [], "an unchanged workspace plans no writes");
    }

    #[test]
    fn membership_changes_unbind_before_binding() {
        let spec = churn();
        let done = apply(Observed::default(), &plan("ws-churn", &spec, &Observed::default(), &T));
        let mut changed = spec.clone();
        changed.members.retain(|m| m.user_id != "bob");
        changed.members[0].role = MemberRole::Contributor;
        changed.tier = Some("premium".into());
        let steps = plan("ws-churn", &changed, &done, &T);
        assert_eq!(
            steps,
            [
                Step::UpdateTenant { name: "Customer Churn Analysis".into(), tier: "premium".into() },
                Step::Unbind { role: "contributor".into(), user: "bob@company.com".into() },
                Step::Unbind { role: "owner".into(), user: "alice@company.com".into() },
                Step::Bind { role: "contributor".into(), user: "alice@company.com".into() },
            ]
        );
        assert_eq!(plan("ws-churn", &changed, &apply(done, &steps), &T), []);
    }

    #[test]
    fn a_half_done_provisioning_finishes_and_domains_only_grow() {
        let spec = churn();
        let full = plan("ws-churn", &spec, &Observed::default(), &T);
        // Any prefix of the steps (a crash part-way), then a new plan, converges.
        for cut in 0..=full.len() {
            let partial = apply(Observed::default(), &full[..cut]);
            let rest = plan("ws-churn", &spec, &partial, &T);
            assert_eq!(plan("ws-churn", &spec, &apply(partial, &rest), &T), [], "cut at {cut}");
        }
        let mut o = apply(Observed::default(), &full);
        o.project = Some(("Customer Churn Analysis".into(), vec!["development".into(), "qa".into()]));
        let steps = plan("ws-churn", &spec, &o, &T);
        assert!(steps.contains(&Step::UpdateProject {
            name: "Customer Churn Analysis".into(),
            domains: vec!["development".into(), "qa".into(), "staging".into(), "production".into()],
        }));
    }

    #[test]
    fn bad_declarations_name_the_field() {
        let mut s = churn();
        s.members.push(Member { user_id: "".into(), email: "ALICE@company.com".into(), role: MemberRole::Owner });
        s.members.push(Member { user_id: "x".into(), email: "nope".into(), role: MemberRole::Owner });
        s.domains = Some(vec!["development".into(), "Bad Domain".into()]);
        s.tier = Some("gold".into());
        let fields: Vec<String> = s.check("Bad Id").0.into_iter().map(|v| v.field).collect();
        for f in ["id", "members[2].user_id", "members[2].email", "members[3].email", "domains[1]", "tier"] {
            assert!(fields.iter().any(|x| x == f), "{f} not in {fields:?}");
        }
        assert!(churn().check("ws-churn").is_empty());
        let e = serde_json::from_value::<WorkspaceSpec>(
            json!({"name": "x", "members": [{"user_id": "a", "email": "a@b.c", "role": "admin"}]}),
        );
        assert!(e.is_err());
    }
}
