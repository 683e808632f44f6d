//! The shapes the store reads and writes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    Active,
    Suspended,
    Deleting,
}

impl TenantState {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
            TenantState::Deleting => "deleting",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [TenantState::Active, TenantState::Suspended, TenantState::Deleting].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub state: TenantState,
    pub labels: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A tenant's limits on concurrent use (`None`: unlimited) and its fair-share weight
/// (`None`: the default of its tier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaRecord {
    pub cpu_millis: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub running_tasks: Option<i64>,
    pub running_executions: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Domain {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectState {
    Active,
    Archived,
}

impl ProjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectState::Active => "active",
            ProjectState::Archived => "archived",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [ProjectState::Active, ProjectState::Archived].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Project {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub domains: Vec<Domain>,
    pub state: ProjectState,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Project {
    pub fn has_domain(&self, d: &str) -> bool {
        self.domains.iter().any(|x| x.id == d)
    }
}

/// A project to create; validated by the caller.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: String,
    pub name: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub domains: Vec<Domain>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub domains: Option<Vec<Domain>>,
    pub state: Option<ProjectState>,
}

/// A registered, immutable entity version.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EntityRecord {
    pub kind: String,
    pub project: String,
    pub domain: String,
    pub name: String,
    pub version: String,
    pub digest: String,
    pub spec: Value,
    pub interface: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiled: Option<Value>,
    pub created_at: i64,
    pub created_by: String,
}

/// One entity name with its latest version, for listings.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EntitySummary {
    pub kind: String,
    pub project: String,
    pub domain: String,
    pub name: String,
    pub latest_version: String,
    pub versions: i64,
    pub updated_at: i64,
}

/// What registration did with one document.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RegisterOutcome {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub digest: String,
    /// `created`, or `unchanged` when the same content was already registered.
    pub status: String,
}

/// A role as stored: the patterns as written, so they read back the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoleRecord {
    /// `None` for platform roles.
    pub tenant: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<String>,
    pub projects: Vec<String>,
    pub domains: Vec<String>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

/// A binding of a user, group or service account to a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BindingRecord {
    pub tenant: Option<String>,
    pub role: String,
    /// `user`, `group` or `service_account`.
    pub subject_kind: String,
    pub subject: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub created_by: String,
}
