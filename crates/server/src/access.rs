//! Who may call what. Every route declares its [`Access`] in the route table; the request
//! path authenticates the caller, then asks [`decide`] — the one place a request is admitted.
//!
//! Invariant: deny by default. A caller that may not see a project gets 404, never a hint that
//! it exists; a caller that may see it but not act gets 403.

use serde::Serialize;
use std::fmt;

/// What a permission applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Projects,
    Tasks,
    Workflows,
    Launchplans,
    Tenants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
}

/// `resource:action`, as written in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission(pub Resource, pub Action);

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = serde_json::to_value(self.0).ok();
        let a = serde_json::to_value(self.1).ok();
        write!(
            f,
            "{}:{}",
            r.as_ref().and_then(|v| v.as_str()).unwrap_or("?"),
            a.as_ref().and_then(|v| v.as_str()).unwrap_or("?")
        )
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: liveness and readiness only.
    Public,
    /// Any valid credential (who am I, the API description).
    Authenticated,
    /// A platform-wide operation (tenants).
    Platform(Permission),
    /// An operation on the project named by the `{project}` path parameter (and `{domain}` if present).
    Project(Permission),
    /// A collection whose listing is filtered to what the caller may see; creating in it needs the permission.
    Collection(Permission),
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// Stable identity: a user's e-mail, a service account's name.
    pub subject: String,
    /// `platform_admin`, `service_account` or `user`.
    pub kind: String,
    /// The tenant a tenant-bound credential belongs to.
    pub tenant: Option<String>,
    /// Id of the credential used.
    pub credential: String,
}

impl Principal {
    pub fn is_platform_admin(&self) -> bool {
        self.kind == "platform_admin"
    }
}

/// The outcome of an access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 403: the caller may see the target but not do this.
    Deny,
    /// 404: the caller may not even see the target.
    Hide,
}

/// Decides whether `who` may make a request that needs `access`.
///
/// Platform administrators may do everything. Any other credential is granted nothing until
/// roles bind permissions to it: project routes are hidden, platform and create operations are
/// denied, and collections list only what is visible (nothing).
pub fn decide(who: &Principal, access: Access) -> Decision {
    if who.is_platform_admin() {
        return Decision::Allow;
    }
    match access {
        Access::Public | Access::Authenticated => Decision::Allow,
        Access::Project(_) => Decision::Hide,
        Access::Platform(_) => Decision::Deny,
        // Listing is allowed and filtered; creation is checked by the handler with `may_create`.
        Access::Collection(_) => Decision::Allow,
    }
}

/// Whether `who` may create in a collection (e.g. a new project).
pub fn may_create(who: &Principal, _perm: Permission) -> bool {
    who.is_platform_admin()
}

/// Whether `who` may see every tenant's projects.
pub fn sees_all_projects(who: &Principal) -> bool {
    who.is_platform_admin()
}
