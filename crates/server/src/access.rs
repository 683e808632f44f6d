//! Who may call what. Every route declares its [`Access`] in the route table; the request
//! path authenticates the caller, then [`admit`] decides — the one place a request is admitted.
//!
//! Invariant: deny by default. A caller that may not see a project (or tenant) gets 404, the
//! same answer as for one that does not exist; a caller that may see it but not act gets 403.

use serde::Serialize;
use tf_authz::{Caller, Decision, Permission, Policy};

pub use tf_authz::{Action, Resource};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: liveness and readiness only.
    Public,
    /// Any valid credential (who am I, the API description).
    Authenticated,
    /// A platform-wide operation: platform administrators only.
    Platform(Permission),
    /// A permission on the `{project}` of the path (in its `{domain}`, if the path has one).
    Project(Permission),
    /// Reading the `{project}` itself: any grant on the project lets the caller see it.
    ProjectVisible,
    /// A permission on the `{tenant}` of the path: its roles, bindings, credentials.
    Tenant(Permission),
    /// A collection whose listing is filtered to what the caller may see; creating in it is
    /// checked by the handler against the target tenant.
    Collection(Permission),
}

impl Access {
    /// The permission the route needs, if it names one.
    pub fn permission(self) -> Option<Permission> {
        match self {
            Access::Platform(p) | Access::Project(p) | Access::Tenant(p) | Access::Collection(p) => Some(p),
            Access::Public | Access::Authenticated | Access::ProjectVisible => None,
        }
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// Stable identity: a user's e-mail (or `sub`), a service account's name.
    pub subject: String,
    /// `platform_admin`, `service_account`, `user` (platform-issued) or `oidc`.
    pub kind: String,
    /// The tenant a tenant-bound credential belongs to.
    pub tenant: Option<String>,
    /// Groups from the identity provider.
    pub groups: Vec<String>,
    /// Id of the platform credential used, if one was.
    pub credential: Option<String>,
    /// Platform administrator: by credential, or by configured user or group.
    pub platform_admin: bool,
    /// A platform service account's platform permissions (e.g. `workspaces:*`); empty otherwise.
    #[serde(skip)]
    pub platform_permissions: tf_authz::PermSet,
}

impl Principal {
    pub fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }

    /// The caller as the policy sees it.
    pub fn caller(&self) -> Caller {
        let (user, service_account) = match self.kind.as_str() {
            "service_account" => (None, Some(format!("{}:{}", self.tenant.as_deref().unwrap_or(""), self.subject))),
            tf_store::PLATFORM_SERVICE_ACCOUNT => (None, Some(format!(":{}", self.subject))),
            "platform_admin" => (None, None),
            _ => (Some(self.subject.clone()), None),
        };
        Caller { user, groups: self.groups.clone(), service_account, platform_admin: self.platform_admin }
    }
}

/// The path parameters admission looks at.
#[derive(Debug, Default)]
pub struct Target<'a> {
    pub project: Option<&'a str>,
    pub domain: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

/// Decides whether a request that needs `access` on `target` may proceed.
pub fn admit(policy: &Policy, who: &Principal, access: Access, target: &Target) -> Decision {
    let caller = who.caller();
    let allow = || Decision::Allow(tf_authz::Grant { role: String::new(), role_tenant: None, binding: None });
    match access {
        Access::Public | Access::Authenticated | Access::Collection(_) => allow(),
        Access::Platform(_) if who.is_platform_admin() => allow(),
        Access::Platform(p) if who.platform_permissions.contains(p) => allow(),
        Access::Platform(_) => Decision::Deny,
        Access::Project(perm) => match target.project {
            Some(p) => policy.decide(&caller, perm, p, target.domain),
            None => Decision::Hide,
        },
        Access::ProjectVisible => match target.project {
            Some(p) if policy.can_see(&caller, p) => allow(),
            Some(_) if who.is_platform_admin() => allow(),
            _ => Decision::Hide,
        },
        Access::Tenant(perm) => match target.tenant {
            Some(t) => policy.decide_tenant(&caller, perm, t),
            None => Decision::Hide,
        },
    }
}
