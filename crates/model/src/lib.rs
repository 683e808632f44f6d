//! The pure core of tenantflow: spec documents, their validation, and workflow compilation.
//!
//! Invariant: this crate does no IO — no files, no network, no clock. Everything here is a
//! function over data, so every rule about what a valid spec is can be tested in isolation.

pub mod attributes;
pub mod binding;
pub mod bundle;
pub mod compile;
pub mod declarative;
pub mod digest;
pub mod execution;
pub mod names;
pub mod resources;
pub mod schedule;
pub mod spec;
pub mod types;
pub mod violation;
pub mod workspace;

pub use attributes::{Attributes, Effective, Level};
pub use bundle::{parse_bundle, Bundle, Document};
pub use compile::{compile_bundle, CompiledBundle, CompiledEntity, EntityRef, Lookup};
pub use spec::{EntityKind, LaunchPlanSpec, Spec, TaskSpec, WorkflowSpec};
pub use types::Type;
pub use violation::{Violation, Violations};
