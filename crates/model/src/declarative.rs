//! Declarative configuration for `tenantflow apply`: the multi-tenant guide's own YAML blocks
//! (`projects:`, `authorization:`, `admin: projectDomainAttributes:`, the Kubernetes
//! `ResourceQuota` documents) as written, plus native documents (`kind: Tenant`,
//! `kind: Project`, `kind: Role`, `kind: RoleBinding`), turned into one desired state.
//!
//! A `ResourceQuota` becomes its team's tenant quota: `requests.cpu` → cpu, `requests.memory` →
//! memory, `pods` → running tasks; the tenant is `team-x` from the name `team-x-quota` (else
//! from the namespace's last segment).
//!
//! Placement: a project belongs to the tenant that a `kind: Tenant` document lists it under;
//! otherwise projects tied together by a role share one tenant, named `team-<suffix>` when their
//! ids share a last `-segment` (`ml-alpha`, `web-alpha` → `team-alpha`), else after the first id.

use crate::violation::Violations;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredTenant {
    pub id: String,
    pub name: Option<String>,
    pub tier: Option<String>,
    /// The quota as written (`cpu`, `memory`, `running_tasks`, `running_executions`,
    /// `stored_bytes`, `weight`); the server checks it.
    pub quota: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredProject {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// (id, display name)
    pub domains: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRole {
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub projects: Vec<String>,
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DesiredBinding {
    pub tenant: String,
    pub role: String,
    /// `user`, `group` or `service_account`
    pub kind: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredAttributes {
    pub project: String,
    pub domain: String,
    pub attributes: crate::attributes::Attributes,
}

#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub tenants: Vec<DesiredTenant>,
    /// Project-domain attributes from the guide's `admin:` block.
    pub attributes: Vec<DesiredAttributes>,
    pub projects: Vec<DesiredProject>,
    pub roles: Vec<DesiredRole>,
    pub bindings: Vec<DesiredBinding>,
    /// Blocks recognised but not applied by this version, with why.
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedAdmin {
    #[serde(default)]
    project_domain_attributes: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    clusters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSpec {
    hard: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceQuotaDoc {
    metadata: QuotaMeta,
    spec: QuotaSpec,
}

/// The tenant a `ResourceQuota` is for: `team-alpha-quota` → `team-alpha`, else the last
/// segment of its namespace (`flyte-execution-alpha` → `team-alpha`).
fn quota_tenant(m: &QuotaMeta) -> String {
    if let Some(t) = m.name.strip_suffix("-quota").filter(|t| t.starts_with("team-")) {
        return t.to_string();
    }
    let ns = m.namespace.as_deref().unwrap_or(&m.name);
    format!("team-{}", ns.rsplit('-').next().unwrap_or(ns))
}

/// A `ResourceQuota`'s `hard` limits as a tenant quota; what has no counterpart is reported.
fn quota_from_hard(hard: &BTreeMap<String, Value>, label: &str, skipped: &mut Vec<String>) -> Value {
    let mut q = serde_json::Map::new();
    for (k, v) in hard {
        let field = match k.as_str() {
            "requests.cpu" | "cpu" => "cpu",
            "requests.memory" | "memory" => "memory",
            "pods" => "running_tasks",
            other => {
                skipped.push(format!(
                    "{label}: spec.hard.{other} (quotas count requests, running tasks and executions, and stored bytes)"
                ));
                continue;
            }
        };
        let v = match (field, v) {
            ("running_tasks", Value::String(s)) => s.parse::<u64>().map(Value::from).unwrap_or_else(|_| v.clone()),
            _ => v.clone(),
        };
        q.insert(field.into(), v);
    }
    Value::Object(q)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedDomain {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DomainEntry {
    Id(String),
    Full(SeedDomain),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProject {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    domains: Option<Vec<DomainEntry>>,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRole {
    permissions: Vec<String>,
    projects: Vec<String>,
    domains: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleList {
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedAuthorization {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    roles: BTreeMap<String, SeedRole>,
    #[serde(default)]
    user_roles: BTreeMap<String, RoleList>,
    #[serde(default)]
    group_roles: BTreeMap<String, RoleList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantDoc {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    /// Project ids placed in this tenant, or full project entries.
    #[serde(default)]
    projects: Vec<Value>,
    #[serde(default)]
    quota: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDoc {
    name: String,
    tenant: Option<String>,
    #[serde(default)]
    description: Option<String>,
    permissions: Vec<String>,
    projects: Vec<String>,
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingDoc {
    tenant: Option<String>,
    role: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    service_accounts: Vec<String>,
}

fn typed<T: serde::de::DeserializeOwned>(v: Value, doc: &str, base: &str, errs: &mut Violations) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let p = e.path().to_string();
            let field = if p == "." { base.to_string() } else { crate::violation::join(base, &p) };
            errs.push(doc, field, e.into_inner().to_string());
            None
        }
    }
}

/// Roles as read, before tenants are placed: (name, role, document label, explicit tenant).
type PendingRole = (String, SeedRole, String, Option<String>);

/// Parses documents (already split from YAML) into the desired state.
pub fn parse_desired(docs: &[Value]) -> Result<Desired, Violations> {
    let mut errs = Violations::default();
    let mut out = Desired::default();
    let mut projects: Vec<(SeedProject, String)> = Vec::new();
    let mut placed: BTreeMap<String, String> = BTreeMap::new();
    let mut roles: Vec<PendingRole> = Vec::new();
    let mut user_roles: Vec<(String, String, String, Option<String>)> = Vec::new(); // (kind, subject, role, tenant)
    for (i, doc) in docs.iter().enumerate() {
        let label = format!("document[{i}]");
        let Value::Object(map) = doc else {
            errs.push(&label, "", "expected a mapping");
            continue;
        };
        if let Some(kind) = map.get("kind").and_then(Value::as_str) {
            let mut body = doc.clone();
            body.as_object_mut().expect("object").remove("kind");
            body.as_object_mut().expect("object").remove("apiVersion");
            if kind == "ResourceQuota" {
                // Kubernetes documents also carry `status`, which says nothing of the desired state.
                body.as_object_mut().expect("object").remove("status");
            }
            match kind {
                "Tenant" => {
                    let Some(t) = typed::<TenantDoc>(body, &label, "", &mut errs) else { continue };
                    for (j, p) in t.projects.iter().enumerate() {
                        match p {
                            Value::String(id) => drop(placed.insert(id.clone(), t.id.clone())),
                            other => {
                                if let Some(mut sp) =
                                    typed::<SeedProject>(other.clone(), &label, &format!("projects[{j}]"), &mut errs)
                                {
                                    sp.tenant = Some(t.id.clone());
                                    placed.insert(sp.id.clone(), t.id.clone());
                                    projects.push((sp, label.clone()));
                                }
                            }
                        }
                    }
                    if t.quota.as_ref().is_some_and(|q| !q.is_object()) {
                        errs.push(&label, "quota", "expected a mapping");
                    }
                    out.tenants.push(DesiredTenant { id: t.id, name: t.name, tier: t.tier, quota: t.quota });
                }
                "Project" => {
                    if let Some(p) = typed::<SeedProject>(body, &label, "", &mut errs) {
                        if let Some(t) = &p.tenant {
                            placed.insert(p.id.clone(), t.clone());
                        }
                        projects.push((p, label));
                    }
                }
                "Role" => {
                    if let Some(r) = typed::<RoleDoc>(body, &label, "", &mut errs) {
                        let role = SeedRole {
                            permissions: r.permissions,
                            projects: r.projects,
                            domains: r.domains,
                            description: r.description,
                        };
                        roles.push((r.name, role, label, r.tenant));
                    }
                }
                "ResourceQuota" => {
                    let Some(rq) = typed::<ResourceQuotaDoc>(body, &label, "", &mut errs) else { continue };
                    let tenant = quota_tenant(&rq.metadata);
                    let quota = quota_from_hard(&rq.spec.hard, &label, &mut out.skipped);
                    match out.tenants.iter_mut().find(|t| t.id == tenant) {
                        Some(t) => t.quota = Some(quota),
                        None => {
                            out.tenants.push(DesiredTenant { id: tenant, quota: Some(quota), ..Default::default() })
                        }
                    }
                }
                "RoleBinding" => {
                    if let Some(b) = typed::<BindingDoc>(body, &label, "", &mut errs) {
                        for (kind, subjects) in
                            [("user", &b.users), ("group", &b.groups), ("service_account", &b.service_accounts)]
                        {
                            for s in subjects {
                                user_roles.push((kind.into(), s.clone(), b.role.clone(), b.tenant.clone()));
                            }
                        }
                    }
                }
                other => errs.push(
                    &label,
                    "kind",
                    format!("unknown kind `{other}`; expected Tenant, Project, Role, RoleBinding or ResourceQuota"),
                ),
            }
            continue;
        }
        for (key, v) in map {
            match key.as_str() {
                "projects" => {
                    if let Some(list) = typed::<Vec<SeedProject>>(v.clone(), &label, "projects", &mut errs) {
                        projects.extend(list.into_iter().map(|p| (p, label.clone())));
                    }
                }
                "authorization" => {
                    let Some(a) = typed::<SeedAuthorization>(v.clone(), &label, "authorization", &mut errs) else {
                        continue;
                    };
                    if a.enabled == Some(false) {
                        out.skipped
                            .push(format!("{label}: authorization.enabled is false; authorisation is always on"));
                    }
                    for (name, r) in a.roles {
                        roles.push((name, r, label.clone(), None));
                    }
                    for (kind, map) in [("user", a.user_roles), ("group", a.group_roles)] {
                        for (subject, list) in map {
                            for role in list.roles {
                                user_roles.push((kind.into(), subject.clone(), role, None));
                            }
                        }
                    }
                }
                "admin" => {
                    let Some(a) = typed::<SeedAdmin>(v.clone(), &label, "admin", &mut errs) else { continue };
                    for (project, domains) in a.project_domain_attributes {
                        for (domain, entry) in domains {
                            let base = format!("admin.projectDomainAttributes.{project}.{domain}");
                            match crate::attributes::from_flyte(&entry) {
                                Ok(attributes) => {
                                    for v in attributes.check(&label).0 {
                                        let field = crate::attributes::flyte_field(&v.field);
                                        errs.push(&label, crate::violation::join(&base, &field), v.message);
                                    }
                                    out.attributes.push(DesiredAttributes {
                                        project: project.clone(),
                                        domain,
                                        attributes,
                                    });
                                }
                                Err((field, message)) => {
                                    errs.push(&label, crate::violation::join(&base, &field), message)
                                }
                            }
                        }
                    }
                    if a.clusters.is_some() {
                        out.skipped.push(format!(
                            "{label}: admin.clusters (cluster endpoints belong in the server configuration; tasks run on this server's executor)"
                        ));
                    }
                }
                "auth" => out
                    .skipped
                    .push(format!("{label}: auth: (identity-provider settings belong in the server configuration)")),
                other => errs.push(
                    &label,
                    other,
                    "unknown block; expected projects, authorization, admin, or a document with `kind`",
                ),
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // Place projects: explicit tenant, else a role's group, else the project's own id.
    let all_ids: BTreeSet<String> = projects.iter().map(|(p, _)| p.id.clone()).collect();
    let mut group = UnionFind::default();
    for (_, r, _, explicit) in &roles {
        if explicit.is_none() {
            let named: Vec<&String> = r.projects.iter().filter(|p| all_ids.contains(*p)).collect();
            for w in named.windows(2) {
                group.union(w[0], w[1]);
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in &all_ids {
        groups.entry(group.find(id)).or_default().push(id.clone());
    }
    let mut tenant_of: BTreeMap<String, String> = BTreeMap::new();
    for members in groups.values() {
        let explicit = members.iter().find_map(|m| placed.get(m).cloned());
        let t = explicit.unwrap_or_else(|| team_name(members));
        for m in members {
            tenant_of.insert(m.clone(), placed.get(m).cloned().unwrap_or_else(|| t.clone()));
        }
    }
    let known_tenants: BTreeSet<String> = out.tenants.iter().map(|t| t.id.clone()).collect();
    let mut new_tenants: BTreeSet<String> = tenant_of.values().cloned().collect();
    new_tenants.retain(|t| !known_tenants.contains(t));
    out.tenants.extend(new_tenants.into_iter().map(|id| DesiredTenant { id, ..Default::default() }));
    let mut seen = BTreeSet::new();
    for (p, label) in projects {
        if !seen.insert(p.id.clone()) {
            errs.push(&label, "projects", format!("project `{}` is declared twice", p.id));
            continue;
        }
        let domains = match p.domains {
            None => ["development", "staging", "production"].iter().map(|d| (d.to_string(), d.to_string())).collect(),
            Some(ds) => ds
                .into_iter()
                .map(|d| match d {
                    DomainEntry::Id(id) => (id.clone(), id),
                    DomainEntry::Full(f) => (f.id.clone(), f.name.unwrap_or(f.id)),
                })
                .collect(),
        };
        out.projects.push(DesiredProject {
            tenant: tenant_of.get(&p.id).cloned().unwrap_or_else(|| p.id.clone()),
            id: p.id,
            name: p.name,
            description: p.description,
            domains,
        });
    }
    // Place roles: explicit tenant, else the one tenant owning all their (known) projects.
    let mut role_tenant: BTreeMap<String, String> = BTreeMap::new();
    for (name, r, label, explicit) in roles {
        let tenant = match explicit {
            Some(t) => t,
            None => {
                let owners: BTreeSet<&String> = r.projects.iter().filter_map(|p| tenant_of.get(p)).collect();
                match owners.len() {
                    1 => owners.into_iter().next().expect("one").clone(),
                    0 => {
                        errs.push(
                            &label,
                            format!("authorization.roles.{name}.projects"),
                            "names no project declared in these files; give the role a `tenant` with `kind: Role`",
                        );
                        continue;
                    }
                    _ => {
                        let names: Vec<&str> = owners.iter().map(|s| s.as_str()).collect();
                        errs.push(
                            &label,
                            format!("authorization.roles.{name}.projects"),
                            format!("spans tenants {}; a role belongs to one tenant", names.join(", ")),
                        );
                        continue;
                    }
                }
            }
        };
        role_tenant.insert(name.clone(), tenant.clone());
        out.roles.push(DesiredRole {
            tenant,
            name,
            description: r.description.unwrap_or_default(),
            permissions: r.permissions,
            projects: r.projects,
            domains: r.domains,
        });
    }
    for (kind, subject, role, tenant) in user_roles {
        let Some(t) = tenant.or_else(|| role_tenant.get(&role).cloned()) else {
            errs.push("", "authorization", format!("{kind} `{subject}` is given unknown role `{role}`"));
            continue;
        };
        out.bindings.push(DesiredBinding { tenant: t, role, kind, subject });
    }
    out.bindings.sort();
    out.bindings.dedup();
    errs.into_result(out)
}

/// `team-<suffix>` when every id ends in the same `-segment`, else the first id.
fn team_name(ids: &[String]) -> String {
    let suffix = |s: &str| s.rsplit_once('-').map(|(_, x)| x.to_string());
    match suffix(&ids[0]) {
        Some(sfx) if ids.iter().all(|i| suffix(i).as_deref() == Some(sfx.as_str())) => format!("team-{sfx}"),
        _ => ids[0].clone(),
    }
}

#[derive(Default)]
struct UnionFind {
    parent: BTreeMap<String, String>,
}

impl UnionFind {
    fn find(&mut self, x: &str) -> String {
        let p = self.parent.get(x).cloned().unwrap_or_else(|| x.to_string());
        if p == x {
            return p;
        }
        let root = self.find(&p);
        self.parent.insert(x.to_string(), root.clone());
        root
    }
    fn union(&mut self, a: &str, b: &str) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The smaller id becomes the root, so grouping does not depend on input order.
            let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(child, root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(y: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(y).map(|d| Value::deserialize(d).unwrap()).collect()
    }

    #[test]
    fn seed_blocks_place_projects_by_team() {
        let y = "projects:\n  - {id: ml-alpha, domains: [{id: development}, {id: production}]}\n  - {id: web-alpha}\n  - {id: data-beta}\nauthorization:\n  enabled: true\n  roles:\n    alpha-dev: {permissions: [\"workflows:read\"], projects: [ml-alpha, web-alpha], domains: [development]}\n    beta-dev: {permissions: [\"workflows:read\"], projects: [data-beta], domains: [development]}\n  userRoles:\n    \"alice@company.com\": {roles: [alpha-dev]}\n  groupRoles:\n    team-beta: {roles: [beta-dev]}\n";
        let d = parse_desired(&docs(y)).unwrap();
        let t: Vec<(&str, &str)> = d.projects.iter().map(|p| (p.id.as_str(), p.tenant.as_str())).collect();
        assert_eq!(t, [("ml-alpha", "team-alpha"), ("web-alpha", "team-alpha"), ("data-beta", "team-beta")]);
        assert_eq!(d.roles[0].tenant, "team-alpha");
        assert_eq!(d.bindings.len(), 2);
        assert_eq!(d.projects[1].domains.len(), 3);
    }

    #[test]
    fn the_guides_admin_block_and_resource_quotas_are_read_as_written() {
        let y = "admin:\n  projectDomainAttributes:\n    ml-alpha:\n      development:\n        executionClusterLabel: {value: team-alpha-cluster}\n        executionQueueAttributes: {tags: [team-alpha, development]}\n        workflowExecutionConfig:\n          maxParallelism: 10\n          securityContext: {runAsUser: 1000, runAsGroup: 1000}\n  clusters:\n    clusterConfigs: {team-alpha-cluster: {endpoint: x}}\n---\napiVersion: v1\nkind: ResourceQuota\nmetadata: {name: team-alpha-quota, namespace: flyte-execution-alpha}\nspec:\n  hard: {requests.cpu: \"10\", requests.memory: 20Gi, limits.cpu: \"20\", pods: \"50\"}\n";
        let d = parse_desired(&docs(y)).unwrap();
        assert_eq!(d.attributes.len(), 1);
        assert_eq!(d.attributes[0].attributes.max_parallelism, Some(10));
        assert_eq!((d.attributes[0].project.as_str(), d.attributes[0].domain.as_str()), ("ml-alpha", "development"));
        assert_eq!(d.tenants[0].id, "team-alpha");
        assert_eq!(d.tenants[0].quota, Some(serde_json::json!({"cpu": "10", "memory": "20Gi", "running_tasks": 50})));
        assert!(d.skipped.iter().any(|s| s.contains("limits.cpu")), "{:?}", d.skipped);
        assert!(d.skipped.iter().any(|s| s.contains("admin.clusters")), "{:?}", d.skipped);
        let e = parse_desired(&docs("admin:\n  projectDomainAttributes:\n    p:\n      development:\n        workflowExecutionConfig: {maxParallelism: 0}\n")).unwrap_err();
        assert_eq!(
            e.0[0].field, "admin.projectDomainAttributes.p.development.workflowExecutionConfig.maxParallelism",
            "{e}"
        );
    }

    #[test]
    fn native_tenant_placement_wins_and_errors_name_fields() {
        let y = "kind: Tenant\nid: acme\nprojects: [p1, p2]\n---\nprojects: [{id: p1}, {id: p2}]\n";
        let d = parse_desired(&docs(y)).unwrap();
        assert!(d.projects.iter().all(|p| p.tenant == "acme"));
        let e = parse_desired(&docs("projects: [{id: p1, colour: red}]\n")).unwrap_err();
        assert!(e.0[0].field.starts_with("projects"), "{e}");
        let e = parse_desired(&docs("projects: [{id: a-x}, {id: b-y}]\nauthorization:\n  roles:\n    r: {permissions: [\"workflows:read\"], projects: [a-x, b-y], domains: [\"*\"]}\n---\nkind: Tenant\nid: t1\nprojects: [a-x]\n---\nkind: Tenant\nid: t2\nprojects: [b-y]\n")).unwrap_err();
        assert!(e.0[0].message.contains("spans tenants"), "{e}");
    }
}
