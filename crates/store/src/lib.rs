//! The metadata store: one query layer over SQLite (embedded default) and PostgreSQL.
//!
//! Invariant: tenant data is reachable only through a [`TenantStore`], obtained with a tenant
//! id, whose every query binds that id first — a query that forgets the tenant cannot be
//! written against it. Cross-tenant operations (tenants, tokens, the project directory) live
//! on [`PlatformStore`] and nowhere else. Keys and indexes lead with the tenant.

mod access;
mod attributes;
pub mod audit;
mod db;
mod error;
mod executions;
mod migrate;
mod page;
mod platform;
mod records;
mod schedules;
mod tenant;
pub mod usage;
mod workspaces;

pub use access::RoleStore;
pub use attributes::{AttributesRecord, AttributesScope};
pub use db::{redact, Backend, Store, StoreOptions};
pub use error::Error;
pub use executions::{
    AttemptEnd, AttemptRecord, CatalogKey, ExecutionFilter, ExecutionKey, ExecutionOp, ExecutionRecord, NewExecution,
    NodeRecord, NodeUpdate, TenantOp,
};
pub use page::{Page, PageRequest, MAX_LIMIT as PAGE_MAX_LIMIT};
pub use platform::{hash_secret, NewToken, PlatformStore, PolicySnapshot, TokenInfo, PLATFORM_SERVICE_ACCOUNT};
pub use records::{
    BindingRecord, Domain, EntityRecord, EntitySummary, NewProject, Project, ProjectState, ProjectUpdate, QuotaRecord,
    RegisterOutcome, RoleRecord, Tenant, TenantState,
};
pub use schedules::{Activation, DueSchedule, Fired, LaunchPlanState};
pub use tenant::{TenantStore, EXPORTED_TABLES};
pub use workspaces::{NewWorkspaceEvent, WorkspaceEvent, WorkspaceObservation, WorkspaceRecord};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
