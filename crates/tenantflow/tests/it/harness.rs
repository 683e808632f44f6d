//! Test harness: stores on SQLite and PostgreSQL, a real server per test, an HTTP client.

use reqwest::StatusCode;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;
use tf_server::{RunningServer, ServerOptions};
use tf_store::{Store, StoreOptions};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn require_all() -> bool {
    std::env::var("TENANTFLOW_REQUIRE_ALL").is_ok_and(|v| v == "1" || v == "true")
}

/// A fresh database on a backend, and the data dir that goes with it.
pub struct TestDb {
    pub url: Option<String>,
    pub dir: TempDir,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The backends to run on: SQLite always; PostgreSQL when configured (required in CI).
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    match std::env::var("TENANTFLOW_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => v.push(Backend::Postgres),
        _ if require_all() => {
            panic!("TENANTFLOW_REQUIRE_ALL=1 but TENANTFLOW_TEST_DATABASE_URL is not set: PostgreSQL tests cannot run")
        }
        _ => {
            eprintln!("note: PostgreSQL tests skipped (set TENANTFLOW_TEST_DATABASE_URL; see scripts/test-postgres.sh)")
        }
    }
    v
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = std::env::var("TENANTFLOW_TEST_DATABASE_URL").expect("postgres url");
                // Unique across runs too: a reused PostgreSQL may keep an earlier run's databases,
                // and process ids repeat.
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
                let name = format!(
                    "tf_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    nanos % 1_000_000_000_000
                );
                sqlx::any::install_default_drivers();
                let mut conn =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.expect("connect to test postgres");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).expect("url has a database");
                Some(format!("{base}/{name}"))
            }
        };
        TestDb { url, dir }
    }

    pub async fn store(&self) -> Store {
        let opts = match &self.url {
            Some(u) => StoreOptions::url(u.clone()),
            None => StoreOptions::sqlite_in(self.dir.path()),
        };
        Store::open(&opts).await.expect("open store")
    }
}

