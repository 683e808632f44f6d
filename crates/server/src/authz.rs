//! The in-memory authorisation index of this server: a [`Policy`] built from the store at
//! start and updated in the same request as every committed change to roles, bindings or
//! projects, so a removed binding denies the very next request.

use std::sync::{RwLock, RwLockReadGuard};
use tf_authz::{Matcher, PermSet, Policy, RoleDef, Subject, SubjectKind};
use tf_store::{BindingRecord, RoleRecord, Store};

pub struct Authz {
    policy: RwLock<Policy>,
}

/// A role record that does not make a valid role: the field and what is wrong.
#[derive(Debug)]
pub struct BadRole(pub String, pub String);

/// Turns a stored or submitted role into the policy's form.
pub fn role_def(r: &RoleRecord) -> Result<RoleDef, BadRole> {
    let permissions = PermSet::parse_all(&r.permissions).map_err(|(i, e)| BadRole(format!("permissions[{i}]"), e))?;
    if permissions.is_empty() {
        return Err(BadRole("permissions".into(), "a role grants at least one permission".into()));
    }
    for (field, list) in [("projects", &r.projects), ("domains", &r.domains)] {
        if list.is_empty() {
            return Err(BadRole(field.into(), format!("list at least one of the role's {field}, or `*`")));
        }
        for (i, p) in list.iter().enumerate() {
            let ok = !p.is_empty()
                && p.len() <= 63
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '*'));
            if !ok {
                return Err(BadRole(format!("{field}[{i}]"), format!("`{p}` is not a name or a pattern with `*`")));
            }
        }
    }
    Ok(RoleDef {
        tenant: r.tenant.clone(),
        name: r.name.clone(),
        permissions,
        projects: Matcher::new(&r.projects),
        domains: Matcher::new(&r.domains),
    })
}

/// The policy's subject for a binding; service accounts are namespaced by their tenant.
pub fn subject_of(kind: SubjectKind, tenant: Option<&str>, name: &str) -> Subject {
    let name = match (kind, tenant) {
        (SubjectKind::ServiceAccount, Some(t)) => format!("{t}:{name}"),
        _ => name.to_string(),
    };
    Subject { kind, name }
}

impl Authz {
    /// Builds the index from everything in the store.
    pub async fn load(store: &Store) -> Result<Authz, tf_store::Error> {
        Ok(Authz { policy: RwLock::new(Self::build(store).await?) })
    }

    /// Swaps in a freshly built policy.
    pub fn replace(&self, p: Policy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Reads everything access depends on from the store into a new policy.
    pub async fn build(store: &Store) -> Result<Policy, tf_store::Error> {
        let snap = store.platform().policy_snapshot().await?;
        let mut p = Policy::new();
        for (project, tenant) in &snap.projects {
            p.set_project(project, tenant);
        }
        for r in &snap.roles {
            match role_def(r) {
                Ok(def) => p.upsert_role(def),
                Err(BadRole(f, e)) => {
                    tracing::error!(role = %r.name, field = %f, error = %e, "stored role is invalid; ignored")
                }
            }
        }
        for b in &snap.bindings {
            Self::bind_record(&mut p, b);
        }
        Ok(p)
    }

    fn bind_record(p: &mut Policy, b: &BindingRecord) {
        if let Some(kind) = SubjectKind::parse(&b.subject_kind) {
            p.bind(&subject_of(kind, b.tenant.as_deref(), &b.subject), b.tenant.as_deref(), &b.role);
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Policy> {
        self.policy.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn update(&self, f: impl FnOnce(&mut Policy)) {
        let mut g = self.policy.write().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    pub fn bind(&self, b: &BindingRecord) {
        self.update(|p| Self::bind_record(p, b));
    }
}
