//! `tenantflow demo`: the newcomer's first command. Serves on the embedded store, sets up the
//! seed's teams and projects, registers the example workflows, runs Team Alpha's workflow end
//! to end on a sample CSV in the team's data area, and says what to try next.
//! Running it again on the same data dir is harmless: every step is idempotent.

use super::serve::{init_logging, start, stop_signal};
use crate::cli::DemoArgs;
use crate::client::Client;
use crate::commands::CliError;
use serde_json::json;
use tf_server::{ServerOptions, ADMIN_TOKEN_FILE};

/// The seed's teams and their projects with domains (seed: flyte-multi-tenant-architecture.md).
/// (id, display name, domains)
type SeedProject = (&'static str, &'static str, &'static [&'static str]);

const TEAMS: &[(&str, &str, &[SeedProject])] = &[
    (
        "team-alpha",
        "Team Alpha",
        &[
            ("ml-alpha", "Machine Learning - Team Alpha", &["development", "staging", "production"]),
            ("web-alpha", "Web Services - Team Alpha", &["development", "production"]),
        ],
    ),
    (
        "team-beta",
        "Team Beta",
        &[
            ("data-beta", "Data Processing - Team Beta", &["development", "production"]),
            ("api-beta", "API Services - Team Beta", &["development", "production"]),
        ],
    ),
    (
        "team-gamma",
        "Team Gamma",
        &[
            ("analytics-gamma", "Analytics - Team Gamma", &["development", "production"]),
            ("reports-gamma", "Reports - Team Gamma", &["development", "production"]),
        ],
    ),
];

/// The guide's `projects:`, `authorization:` and `admin:` blocks.
const SEED_ACCESS: &str = include_str!("../../../../examples/seed-access.yaml");

/// Sample input for Team Alpha's workflow: rows with a category and numeric columns.
const SAMPLE_CSV: &str = "category,value,weight\nalpha,1.5,10\nalpha,2.5,30\nbeta,4,5\nbeta,6,15\ngamma,10,1\n";

/// Example bundles shipped in the binary: (project, domain, file name, text).
const EXAMPLES: &[(&str, &str, &str, &str)] = &[
    ("ml-alpha", "development", "alpha-ml-workflow.yaml", include_str!("../../../../examples/alpha-ml-workflow.yaml")),
    ("data-beta", "development", "beta-daily-report.yaml", include_str!("../../../../examples/beta-daily-report.yaml")),
];

async fn ok_if_exists(r: Result<serde_json::Value, CliError>) -> Result<(), CliError> {
    match r {
        Ok(_) => Ok(()),
        Err(CliError::Api { code, .. }) if code == "already_exists" => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn run(args: &DemoArgs, started: std::time::Instant) -> Result<(), CliError> {
    init_logging("text", "warn");
    let listen =
        args.listen.parse().map_err(|_| CliError::Usage(format!("--listen: `{}` is not an address", args.listen)))?;
    let opts = ServerOptions {
        listen,
        data_dir: args.data_dir.clone(),
        database_url: None,
        max_body_bytes: 16 << 20,
        auth: Default::default(),
        executor: Default::default(),
        storage: Default::default(),
        workspaces: Default::default(),
        audit: Default::default(),
    };
    let server = start(&opts).await?;
    let token_path = args.data_dir.join(ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&token_path).map_err(|e| {
        CliError::Failed(format!(
            "cannot read {}: {e}; remove {} to start the demo afresh",
            token_path.display(),
            args.data_dir.display()
        ))
    })?;
    let url = format!("http://{}", server.addr);
    let client = Client::new(url.clone(), Some(token.trim().to_string()));
    for (tenant, name, projects) in TEAMS {
        ok_if_exists(
            client.post_json("/api/v1/tenants", &json!({"id": tenant, "name": name, "tier": "standard"})).await,
        )
        .await?;
        for (id, pname, domains) in *projects {
            let body = json!({"id": id, "name": pname, "tenant": tenant, "domains": domains, "description": format!("{pname} workflows")});
            ok_if_exists(client.post_json("/api/v1/projects", &body).await).await?;
        }
    }
    // The guide's roles and user/group bindings, exactly as it writes them.
    let seed = super::apply::parse_docs(SEED_ACCESS)?;
    println!("applying examples/seed-access.yaml:");
    super::apply::apply_docs(&client, &seed, false).await?;
    for (project, domain, file, text) in EXAMPLES {
        let path = format!("/api/v1/register/{project}/{domain}?version=v1");
        client.post_raw(&path, "application/yaml", text.as_bytes().to_vec()).await?;
        println!("registered examples/{file} into {project}/{domain} as v1");
    }
    // Team Alpha's workflow, for real: a sample CSV in the team's data area, the nightly plan
    // launched now, in the sandbox.
    let sample = server.engine().data_dir("team-alpha").join("data");
    std::fs::create_dir_all(&sample).map_err(|e| CliError::Failed(format!("cannot write sample data: {e}")))?;
    std::fs::write(sample.join("in.csv"), SAMPLE_CSV)
        .map_err(|e| CliError::Failed(format!("cannot write sample data: {e}")))?;
    let e =
        client.post_json("/api/v1/executions/ml-alpha/development", &json!({"launch_plan": "alpha-nightly"})).await?;
    let name = e["name"].as_str().unwrap_or_default().to_string();
    let done = client.get(&format!("/api/v1/executions/ml-alpha/development/{name}?wait=60")).await?;
    println!(
        "ran alpha-nightly in ml-alpha/development as {name}: {} in {} ms; result: {}",
        done["phase"].as_str().unwrap_or("?"),
        done["duration_ms"],
        done["outputs"]["result"].as_str().or(done["error"].as_str()).unwrap_or("-")
    );
    let dir = args.data_dir.display();
    println!(
        "\ntenantflow demo is serving on {url} (ready in {:.0} ms); data in {dir}\n\
         Teams alpha, beta and gamma own the seed's projects. In another terminal:\n\n\
         \x20 export TENANTFLOW_URL={url}\n\
         \x20 export TENANTFLOW_TOKEN_FILE={dir}/{ADMIN_TOKEN_FILE}\n\
         \x20 tenantflow get tenants\n\
         \x20 tenantflow get projects\n\
         \x20 tenantflow get workflows -p ml-alpha -d development\n\
         \x20 tenantflow get workflow alpha-ml-workflow v1 -p ml-alpha -d development -o yaml\n\
         \x20 tenantflow get launchplans -p data-beta -d development\n\
         \x20 tenantflow get roles -t team-alpha\n\
         \x20 tenantflow auth explain --user alice@company.com --permission workflows:create -p ml-alpha -d production\n\
         \x20 tenantflow register -p ml-alpha -d development --version v2 examples/alpha-ml-workflow.yaml\n\
         \x20 curl -H \"Authorization: Bearer $(cat {dir}/{ADMIN_TOKEN_FILE})\" {url}/api/openapi.json\n\n\
         Press Ctrl-C to stop.",
        started.elapsed().as_secs_f64() * 1000.0
    );
    server.wait(stop_signal()).await.map_err(|e| CliError::Failed(format!("server failed: {e}")))
}