/// A real server on a loopback port.
pub struct TestServer {
    /// Keeps the data dir (and its database) alive while the server runs.
    _db: TestDb,
    pub server: Option<RunningServer>,
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, Default::default()).await
    }

    pub async fn start_with(backend: Backend, auth: tf_server::AuthOptions) -> TestServer {
        Self::start_full(backend, auth, Default::default(), Default::default(), Default::default()).await
    }

    /// A server keeping its blobs where `storage` says.
    pub async fn start_with_storage(backend: Backend, storage: tf_server::StorageSettings) -> TestServer {
        Self::start_full(backend, Default::default(), storage, Default::default(), Default::default()).await
    }

    /// A server running up to `slots` attempts at once.
    pub async fn start_with_slots(backend: Backend, slots: usize) -> TestServer {
        let executor = tf_server::ExecutorSettings { slots: Some(slots), ..Default::default() };
        Self::start_full(backend, Default::default(), Default::default(), executor, Default::default()).await
    }

    pub async fn start_full(
        backend: Backend,
        auth: tf_server::AuthOptions,
        storage: tf_server::StorageSettings,
        executor: tf_server::ExecutorSettings,
        workspaces: tf_server::WorkspaceSettings,
    ) -> TestServer {
        let db = TestDb::new(backend).await;
        let opts = ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: db.dir.path().to_path_buf(),
            database_url: db.url.clone(),
            max_body_bytes: 1 << 20,
            auth,
            executor,
            storage,
            workspaces,
            audit: Default::default(),
        };
        let server = tf_server::start(&opts).await.expect("server starts");
        let admin =
            std::fs::read_to_string(db.dir.path().join("admin-token")).expect("admin token written").trim().to_string();
        let base = format!("http://{}", server.addr);
        // No pooled connections: a server may close one after refusing an oversize body.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        TestServer { _db: db, server: Some(server), base, admin, http }
    }

    /// Another server over the same database, as a second replica would be.
    pub async fn replica(&self) -> (RunningServer, String) {
        let opts = ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self._db.dir.path().to_path_buf(),
            database_url: self._db.url.clone(),
            max_body_bytes: 1 << 20,
            auth: Default::default(),
            executor: Default::default(),
            storage: Default::default(),
            workspaces: Default::default(),
            audit: Default::default(),
        };
        let r = tf_server::start(&opts).await.expect("replica starts");
        let base = format!("http://{}", r.addr);
        (r, base)
    }

    /// A tenant's data area on this server's host.
    pub fn data_dir(&self, tenant: &str) -> std::path::PathBuf {
        self.server.as_ref().expect("running").engine().data_dir(tenant)
    }

    /// The database URL, for tests that tamper with it directly.
    pub fn database_url(&self) -> String {
        match &self._db.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self._db.dir.path().join("tenantflow.db").display()),
        }
    }

    pub fn store(&self) -> &Store {
        self.server.as_ref().expect("running").store()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    /// Sends a request; returns status and JSON body (Null when not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        self.call_with_id(method, path, token, body, None).await
    }

    /// [`TestServer::call`] with the request id the client chooses (`X-Request-Id`).
    pub async fn call_with_id(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        request_id: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((ct, b)) = body {
            req = req.header("content-type", ct).body(b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let bytes = res.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(&self.admin), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(&self.admin), Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call("PUT", path, Some(&self.admin), Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn register(&self, project: &str, domain: &str, version: &str, yaml: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/register/{project}/{domain}?version={version}");
        self.call("POST", &path, Some(&self.admin), Some(("application/yaml", yaml.as_bytes().to_vec()))).await
    }

    /// Creates (or replaces) a role in `tenant` as the platform admin.
    pub async fn role(&self, tenant: &str, name: &str, perms: &[&str], projects: &[&str], domains: &[&str]) {
        let body = serde_json::json!({"permissions": perms, "projects": projects, "domains": domains});
        let (s, b) = self.put(&format!("/api/v1/tenants/{tenant}/roles/{name}"), &body).await;
        assert!(s.is_success(), "role {name}: {b}");
    }

    /// Binds a subject to a role as the platform admin.
    pub async fn bind(&self, tenant: &str, role: &str, kind: &str, subject: &str) {
        let body = serde_json::json!({"role": role, "subject_kind": kind, "subject": subject});
        let (s, b) = self.post(&format!("/api/v1/tenants/{tenant}/bindings"), &body).await;
        assert!(s.is_success(), "binding {role} → {subject}: {b}");
    }

    /// Mints a service-account credential in `tenant` bound to `role`.
    pub async fn service_account(&self, tenant: &str, name: &str, role: &str) -> String {
        let (s, b) =
            self.post(&format!("/api/v1/tenants/{tenant}/tokens"), &serde_json::json!({"service_account": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        self.bind(tenant, role, "service_account", name).await;
        b["token"].as_str().unwrap().to_string()
    }

    /// Creates a project (and its tenant) as the platform admin; panics unless created.
    pub async fn project(&self, id: &str, tenant: &str, domains: &[&str]) {
        let (s, b) =
            self.post("/api/v1/projects", &serde_json::json!({"id": id, "tenant": tenant, "domains": domains})).await;
        if s == StatusCode::BAD_REQUEST && b["message"].as_str().is_some_and(|m| m.contains("does not exist")) {
            let (s, b) = self.post("/api/v1/tenants", &serde_json::json!({"id": tenant})).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let (s, b) = self
                .post("/api/v1/projects", &serde_json::json!({"id": id, "tenant": tenant, "domains": domains}))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        } else {
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
    }
}

/// The seed's Team Alpha example, as shipped in examples/.
pub const ALPHA: &str = include_str!("../../../../examples/alpha-ml-workflow.yaml");
pub const BETA: &str = include_str!("../../../../examples/beta-daily-report.yaml");

/// Runs `f` against a fresh server on every available backend.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, |$srv:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in $crate::harness::backends() {
                let $srv = $crate::harness::TestServer::start(backend).await;
                let label = format!("{backend:?}");
                let fut = async { $body };
                fut.await;
                eprintln!("{} passed on {label}", stringify!($name));
            }
        }
    };
}
