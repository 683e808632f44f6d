//! The one integration-test binary: real servers on loopback ports over real stores.
//!
//! Tests that need PostgreSQL use `TENANTFLOW_TEST_DATABASE_URL` (see scripts/test-postgres.sh);
//! without it they skip, unless `TENANTFLOW_REQUIRE_ALL=1` (set in CI) makes that a failure.

mod access;
mod api;
mod attributes;
mod audit;
mod blobs_s3;
mod cli;
mod crash;
mod engine;
mod executor;
mod garbage;
mod harness;
mod matrix;
mod oidc;
mod quota;
mod schedules;
mod store;
mod validation;
mod workspace_faults;
mod workspaces;
