//! The route table: every route, its access, and how it is documented. The router, the
//! admission layer and the OpenAPI document are all built from this one list.

use crate::access::{Access, Action, Resource};
use crate::routes::{
    attributes, audit, executions, health, launch_plans, me, projects, rbac, registry, tenants, workspaces,
};
use crate::AppState;
use axum::http::Method;
use axum::routing::{delete, get, post, put, MethodRouter};
use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use tf_authz::Permission;
use tf_model::EntityKind;

/// Documents a body or response type for OpenAPI.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

pub struct RouteDef {
    pub method: Method,
    /// Axum path syntax, which is also OpenAPI's: `/api/v1/projects/{project}`.
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Query parameters: name and description.
    pub query: &'static [(&'static str, &'static str)],
    /// Request body: content types and schema.
    pub body: Option<(&'static [&'static str], SchemaFn)>,
    pub response: Option<SchemaFn>,
    pub handler: MethodRouter<AppState>,
}

fn s<T: schemars::JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

const PAGE: &[(&str, &str)] =
    &[("limit", "page size, 1–1000 (default 100)"), ("token", "`next_token` of the previous page")];
const JSON: &[&str] = &["application/json"];

fn r(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    tag: &'static str,
    handler: MethodRouter<AppState>,
) -> RouteDef {
    RouteDef { method, path, access, summary, tag, query: &[], body: None, response: None, handler }
}

impl RouteDef {
    fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Self {
        self.query = q;
        self
    }
    fn body(mut self, types: &'static [&'static str], f: SchemaFn) -> Self {
        self.body = Some((types, f));
        self
    }
    fn response(mut self, f: SchemaFn) -> Self {
        self.response = Some(f);
        self
    }
}

/// Each route's declared access, keyed by method and path template, for admission.
pub fn access_map() -> std::collections::HashMap<(Method, &'static str), Access> {
    routes().into_iter().map(|d| ((d.method, d.path), d.access)).collect()
}

