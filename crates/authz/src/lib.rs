//! Authorisation as plain data: permissions (`resource:action`), roles that grant them on
//! projects × domains, bindings of users, groups and service accounts to roles, and the
//! decision "may this caller do this here?" with the role and binding that decided.
//!
//! Invariants: no IO; deny by default; a tenant's role only ever matches that tenant's
//! projects; a decision costs a handful of hash lookups whatever the number of tenants.

mod matcher;
mod permission;
mod policy;
pub mod templates;

pub use matcher::Matcher;
pub use permission::{Action, PermSet, Permission, Resource};
pub use policy::{Caller, Decision, Explanation, Grant, Policy, RoleDef, Subject, SubjectKind};
