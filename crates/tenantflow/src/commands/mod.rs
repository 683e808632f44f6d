//! One module per command. Client commands talk to the server over HTTP only.

pub(crate) mod apply;
mod audit;
mod auth;
mod bench;
mod bench_engine;
mod bench_fairness;
mod bench_workspaces;
mod demo;
mod executions;
mod get;
mod register;
mod serve;
mod workspace;

use crate::cli::{Cli, Command, CreateCommand};
use crate::client::Client;
use crate::config::resolve_connection;
use crate::output::print;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags, files or configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The API answered with an error: exit 1.
    #[error("{message} ({status} {code})")]
    Api { status: u16, code: String, message: String },
    /// The server could not be reached: exit 3.
    #[error("{0}")]
    Connect(String),
    /// Anything else that failed: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } | CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Connect(_) => 3,
        }
    }
}

pub async fn run(cli: Cli, started: std::time::Instant) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(&args, started).await,
        Command::Demo(args) => demo::run(&args, started).await,
        Command::Bench(args) => bench::run(&args).await,
        command => {
            let (url, token) = resolve_connection(&cli.conn)?;
            let client = Client::new(url, token);
            match command {
                Command::Get(args) => get::run(&client, &args, cli.output).await,
                Command::Create(c) => create(&client, c, cli.output).await,
                Command::Archive { kind, name } => {
                    if !matches!(kind.as_str(), "project" | "projects") {
                        return Err(CliError::Usage(format!("cannot archive `{kind}`; only `project`")));
                    }
                    let p = client.delete(&format!("/api/v1/projects/{name}")).await?;
                    print(cli.output, &p, get::PROJECT_COLUMNS);
                    Ok(())
                }
                Command::Register(args) => register::run(&client, &args, cli.output).await,
                Command::Apply(args) => apply::run(&client, &args).await,
                Command::Auth(c) => auth::run(&client, &c, cli.output).await,
                Command::Run(a) => executions::run(&client, &a, cli.output).await,
                Command::Logs(a) => executions::logs(&client, &a).await,
                Command::Terminate(a) => executions::terminate(&client, &a, cli.output).await,
                Command::Relaunch(a) => executions::relaunch(&client, &a, cli.output).await,
                Command::Activate(a) => get::set_launch_plan_state(&client, &a, true, cli.output).await,
                Command::Deactivate(a) => get::set_launch_plan_state(&client, &a, false, cli.output).await,
                Command::Workspace(c) => workspace::run(&client, c, cli.output).await,
                Command::Audit(c) => audit::run(&client, c, cli.output).await,
                Command::Usage(a) => audit::usage(&client, &a, cli.output).await,
                Command::Serve(_) | Command::Demo(_) | Command::Bench(_) => unreachable!("handled above"),
            }
        }
    }
}

async fn create(client: &Client, c: CreateCommand, format: crate::cli::Format) -> Result<(), CliError> {
    match c {
        CreateCommand::Project { id, name, description, domains, tenant, labels } => {
            let mut body = json!({"id": id});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(d) = domains {
                body["domains"] = json!(d);
            }
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            if !labels.is_empty() {
                body["labels"] = Value::Object(parse_labels(&labels)?);
            }
            let p = client.post_json("/api/v1/projects", &body).await?;
            print(format, &p, get::PROJECT_COLUMNS);
        }
        CreateCommand::Token { service_account, tenant, expires_in, description } => {
            let mut body = json!({"service_account": service_account});
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let t = client.post_json(&format!("/api/v1/tenants/{tenant}/tokens"), &body).await?;
            print_secret(format, &t, &format!("service account {service_account} in {tenant}"));
        }
        CreateCommand::ServiceAccount { name, permissions, expires_in, description } => {
            let mut body = json!({"name": name, "permissions": permissions});
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let t = client.post_json("/api/v1/service_accounts", &body).await?;
            print_secret(format, &t, &format!("platform service account {name} ({})", permissions.join(", ")));
        }
        CreateCommand::Tenant { id, name, tier } => {
            let mut body = json!({"id": id});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(t) = tier {
                body["tier"] = json!(t);
            }
            let t = client.post_json("/api/v1/tenants", &body).await?;
            print(format, &t, get::TENANT_COLUMNS);
        }
    }
    Ok(())
}

/// Prints a freshly minted credential: the secret alone on stdout, what it is on stderr.
fn print_secret(format: crate::cli::Format, t: &Value, what: &str) {
    match format {
        crate::cli::Format::Table => {
            eprintln!("credential {} for {what}; it is shown only now:", t["id"].as_str().unwrap_or("?"));
            println!("{}", t["token"].as_str().unwrap_or(""));
        }
        _ => print(format, t, &[]),
    }
}

fn parse_labels(labels: &[String]) -> Result<serde_json::Map<String, Value>, CliError> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), json!(v))),
            None => Err(CliError::Usage(format!("--label `{l}`: expected key=value"))),
        })
        .collect()
}