/// Every route of the API.
pub fn routes() -> Vec<RouteDef> {
    use Access::*;
    use Action::*;
    use Resource::*;
    let mut v = vec![
        r(Method::GET, "/healthz", Public, "Liveness", "health", get(health::healthz)),
        r(
            Method::GET,
            "/readyz",
            Public,
            "Readiness: the store answers and tasks can run (sandbox working, or isolation explicitly off)",
            "health",
            get(health::readyz),
        ),
        r(Method::GET, "/api/openapi.json", Authenticated, "This API description", "meta", get(me::openapi)),
        r(
            Method::GET,
            "/api/v1/me",
            Authenticated,
            "Who am I: identity, groups, roles, effective permissions per project and domain",
            "access",
            get(me::me),
        ),
        r(
            Method::GET,
            "/api/v1/tenants",
            Platform(Permission(Tenants, Read)),
            "List tenants",
            "tenants",
            get(tenants::list),
        )
        .query(PAGE)
        .response(s::<tf_store::Page<tf_store::Tenant>>),
        r(
            Method::POST,
            "/api/v1/tenants",
            Platform(Permission(Tenants, Create)),
            "Create a tenant",
            "tenants",
            post(tenants::create),
        )
        .body(JSON, s::<tenants::CreateTenant>)
        .response(s::<tf_store::Tenant>),
        r(
            Method::GET,
            "/api/v1/tenants/{tenant}",
            Tenant(Permission(Tenants, Read)),
            "Get a tenant",
            "tenants",
            get(tenants::get),
        )
        .response(s::<tf_store::Tenant>),
        r(
            Method::GET,
            "/api/v1/tenants/{tenant}/quota",
            Tenant(Permission(Tenants, Read)),
            "A tenant's quota and what it uses of it now",
            "tenants",
            get(tenants::get_quota),
        )
        .response(s::<tenants::QuotaView>),
        r(
            Method::PUT,
            "/api/v1/tenants/{tenant}/quota",
            Platform(Permission(Tenants, Update)),
            "Set a tenant's quota (cpu, memory, running tasks and executions, stored bytes) and fair-share weight",
            "tenants",
            put(tenants::put_quota),
        )
        .body(JSON, s::<tenants::QuotaBody>)
        .response(s::<tenants::QuotaView>),
        r(
            Method::GET,
            "/api/v1/tenants/{tenant}/roles",
            Tenant(Permission(Roles, Read)),
            "List a tenant's roles",
            "access",
            get(rbac::list_roles),
        )
        .query(PAGE)
        .response(s::<tf_store::Page<tf_store::RoleRecord>>),
        r(
            Method::POST,
            "/api/v1/tenants/{tenant}/roles",
            Tenant(Permission(Roles, Create)),
            "Create a role (never granting more than the caller holds)",
            "access",
            post(rbac::create_role),
        )
        .body(JSON, s::<rbac::RoleBody>),
        r(
            Method::GET,
            "/api/v1/tenants/{tenant}/roles/{role}",
            Tenant(Permission(Roles, Read)),
            "Get a role",
            "access",
            get(rbac::get_role),
        )
        .response(s::<tf_store::RoleRecord>),
        r(
            Method::PUT,
            "/api/v1/tenants/{tenant}/roles/{role}",
            Tenant(Permission(Roles, Update)),
            "Create or replace a role",
            "access",
            put(rbac::put_role),
        )
        .body(JSON, s::<rbac::RoleBody>),
        r(
            Method::DELETE,
            "/api/v1/tenants/{tenant}/roles/{role}",
            Tenant(Permission(Roles, Delete)),
            "Delete a role and its bindings",
            "access",
            delete(rbac::delete_role),
        ),
        r(
            Method::GET,
            "/api/v1/tenants/{tenant}/bindings",
            Tenant(Permission(Roles, Read)),
            "List a tenant's role bindings",
            "access",
            get(rbac::list_bindings),
        )
        .query(&[
            ("role", "only bindings of this role"),
            ("limit", "page size"),
            ("token", "`next_token` of the previous page"),
        ])
        .response(s::<tf_store::Page<tf_store::BindingRecord>>),
        r(
            Method::POST,
            "/api/v1/tenants/{tenant}/bindings",
            Tenant(Permission(Roles, Update)),
            "Bind a user, group or service account to a role",
            "access",
            post(rbac::create_binding),
        )
        .body(JSON, s::<rbac::BindingBody>),
        r(
            Method::DELETE,
            "/api/v1/tenants/{tenant}/bindings",
            Tenant(Permission(Roles, Update)),
            "Remove a binding (takes effect on the next request)",
            "access",
            delete(rbac::delete_binding),
        )
        .query(&[
            ("role", "the role"),
            ("subject_kind", "user, group or service_account"),
            ("subject", "the subject"),
        ]),
        r(
            Method::GET,
            "/api/v1/tenants/{tenant}/tokens",
            Tenant(Permission(Roles, Read)),
            "List a tenant's live service-account credentials",
            "access",
            get(rbac::list_tokens),
        ),
        r(
            Method::POST,
            "/api/v1/tenants/{tenant}/tokens",
            Tenant(Permission(Roles, Create)),
            "Mint a service-account credential (shown once)",
            "access",
            post(rbac::create_token),
        )
        .body(JSON, s::<rbac::TokenBody>)
        .response(s::<rbac::CreatedToken>),
        r(
            Method::DELETE,
            "/api/v1/tenants/{tenant}/tokens/{id}",
            Tenant(Permission(Roles, Delete)),
            "Revoke a service-account credential",
            "access",
            delete(rbac::revoke_token),
        ),
        r(
            Method::GET,
            "/api/v1/me/tokens",
            Authenticated,
            "List my personal credentials",
            "access",
            get(rbac::my_tokens),
        ),
        r(
            Method::POST,
            "/api/v1/me/tokens",
            Authenticated,
            "Mint a personal credential (shown once)",
            "access",
            post(rbac::create_my_token),
        )
        .body(JSON, s::<rbac::UserTokenBody>)
        .response(s::<rbac::CreatedToken>),
        r(
            Method::DELETE,
            "/api/v1/me/tokens/{id}",
            Authenticated,
            "Revoke one of my personal credentials",
            "access",
            delete(rbac::revoke_my_token),
        ),
        r(
            Method::GET,
            "/api/v1/role_templates",
            Authenticated,
            "Built-in role templates (owner, contributor)",
            "access",
            get(rbac::templates),
        ),
        r(
            Method::GET,
            "/api/v1/authz/explain",
            Authenticated,
            "Why a permission is allowed or denied on a project and domain",
            "access",
            get(me::explain),
        )
        .query(&[
            ("permission", "resource:action"),
            ("project", "project id"),
            ("domain", "domain id"),
            ("user", "explain for this user instead"),
            ("groups", "their groups, comma-separated"),
            ("service_account", "or this service account, tenant:name"),
        ]),
        r(
            Method::GET,
            "/api/v1/projects",
            Collection(Permission(Projects, Read)),
            "List the projects the caller may see",
            "projects",
            get(projects::list),
        )
        .query(&[
            ("limit", "page size, 1–1000 (default 100)"),
            ("token", "`next_token` of the previous page"),
            ("tenant", "only this tenant's projects (platform administrators)"),
        ])
        .response(s::<tf_store::Page<tf_store::Project>>),
        r(
            Method::POST,
            "/api/v1/projects",
            Collection(Permission(Projects, Create)),
            "Create a project",
            "projects",
            post(projects::create),
        )
        .body(JSON, s::<projects::CreateProject>)
        .response(s::<tf_store::Project>),
        r(Method::GET, "/api/v1/projects/{project}", ProjectVisible, "Get a project", "projects", get(projects::get))
            .response(s::<tf_store::Project>),
        r(
            Method::PUT,
            "/api/v1/projects/{project}",
            Project(Permission(Projects, Update)),
            "Update a project's name, description, labels, domains or state",
            "projects",
            put(projects::update),
        )
        .body(JSON, s::<projects::UpdateProject>)
        .response(s::<tf_store::Project>),
        r(
            Method::DELETE,
            "/api/v1/projects/{project}",
            Project(Permission(Projects, Delete)),
            "Archive a project (read-only from then on)",
            "projects",
            delete(projects::archive),
        )
        .response(s::<tf_store::Project>),
        r(
            Method::POST,
            "/api/v1/register/{project}/{domain}",
            Project(Permission(Workflows, Create)),
            "Register a bundle of tasks, workflows and launch plans as one version",
            "registry",
            post(registry::register),
        )
        .query(&[("version", "the version to register the bundle's documents as (or `version` in a JSON envelope)")])
        .body(&["application/yaml", "application/json"], s::<Vec<serde_json::Value>>)
        .response(s::<registry::RegisterResponse>),
        r(
            Method::POST,
            "/api/v1/executions",
            Collection(Permission(Executions, Execute)),
            "Launch an execution in the body's project and domain (checked like the path form)",
            "executions",
            post(executions::create_flat),
        )
        .body(JSON, s::<executions::CreateExecution>)
        .response(s::<executions::ExecutionView>),
        r(
            Method::POST,
            "/api/v1/executions/{project}/{domain}",
            Project(Permission(Executions, Execute)),
            "Launch an execution of a launch plan or workflow; inputs are checked against its interface",
            "executions",
            post(executions::create_in),
        )
        .body(JSON, s::<executions::LaunchBody>)
        .response(s::<executions::ExecutionView>),
        r(
            Method::GET,
            "/api/v1/executions/{project}/{domain}",
            Project(Permission(Executions, Read)),
            "List executions, newest first",
            "executions",
            get(executions::list),
        )
        .query(&[
            ("phase", "QUEUED, RUNNING, SUCCEEDED, FAILED, ABORTED or TIMED_OUT"),
            ("launch_plan", "launch plan as `name@version`"),
            ("workflow", "workflow name"),
            ("user", "who launched"),
            ("since", "created at or after (RFC 3339 or epoch ms)"),
            ("until", "created before (RFC 3339 or epoch ms)"),
            ("limit", "page size, 1–1000 (default 100)"),
            ("token", "`next_token` of the previous page"),
        ])
        .response(s::<tf_store::Page<tf_store::ExecutionRecord>>),
        r(
            Method::GET,
            "/api/v1/executions/{project}/{domain}/{name}",
            Project(Permission(Executions, Read)),
            "Get an execution, with its nodes counted by phase",
            "executions",
            get(executions::get),
        )
        .query(&[("wait", "wait up to this many seconds (≤ 60) for it to finish")])
        .response(s::<executions::ExecutionView>),
        r(
            Method::DELETE,
            "/api/v1/executions/{project}/{domain}/{name}",
            Project(Permission(Executions, Terminate)),
            "Terminate an execution: running attempts are killed, nothing else starts",
            "executions",
            delete(executions::terminate),
        )
        .response(s::<executions::ExecutionView>),
        r(
            Method::POST,
            "/api/v1/executions/{project}/{domain}/{name}/relaunch",
            Project(Permission(Executions, Execute)),
            "Run the same workflow version with the same inputs again",
            "executions",
            post(executions::relaunch),
        )
        .body(JSON, s::<executions::RelaunchBody>)
        .response(s::<executions::ExecutionView>),
        r(
            Method::GET,
            "/api/v1/executions/{project}/{domain}/{name}/nodes",
            Project(Permission(Executions, Read)),
            "Node executions with their attempts: phase, times, error kind and message, cache status",
            "executions",
            get(executions::nodes),
        )
        .response(s::<Vec<executions::NodeView>>),
        r(
            Method::GET,
            "/api/v1/executions/{project}/{domain}/{name}/outputs",
            Project(Permission(Executions, Read)),
            "The execution's outputs (file outputs as blob URIs)",
            "executions",
            get(executions::outputs),
        )
        .response(s::<executions::OutputsView>),
        r(
            Method::GET,
            "/api/v1/executions/{project}/{domain}/{name}/nodes/{node}/attempts/{attempt}/logs",
            Project(Permission(Executions, Read)),
            "An attempt's stdout and stderr as text (live while it runs)",
            "executions",
            get(executions::logs),
        ),
        r(
            Method::GET,
            "/api/v1/project_attributes/{project}",
            Project(Permission(Attributes, Read)),
            "Execution attributes set for a project (every domain)",
            "attributes",
            get(attributes::get_project),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::PUT,
            "/api/v1/project_attributes/{project}",
            Project(Permission(Attributes, Update)),
            "Replace the execution attributes of a project (every domain)",
            "attributes",
            put(attributes::put_project),
        )
        .body(JSON, s::<attributes::PutAttributes>)
        .response(s::<attributes::AttributesView>),
        r(
            Method::DELETE,
            "/api/v1/project_attributes/{project}",
            Project(Permission(Attributes, Delete)),
            "Remove the execution attributes of a project (every domain)",
            "attributes",
            delete(attributes::delete_project),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::GET,
            "/api/v1/project_domain_attributes/{project}/{domain}",
            Project(Permission(Attributes, Read)),
            "Execution attributes set for a project's domain",
            "attributes",
            get(attributes::get_project_domain),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::PUT,
            "/api/v1/project_domain_attributes/{project}/{domain}",
            Project(Permission(Attributes, Update)),
            "Replace the execution attributes of a project's domain",
            "attributes",
            put(attributes::put_project_domain),
        )
        .body(JSON, s::<attributes::PutAttributes>)
        .response(s::<attributes::AttributesView>),
        r(
            Method::DELETE,
            "/api/v1/project_domain_attributes/{project}/{domain}",
            Project(Permission(Attributes, Delete)),
            "Remove the execution attributes of a project's domain",
            "attributes",
            delete(attributes::delete_project_domain),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::GET,
            "/api/v1/workflow_attributes/{project}/{domain}/{workflow}",
            Project(Permission(Attributes, Read)),
            "Execution attributes set for a workflow in a project's domain",
            "attributes",
            get(attributes::get_workflow),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::PUT,
            "/api/v1/workflow_attributes/{project}/{domain}/{workflow}",
            Project(Permission(Attributes, Update)),
            "Replace the execution attributes of a workflow in a project's domain",
            "attributes",
            put(attributes::put_workflow),
        )
        .body(JSON, s::<attributes::PutAttributes>)
        .response(s::<attributes::AttributesView>),
        r(
            Method::DELETE,
            "/api/v1/workflow_attributes/{project}/{domain}/{workflow}",
            Project(Permission(Attributes, Delete)),
            "Remove the execution attributes of a workflow in a project's domain",
            "attributes",
            delete(attributes::delete_workflow),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::GET,
            "/api/v1/launch_plan_attributes/{project}/{domain}/{launch_plan}",
            Project(Permission(Attributes, Read)),
            "Execution attributes set for a launch plan in a project's domain",
            "attributes",
            get(attributes::get_launch_plan),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::PUT,
            "/api/v1/launch_plan_attributes/{project}/{domain}/{launch_plan}",
            Project(Permission(Attributes, Update)),
            "Replace the execution attributes of a launch plan in a project's domain",
            "attributes",
            put(attributes::put_launch_plan),
        )
        .body(JSON, s::<attributes::PutAttributes>)
        .response(s::<attributes::AttributesView>),
        r(
            Method::DELETE,
            "/api/v1/launch_plan_attributes/{project}/{domain}/{launch_plan}",
            Project(Permission(Attributes, Delete)),
            "Remove the execution attributes of a launch plan in a project's domain",
            "attributes",
            delete(attributes::delete_launch_plan),
        )
        .response(s::<attributes::AttributesView>),
        r(
            Method::GET,
            "/api/v1/effective_attributes/{project}/{domain}",
            Project(Permission(Attributes, Read)),
            "The settings a run gets (every level merged, most specific first) and where each value comes from",
            "attributes",
            get(attributes::effective),
        )
        .query(&[
            ("workflow", "the workflow to run"),
            ("launch_plan", "or the launch plan (`name` or `name@version`), with its own settings"),
        ])
        .response(s::<attributes::EffectiveView>),
        r(
            Method::PUT,
            "/api/v1/launch_plans/{project}/{domain}/{name}/{version}",
            Project(Permission(Launchplans, Update)),
            "Activate a launch plan version (its schedule starts; any other version is deactivated) or deactivate it",
            "registry",
            put(launch_plans::set_state),
        )
        .body(JSON, s::<launch_plans::SetState>)
        .response(s::<tf_store::LaunchPlanState>),
        r(
            Method::GET,
            "/api/v1/active_launch_plans/{project}/{domain}",
            Project(Permission(Launchplans, Read)),
            "Active launch plans with their schedules: next tick, last tick and its outcome",
            "registry",
            get(launch_plans::active),
        )
        .response(s::<Vec<tf_store::LaunchPlanState>>),
        r(
            Method::GET,
            "/api/v1/workspaces",
            Platform(Permission(Workspaces, Read)),
            "List workspaces with their declared state and convergence progress",
            "workspaces",
            get(workspaces::list),
        )
        .query(PAGE)
        .response(s::<tf_store::Page<tf_store::WorkspaceRecord>>),
        r(
            Method::PUT,
            "/api/v1/workspaces/{workspace}",
            Platform(Permission(Workspaces, Update)),
            "Declare a workspace (create or update, idempotent): its tenant, project, domains, member roles and quota are converged before the answer",
            "workspaces",
            put(workspaces::put),
        )
        .body(JSON, s::<tf_model::workspace::WorkspaceSpec>)
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::GET,
            "/api/v1/workspaces/{workspace}",
            Platform(Permission(Workspaces, Read)),
            "A workspace: desired against actual state, convergence progress, last error, links",
            "workspaces",
            get(workspaces::get),
        )
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::DELETE,
            "/api/v1/workspaces/{workspace}",
            Platform(Permission(Workspaces, Delete)),
            "Retire a workspace: access revoked at once; executions aborted, data exported, everything purged after the retention period",
            "workspaces",
            delete(workspaces::delete),
        )
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::GET,
            "/api/v1/workspaces/{workspace}/users",
            Platform(Permission(Workspaces, Read)),
            "A workspace's members: declared and as bound now",
            "workspaces",
            get(workspaces::get_members),
        ),
        r(
            Method::PUT,
            "/api/v1/workspaces/{workspace}/users",
            Platform(Permission(Workspaces, Update)),
            "Replace a workspace's members (`{\"members\": [...]}` or a list); removed members lose access with the answer",
            "workspaces",
            put(workspaces::put_members),
        )
        .body(JSON, s::<workspaces::MembersBody>)
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::POST,
            "/workspace/{workspace}/services/flyte",
            Platform(Permission(Workspaces, Update)),
            "Alias (the workspace guide's call): declare a workspace from its `WorkspaceConfig`",
            "workspaces",
            post(workspaces::seed_provision),
        )
        .body(JSON, s::<workspaces::SeedWorkspaceConfig>)
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::DELETE,
            "/workspace/{workspace}/services/flyte",
            Platform(Permission(Workspaces, Delete)),
            "Alias (the workspace guide's call): retire a workspace",
            "workspaces",
            delete(workspaces::delete),
        )
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::PUT,
            "/workspace/{workspace}/users",
            Platform(Permission(Workspaces, Update)),
            "Alias (the workspace guide's call): replace a workspace's members",
            "workspaces",
            put(workspaces::seed_users),
        )
        .body(JSON, s::<workspaces::MembersBody>)
        .response(s::<workspaces::WorkspaceView>),
        r(
            Method::POST,
            "/api/v1/reconciler/workspaces",
            Platform(Permission(Workspaces, Update)),
            "Run a reconciliation pass over every workspace now and report it",
            "workspaces",
            post(workspaces::reconcile),
        )
        .response(s::<crate::workspaces::reconciler::PassReport>),
        r(
            Method::GET,
            "/api/v1/reconciler/workspaces",
            Platform(Permission(Workspaces, Read)),
            "The last reconciliation pass",
            "workspaces",
            get(workspaces::last_pass),
        )
        .response(s::<Option<crate::workspaces::reconciler::PassReport>>),
        r(
            Method::GET,
            "/api/v1/service_accounts",
            Platform(Permission(Roles, Read)),
            "List platform service accounts (credentials holding only the platform permissions given them)",
            "access",
            get(workspaces::list_service_accounts),
        )
        .response(s::<Vec<tf_store::TokenInfo>>),
        r(
            Method::POST,
            "/api/v1/service_accounts",
            Platform(Permission(Roles, Create)),
            "Mint a platform service account's credential, e.g. a workspace service's with `workspaces:*` only",
            "access",
            post(workspaces::create_service_account),
        )
        .body(JSON, s::<workspaces::ServiceAccountBody>)
        .response(s::<rbac::CreatedToken>),
        r(
            Method::DELETE,
            "/api/v1/service_accounts/{id}",
            Platform(Permission(Roles, Delete)),
            "Revoke a platform service account's credential",
            "access",
            delete(workspaces::revoke_service_account),
        ),
        r(
            Method::GET,
            "/metrics",
            Platform(Permission(Tenants, Read)),
            "Prometheus metrics (text format): requests, engine, queue, per-tenant quota use (busiest tenants), health",
            "meta",
            get(crate::metrics::handler),
        ),
        r(
            Method::GET,
            "/api/v1/audit",
            Collection(Permission(Audit, Read)),
            "Audit records, newest first: a tenant's (its administrators), or every tenant's (platform administrators)",
            "audit",
            get(audit::list),
        )
        .query(&[
            ("tenant", "the tenant whose records to read (required unless platform administrator)"),
            ("project", "records about this project"),
            ("actor", "records of this user or service account"),
            ("action", "exact action, or a prefix ending in `*` (`execution.*`)"),
            ("outcome", "ok, denied, hidden, unauthenticated, invalid, not_found, conflict, error, …"),
            ("request_id", "the record of one request (its `X-Request-Id`)"),
            ("since", "at or after (RFC 3339 or epoch ms)"),
            ("until", "before (RFC 3339 or epoch ms)"),
            ("limit", "page size, 1–1000 (default 100)"),
            ("token", "`next_token` of the previous page"),
        ])
        .response(s::<tf_store::Page<tf_store::audit::AuditRecord>>),
        r(
            Method::POST,
            "/api/v1/audit/verify",
            Collection(Permission(Audit, Read)),
            "Verify the audit hash chains (a tenant's, or all): reports edited, missing or inserted records",
            "audit",
            post(audit::verify),
        )
        .query(&[("tenant", "the tenant whose chain to verify (all when omitted, platform administrators only)")])
        .response(s::<tf_store::audit::VerifyReport>),
        r(
            Method::GET,
            "/api/v1/usage",
            Collection(Permission(Tenants, Read)),
            "A tenant's (or project's) usage per hour or day: API calls, active users, executions, attempts, cpu-seconds, memory GiB-seconds, queue wait, stored bytes",
            "audit",
            get(audit::usage),
        )
        .query(&[
            ("tenant", "the tenant (required unless the credential belongs to one)"),
            ("project", "one project of it"),
            ("since", "default: a day before `until`"),
            ("until", "default: now"),
            ("window", "hour (default) or day"),
        ])
        .response(s::<audit::UsageReport>),
    ];
    for (kind, resource, list_path, versions_path, get_path) in [
        (
            EntityKind::Task,
            Tasks,
            "/api/v1/tasks/{project}/{domain}",
            "/api/v1/tasks/{project}/{domain}/{name}",
            "/api/v1/tasks/{project}/{domain}/{name}/{version}",
        ),
        (
            EntityKind::Workflow,
            Workflows,
            "/api/v1/workflows/{project}/{domain}",
            "/api/v1/workflows/{project}/{domain}/{name}",
            "/api/v1/workflows/{project}/{domain}/{name}/{version}",
        ),
        (
            EntityKind::LaunchPlan,
            Launchplans,
            "/api/v1/launch_plans/{project}/{domain}",
            "/api/v1/launch_plans/{project}/{domain}/{name}",
            "/api/v1/launch_plans/{project}/{domain}/{name}/{version}",
        ),
    ] {
        let tag = "registry";
        v.push(
            r(
                Method::GET,
                list_path,
                Project(Permission(resource, Read)),
                list_summary(kind),
                tag,
                registry::for_kind::list(kind),
            )
            .query(PAGE)
            .response(s::<tf_store::Page<tf_store::EntitySummary>>),
        );
        v.push(
            r(
                Method::GET,
                versions_path,
                Project(Permission(resource, Read)),
                versions_summary(kind),
                tag,
                registry::for_kind::versions(kind),
            )
            .query(PAGE)
            .response(s::<tf_store::Page<tf_store::EntityRecord>>),
        );
        v.push(
            r(
                Method::GET,
                get_path,
                Project(Permission(resource, Read)),
                get_summary(kind),
                tag,
                registry::for_kind::get(kind),
            )
            .response(s::<tf_store::EntityRecord>),
        );
    }
    v
}

fn list_summary(k: EntityKind) -> &'static str {
    match k {
        EntityKind::Task => "List tasks (latest version of each name)",
        EntityKind::Workflow => "List workflows (latest version of each name)",
        EntityKind::LaunchPlan => "List launch plans (latest version of each name)",
    }
}

fn versions_summary(k: EntityKind) -> &'static str {
    match k {
        EntityKind::Task => "List a task's versions, newest first",
        EntityKind::Workflow => "List a workflow's versions, newest first",
        EntityKind::LaunchPlan => "List a launch plan's versions, newest first",
    }
}

fn get_summary(k: EntityKind) -> &'static str {
    match k {
        EntityKind::Task => "Get one task version",
        EntityKind::Workflow => "Get one workflow version (with its compiled DAG)",
        EntityKind::LaunchPlan => "Get one launch plan version",
    }
}
