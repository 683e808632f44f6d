//! The binary itself: `serve` on an empty data dir, `demo`, and client commands against them.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tenantflow");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server at {url} did not come up");
}

/// `tenantflow serve` on a fresh data dir; the server dies with the guard.
fn serve(dir: &std::path::Path) -> (Killed, String, std::path::PathBuf) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.join("data");
    let child = Command::new(BIN)
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Killed(child);
    wait_ready(&url);
    (guard, url, data.join("admin-token"))
}

fn cli(url: &str, token_file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("TENANTFLOW_URL", url)
        .env("TENANTFLOW_TOKEN_FILE", token_file)
        .env_remove("TENANTFLOW_TOKEN")
        .env("HOME", token_file.parent().unwrap())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn serve_writes_a_private_admin_credential_and_cli_works() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, url, token) = serve(dir.path());
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (code, out, err) = cli(&url, &token, &["create", "project", "ml-alpha", "--tenant-auto"]);
    assert_eq!(code, 2, "unknown flag is a usage error: {out}{err}");
    let (code, out, err) = cli(
        &url,
        &token,
        &["create", "project", "ml-alpha", "--domains", "development,production", "--label", "team=alpha"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ml-alpha") && out.contains("development,production"), "{out}");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/alpha-ml-workflow.yaml");
    let (code, out, err) =
        cli(&url, &token, &["register", "-p", "ml-alpha", "-d", "development", "--version", "v1", examples]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("created").count(), 4, "{out}");
    let (code, out, _) = cli(&url, &token, &["get", "workflows", "-p", "ml-alpha", "-d", "development", "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "alpha-ml-workflow");
    let (code, out, _) = cli(
        &url,
        &token,
        &["get", "workflow", "alpha-ml-workflow", "v1", "-p", "ml-alpha", "-d", "development", "-o", "yaml"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("name: alpha-ml-workflow"), "{out}");
    // Errors go to stderr with the API's code, and a non-zero exit.
    let (code, out, err) = cli(&url, &token, &["get", "workflow", "nope", "v1", "-p", "ml-alpha", "-d", "development"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("not_found"), "{err}");
    let (code, _, err) = cli(&url, &dir.path().join("missing-token"), &["get", "projects"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli("http://127.0.0.1:1", &token, &["get", "projects"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn demo_sets_up_the_seed_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("demo");
    let mut child = Command::new(BIN)
        .args(["demo", "--data-dir", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let mut printed = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert!(printed.contains("tenantflow get workflows -p ml-alpha -d development"), "{printed}");
    let token = data.join("admin-token");
    let (code, out, err) = cli(&url, &token, &["get", "projects", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let projects: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = projects.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    for want in ["ml-alpha", "web-alpha", "data-beta", "api-beta", "analytics-gamma"] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    let (code, out, _) = cli(&url, &token, &["get", "launchplans", "-p", "data-beta", "-d", "development"]);
    assert_eq!(code, 0);
    assert!(out.contains("beta-daily"), "{out}");
    let (code, out, _) = cli(&url, &token, &["get", "roles", "-t", "team-alpha"]);
    assert_eq!(code, 0);
    assert!(out.contains("alpha-developer") && out.contains("alpha-senior"), "{out}");
    if !crate::engine::can_run() {
        return;
    }
    // The demo ran Team Alpha's workflow end to end.
    assert!(
        printed.contains("ran alpha-nightly in ml-alpha/development as") && printed.contains(": SUCCEEDED in"),
        "{printed}"
    );
    let (code, out, err) =
        cli(&url, &token, &["get", "executions", "-p", "ml-alpha", "-d", "development", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let execs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = execs[0]["name"].as_str().unwrap().to_string();
    // run --wait with an input, get execution (node table), logs, relaunch, terminate.
    let (code, out, err) = cli(
        &url,
        &token,
        &[
            "run",
            "alpha-nightly",
            "-p",
            "ml-alpha",
            "-d",
            "development",
            "--input",
            "input_path=data/in.csv",
            "--name",
            "cli-run",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("SUCCEEDED: nodes"), "progress on stderr: {err}");
    assert!(out.contains("load") && out.contains("process") && out.contains("SUCCEEDED"), "node table: {out}");
    let (code, out, err) = cli(&url, &token, &["get", "execution", &first, "-p", "ml-alpha", "-d", "development"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NODE") && out.contains("DURATION MS"), "{out}");
    let (code, _, err) = cli(&url, &token, &["logs", "cli-run", "process", "-p", "ml-alpha", "-d", "development"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        cli(&url, &token, &["relaunch", "cli-run", "-p", "ml-alpha", "-d", "development", "--wait", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"relaunch_of\": \"cli-run\""), "{out}");
    let (code, _, err) =
        cli(&url, &token, &["run", "alpha-nightly", "-p", "ml-alpha", "-d", "development", "--input", "nope=1"]);
    assert_eq!(code, 1);
    assert!(err.contains("inputs.nope"), "{err}");
    let (code, _, err) = cli(&url, &token, &["terminate", &first, "-p", "ml-alpha", "-d", "development"]);
    assert_eq!(code, 1, "already finished: {err}");
    assert!(err.contains("already finished"), "{err}");
}

#[test]
fn apply_takes_the_guides_blocks_as_written_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, url, token) = serve(dir.path());
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed-access.yaml");

    // Dry run: says what it would do, writes nothing.
    let (code, out, err) = cli(&url, &token, &["apply", "-f", seed, "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("project/ml-alpha created (dry run)"), "{out}");
    assert!(out.contains("attributes/ml-alpha/development set (dry run)"), "{out}");
    assert!(out.contains("quota/team-gamma set (dry run)"), "{out}");
    assert!(err.contains("skipped: ") && err.contains("admin.clusters"), "what is not applied is named: {err}");
    assert!(err.contains("spec.hard.persistentvolumeclaims"), "{err}");
    let (_, out, _) = cli(&url, &token, &["get", "projects", "-o", "json"]);
    assert_eq!(out.trim(), "[]");

    let (code, out, err) = cli(&url, &token, &["apply", "-f", seed]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "tenant/team-alpha created",
        "tenant/team-beta created",
        "tenant/team-gamma created",
        "project/ml-alpha created",
        "role/team-alpha/alpha-developer created",
        "binding/team-alpha/alpha-developer/user:alice@company.com created",
        "binding/team-beta/beta-lead/group:team-beta-leads created",
        "attributes/ml-alpha/development set",
        "attributes/data-beta/production set",
        "quota/team-alpha set",
        "quota/team-gamma set",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    let (_, out, _) = cli(&url, &token, &["get", "project", "web-alpha", "-o", "json"]);
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["tenant"], "team-alpha");
    assert_eq!(p["name"], "Web Services - Team Alpha");

    // Applying again changes nothing.
    let (code, out, err) = cli(&url, &token, &["apply", "-f", seed]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(" created") && !out.contains(" configured"), "{out}");
    assert!(err.contains("0 change(s) applied"), "{err}");

    // The guide's numbers: ml-alpha runs at most 10 nodes at once in development, 5 in
    // production, as uid/gid 1000 — with where each value comes from.
    for (domain, p) in [("development", "10"), ("production", "5")] {
        let (code, out, err) = cli(&url, &token, &["get", "attributes", "-p", "ml-alpha", "-d", domain]);
        assert_eq!(code, 0, "{err}");
        let row = out.lines().find(|l| l.starts_with("max_parallelism")).unwrap_or_else(|| panic!("{out}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["max_parallelism", p, "project_domain_attributes", &format!("ml-alpha/{domain}")], "{out}");
        assert!(out.contains("security_context.run_as_user") && out.contains("1000"), "{out}");
    }

    // Explain names the role and binding that decide, or says none does.
    let args = [
        "auth",
        "explain",
        "--user",
        "bob@company.com",
        "--permission",
        "executions:terminate",
        "-p",
        "ml-alpha",
        "-d",
        "production",
    ];
    let (code, out, err) = cli(&url, &token, &args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("allowed: role `alpha-senior` bound to user bob@company.com"), "{out}");
    let args = [
        "auth",
        "explain",
        "--user",
        "alice@company.com",
        "--permission",
        "workflows:create",
        "-p",
        "ml-alpha",
        "-d",
        "production",
    ];
    let (_, out, _) = cli(&url, &token, &args);
    assert!(out.contains("denied") && out.contains("domain `production` is not in the role's domains"), "{out}");
    let args = [
        "auth",
        "explain",
        "--user",
        "someone@company.com",
        "--group",
        "team-beta-leads",
        "--permission",
        "executions:terminate",
        "-p",
        "data-beta",
        "-d",
        "production",
    ];
    let (_, out, _) = cli(&url, &token, &args);
    assert!(out.contains("allowed: role `beta-lead` bound to group team-beta-leads"), "{out}");

    // A native Tenant document with the seed's per-team quota: set once, then unchanged.
    let quota = dir.path().join("quota.yaml");
    std::fs::write(&quota, "kind: Tenant\nid: team-alpha\nquota: {cpu: 12, memory: 20Gi, running_tasks: 50}\n")
        .unwrap();
    let (code, out, err) = cli(&url, &token, &["apply", "-f", quota.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("quota/team-alpha") && out.contains("updated"), "{out}");
    let (_, out, _) = cli(&url, &token, &["apply", "-f", quota.to_str().unwrap()]);
    assert!(out.contains("quota/team-alpha") && out.contains("unchanged"), "{out}");
    let bad_quota = dir.path().join("bad-quota.yaml");
    std::fs::write(&bad_quota, "kind: Tenant\nid: team-alpha\nquota: {cpu: lots}\n").unwrap();
    let (code, _, err) = cli(&url, &token, &["apply", "-f", bad_quota.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("cpu"), "{err}");

    // A bad file is a usage error naming the document and field, and writes nothing.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "projects:\n  - id: x1\n    colour: red\n").unwrap();
    let (code, _, err) = cli(&url, &token, &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("document[0]: projects[0]") && err.contains("colour"), "{err}");
}

#[test]
fn workspace_commands_drive_a_workspace_through_its_life() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, url, admin) = serve(dir.path());
    let (code, out, err) = cli(&url, &admin, &["create", "service-account", "ws-svc", "--permission", "workspaces:*"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("platform service account ws-svc (workspaces:*)"), "{err}");
    let svc = dir.path().join("svc-token");
    std::fs::write(&svc, out.trim()).unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/workspace-churn.yaml");

    let (code, out, err) = cli(&url, &svc, &["workspace", "apply", "-f", example]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "workspace ws-churn-001 created (ready)");
    let (_, out, _) = cli(&url, &svc, &["workspace", "apply", "-f", example]);
    assert_eq!(out.trim(), "workspace ws-churn-001 unchanged (ready)");
    let (code, out, _) = cli(&url, &svc, &["workspace", "get", "ws-churn-001"]);
    assert_eq!(code, 0);
    assert!(out.contains("Customer Churn Analysis") && out.contains("ready"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("alice@company.com") && l.contains("owner") && l.contains("yes")),
        "{out}"
    );

    let (code, out, err) = cli(
        &url,
        &svc,
        &[
            "workspace",
            "members",
            "ws-churn-001",
            "--remove",
            "bob@company.com",
            "--add",
            "carol@company.com=contributor",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("carol@company.com") && !out.contains("bob@"), "{out}");
    let (code, _, err) = cli(&url, &svc, &["workspace", "members", "ws-churn-001", "--add", "dan@company.com=admin"]);
    assert_eq!(code, 1, "a bad role is the API's 400");
    assert!(err.contains("members[2].role"), "{err}");
    let (_, out, _) = cli(&url, &svc, &["workspace", "get"]);
    assert!(out.lines().any(|l| l.starts_with("ws-churn-001") && l.contains("active")), "{out}");

    // The workspace service's credential reaches nothing else.
    let (code, _, err) = cli(&url, &svc, &["get", "tenants"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("permission denied"), "{err}");

    let (code, out, err) = cli(&url, &svc, &["workspace", "delete", "ws-churn-001", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deleting") && out.contains("retained"), "{out}");
    let (_, out, _) = cli(&url, &admin, &["get", "projects", "-o", "json"]);
    assert_eq!(out.trim(), "[]", "the workspace's project is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_usage_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (_guard, url, admin) = serve(dir.path());
    let (code, out, err) = cli(&url, &admin, &["create", "project", "audited-p"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&url, &admin, &["audit", "list", "-t", "audited-p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l.contains("POST /api/v1/projects") && l.contains("ok")), "{out}");
    let file = dir.path().join("audit.jsonl");
    let (code, _, err) = cli(&url, &admin, &["audit", "export", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|r| r["action"] == "POST /api/v1/projects" && r["tenant"] == "audited-p"), "{lines:?}");
    assert!(err.contains(&format!("{} records exported", lines.len())), "{err}");
    let (code, out, err) = cli(&url, &admin, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("records verified"), "{out}");
    let (code, out, err) = cli(&url, &admin, &["usage", "-t", "audited-p", "--window", "day"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("TOTAL") && out.contains("tenant audited-p"), "{out}");

    // An edit made behind the server's back is found.
    sqlx::any::install_default_drivers();
    let db = format!("sqlite://{}", dir.path().join("data/tenantflow.db").display());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db).await.unwrap();
    sqlx::query("UPDATE audit_events SET outcome = 'denied' WHERE tenant_id = 'audited-p' AND seq = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    let (code, out, err) = cli(&url, &admin, &["audit", "verify", "-t", "audited-p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("record 1: its content does not match its hash"), "{out}");
    assert!(err.contains("does not verify"), "{err}");
}
