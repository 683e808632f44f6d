//! The command line, kubectl/flytectl style: `get`, `create`, `register`, `-p/-d`, `-o`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "tenantflow", version, about = "Multi-tenant workflow orchestration: server and client")]
pub struct Cli {
    #[command(flatten)]
    pub conn: Connection,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is and how to authenticate: flags, then env, then the client config file.
#[derive(Debug, Args, Clone, Default)]
pub struct Connection {
    /// Server URL [env: TENANTFLOW_URL] (default http://127.0.0.1:8089).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Bearer credential [env: TENANTFLOW_TOKEN].
    #[arg(long, global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Read the credential from this file [env: TENANTFLOW_TOKEN_FILE].
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Client config file with `url`, `token` or `token_file` [env: TENANTFLOW_CLIENT_CONFIG]
    /// (default ~/.config/tenantflow/client.yaml).
    #[arg(long, global = true)]
    pub client_config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Serve(ServeArgs),
    /// Start a server on the embedded store with the seed's teams, projects and example workflows.
    Demo(DemoArgs),
    /// Show resources: projects, tenants, tasks, workflows, launchplans, executions,
    /// attributes (effective, with sources), schedules.
    Get(GetArgs),
    /// Create a project or a tenant.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Archive a project (it becomes read-only).
    Archive {
        /// `project`
        kind: String,
        name: String,
    },
    /// Register spec documents (YAML or JSON files, or directories of them) as one version.
    Register(RegisterArgs),
    /// Run a benchmark suite; prints one JSON object per scenario.
    Bench(BenchArgs),
    /// Converge tenants, quotas, projects, roles, bindings and project-domain attributes to YAML files
    /// (the guide's blocks as written, or native documents).
    Apply(ApplyArgs),
    /// Identity and access: who am I, why is something allowed or denied.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Launch an execution of a launch plan (or, with --workflow, of a workflow).
    Run(RunArgs),
    /// Print an attempt's log (stdout and stderr).
    Logs(LogsArgs),
    /// Terminate an execution: running attempts are killed, nothing else starts.
    Terminate(ExecutionArgs),
    /// Run an execution again: same workflow version, same inputs.
    Relaunch(RelaunchArgs),
    /// Make a launch plan version the active one; its schedule starts ticking.
    Activate(LaunchPlanStateArgs),
    /// Deactivate a launch plan version; its schedule stops.
    Deactivate(LaunchPlanStateArgs),
    /// Workspaces: declare from files, show desired against actual, retire, manage members.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// The audit trail: list, export as JSON lines, verify the hash chains.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A tenant's usage per hour or day: API calls, active users, executions, cpu, memory.
    Usage(UsageArgs),
}

/// Which audit records.
#[derive(Debug, Args, Clone, Default)]
pub struct AuditFilterArgs {
    /// The tenant (default: the credential's tenant; every tenant for a platform administrator).
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    /// Exact action, or a prefix ending in `*` (`execution.*`).
    #[arg(long)]
    pub action: Option<String>,
    /// ok, denied, hidden, unauthenticated, invalid, not_found, conflict, error, …
    #[arg(long)]
    pub outcome: Option<String>,
    /// At or after (RFC 3339 or epoch ms).
    #[arg(long)]
    pub since: Option<String>,
    /// Before (RFC 3339 or epoch ms).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest records matching the filters.
    List {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// Most records to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Every record matching the filters, one JSON object per line, newest first.
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// Write to this file instead of stdout.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
    },
    /// Verify the hash chains: exits 1 and lists the records that were edited, removed or
    /// inserted, if any.
    Verify {
        #[arg(short = 't', long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    /// Default: a day before `--until`.
    #[arg(long)]
    pub since: Option<String>,
    /// Default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// `hour` or `day`.
    #[arg(long, default_value = "hour")]
    pub window: String,
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Declare the workspaces in YAML or JSON files (`id`, `name`, `members`, `data_location`,
    /// `tier`, `quota`, `domains`; several documents per file); idempotent.
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// List workspaces, or show one: status, generation, members desired and actual.
    Get { id: Option<String> },
    /// Retire a workspace: access revoked at once; executions aborted, data exported, purged
    /// after the retention period.
    Delete {
        id: String,
        /// Wait until the export is done (phase `retained`).
        #[arg(long)]
        wait: bool,
    },
    /// Show a workspace's members, or change them.
    Members {
        id: String,
        /// Add or change a member: `EMAIL=owner|contributor`; repeatable.
        #[arg(long = "add")]
        add: Vec<String>,
        /// Remove a member by e-mail; repeatable.
        #[arg(long = "remove")]
        remove: Vec<String>,
        /// Replace the whole member set with the list in this YAML or JSON file.
        #[arg(long = "set", conflicts_with_all = ["add", "remove"])]
        set: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct LaunchPlanStateArgs {
    /// The launch plan as `name` (its latest version) or `name@version`.
    pub launch_plan: String,
    #[arg(short = 'p', long)]
    pub project: String,
    #[arg(short = 'd', long)]
    pub domain: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Launch plan (or workflow, with --workflow) as `name` or `name@version`.
    pub target: String,
    #[arg(short = 'p', long)]
    pub project: String,
    #[arg(short = 'd', long)]
    pub domain: String,
    /// TARGET is a workflow, run without a launch plan.
    #[arg(long)]
    pub workflow: bool,
    /// An input as `key=value`; the value is read as YAML (`5` is a number, `[a, b]` a list).
    #[arg(long = "input", short = 'i')]
    pub inputs: Vec<String>,
    /// A YAML or JSON file with a mapping of inputs.
    #[arg(long = "inputs")]
    pub inputs_file: Option<PathBuf>,
    /// Execution name (default: generated).
    #[arg(long)]
    pub name: Option<String>,
    /// Most nodes running at once.
    #[arg(long)]
    pub max_parallelism: Option<u32>,
    /// Admission priority inside the tenant, -100..=100 (higher first).
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<i64>,
    /// Wait for the end, showing progress; exit 1 unless it succeeds.
    #[arg(long, short = 'w')]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ExecutionArgs {
    pub execution: String,
    #[arg(short = 'p', long)]
    pub project: String,
    #[arg(short = 'd', long)]
    pub domain: String,
}

#[derive(Debug, Args)]
pub struct RelaunchArgs {
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// Name of the new execution (default: generated).
    #[arg(long)]
    pub name: Option<String>,
    /// Wait for the end, showing progress; exit 1 unless it succeeds.
    #[arg(long, short = 'w')]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// The node.
    pub node: String,
    /// Attempt number (default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Files or directories of YAML documents.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Print what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// The caller's identity, groups and roles.
    Whoami,
    /// Which role and binding allow a permission on a project and domain, or that none does.
    Explain {
        /// Explain for this user (default: the caller).
        #[arg(long)]
        user: Option<String>,
        /// That user's groups; repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Or this service account, as `tenant:name`.
        #[arg(long)]
        service_account: Option<String>,
        /// `resource:action`, e.g. executions:terminate.
        #[arg(long)]
        permission: String,
        #[arg(short = 'p', long)]
        project: String,
        #[arg(short = 'd', long)]
        domain: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `startup`: an idle server on an empty data dir — time to ready and resident memory.
    /// `authz`: decisions with 10,000 projects and 100,000 bindings; authorised listings under load.
    /// `engine`: executions through the real server, store and sandboxed executor — 40
    /// sequential Python tasks, a 100-node chain, fan-outs of 1,000 and 10,000 leaves.
    /// `fairness`: three tenants weighted 1:1:2 saturating a 4-slot executor, and a late fourth.
    /// `workspaces`: 10,000 workspaces provisioned over HTTP by 16 clients, a full reconcile
    /// pass over them, and authorisation with them loaded.
    #[arg(value_parser = ["startup", "authz", "engine", "fairness", "workspaces"])]
    pub suite: String,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Run against PostgreSQL instead of the embedded store.
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Requests each of the 64 clients sends in `list_workflows`.
    #[arg(long, default_value_t = 200)]
    pub requests_per_client: usize,
    /// `engine`: only these scenarios (comma-separated), e.g. `seq40_python,chain100`.
    #[arg(long)]
    pub scenarios: Option<String>,
    /// `workspaces`: how many workspaces to provision.
    #[arg(long, default_value_t = 10_000)]
    pub workspaces: usize,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (YAML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory: the SQLite store, the admin credential, local data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8089.
    #[arg(long)]
    pub listen: Option<String>,
    /// Use PostgreSQL instead of the embedded store.
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Data directory for the demo instance.
    #[arg(long, default_value = "tenantflow-demo")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// projects, tenants, tasks, workflows, launchplans, executions, roles, bindings, tokens,
    /// attributes or schedules (singular forms and `lp`, `wf`, `exec` work too).
    /// `get execution NAME` shows its nodes; `get attributes -p P -d D [--workflow W |
    /// --launch-plan L]` the settings a run gets and where each comes from.
    pub resource: String,
    /// A name: one project or tenant, or an entity's versions.
    pub name: Option<String>,
    /// One version of a task, workflow or launch plan.
    pub version: Option<String>,
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    #[arg(short = 'd', long)]
    pub domain: Option<String>,
    /// The tenant, for roles, bindings and tokens.
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
    /// Stop after this many items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Executions in this phase only (QUEUED, RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT).
    #[arg(long)]
    pub phase: Option<String>,
    /// Attributes: for runs of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Attributes: for runs of this launch plan (`name` or `name@version`).
    #[arg(long)]
    pub launch_plan: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a project.
    Project {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated domains (default development,staging,production).
        #[arg(long, value_delimiter = ',')]
        domains: Option<Vec<String>>,
        /// Owning tenant (default: a tenant with the project's id).
        #[arg(long)]
        tenant: Option<String>,
        /// Labels as key=value; repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Mint a service-account credential in a tenant (printed once).
    Token {
        /// Service-account name.
        service_account: String,
        #[arg(short = 't', long)]
        tenant: String,
        /// Lifetime such as 90d; default: no expiry.
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Mint a platform service account's credential holding only the given platform
    /// permissions (printed once), e.g. a workspace service's with `workspaces:*`.
    ServiceAccount {
        name: String,
        /// `resource:action` patterns; repeatable.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Lifetime such as 90d; default: no expiry.
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Create a tenant.
    Tenant {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tier: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[arg(short = 'p', long)]
    pub project: String,
    #[arg(short = 'd', long)]
    pub domain: String,
    /// Version to register every document as.
    #[arg(long)]
    pub version: String,
    /// YAML or JSON files, or directories holding them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}
