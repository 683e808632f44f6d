//! The tenantflow HTTP API.
//!
//! Invariant: only this crate knows HTTP. Every route is declared once in [`table::routes`]
//! with the access it needs; the router, the authentication layer and the OpenAPI document are
//! all built from that table, so no route can exist without a declaration.

pub mod access;
pub mod audit;
mod auth;
pub mod authz;
mod bootstrap;
mod directory;
pub mod error;
mod extract;
mod listing_cache;
pub mod metrics;
pub mod oidc;
mod openapi;
mod refresh;
mod request_log;
mod routes;
pub mod table;
mod token_cache;
pub mod usage;
pub mod workspaces;

pub use audit::AuditSettings;
pub use auth::PlatformAdmins;
pub use bootstrap::{ensure_admin_credential, ADMIN_TOKEN_FILE};
pub use oidc::OidcOptions;
pub use table::RouteDef;
pub use workspaces::WorkspaceSettings;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tf_store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How to run the server; the binary fills this from defaults, file, env and flags.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL URL; the embedded SQLite store in `data_dir` when `None`.
    pub database_url: Option<String>,
    pub max_body_bytes: usize,
    pub auth: AuthOptions,
    pub executor: ExecutorSettings,
    pub storage: StorageSettings,
    pub workspaces: WorkspaceSettings,
    pub audit: audit::AuditSettings,
}

/// `executor:` in the configuration: how task attempts run on this host.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    /// `sandbox` (default: bubblewrap and cgroups) or `off` (plain processes; only when the
    /// operator explicitly accepts running tasks with the server's rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Attempts running at once (default: four per core, at least eight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    /// The bubblewrap binary (default `/usr/bin/bwrap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwrap: Option<PathBuf>,
}

/// `storage:` in the configuration: where inputs, outputs and logs are kept.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `file:///DIR` or `s3://BUCKET/PREFIX` (credentials and endpoint from `AWS_*`);
    /// default: `DATA_DIR/blobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_url: Option<String>,
}

impl ServerOptions {
    /// The engine's options from these settings.
    pub fn engine_options(&self) -> Result<tf_engine::EngineOptions, StartError> {
        let mut o = tf_engine::EngineOptions::new(&self.data_dir);
        o.blob_url = self.storage.blob_url.clone();
        match self.executor.isolation.as_deref() {
            None | Some("sandbox") => {}
            Some("off") => o.executor.isolation = tf_engine::Isolation::Off,
            Some(other) => {
                return Err(StartError(format!("executor.isolation must be `sandbox` or `off`, got `{other}`")))
            }
        }
        if let Some(n) = self.executor.slots {
            if n == 0 {
                return Err(StartError("executor.slots must be at least 1".into()));
            }
            o.slots = n;
        }
        if let Some(b) = &self.executor.bwrap {
            o.executor.bwrap = b.clone();
        }
        Ok(o)
    }
}

/// `auth:` in the configuration.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthOptions {
    /// Accept OIDC access tokens from this issuer.
    #[serde(default)]
    pub oidc: Option<OidcOptions>,
    /// Users and groups with platform-administrator rights.
    #[serde(default)]
    pub platform_admins: PlatformAdmins,
}

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub authz: Arc<authz::Authz>,
    pub(crate) oidc: Option<Arc<oidc::Verifier>>,
    pub(crate) admins: Arc<PlatformAdmins>,
    pub(crate) tokens: Arc<token_cache::TokenCache>,
    pub(crate) directory: Arc<directory::Directory>,
    pub(crate) generation: Arc<refresh::Generation>,
    pub(crate) listings: Arc<listing_cache::ListingCache>,
    pub(crate) access: Arc<HashMap<(Method, &'static str), access::Access>>,
    pub engine: Arc<tf_engine::Engine>,
    pub(crate) workspaces: Arc<workspaces::Workspaces>,
    pub(crate) usage: Arc<usage::Usage>,
    pub(crate) http_metrics: Arc<metrics::HttpMetrics>,
    pub(crate) audit_retention: Arc<audit::Retention>,
}

impl AppState {
    pub async fn new(
        store: Store,
        auth: &AuthOptions,
        engine: Arc<tf_engine::Engine>,
        workspaces: workspaces::Settings,
        audit_retention: audit::Retention,
    ) -> Result<AppState, StartError> {
        // Read the generation first: a change made while loading triggers a rebuild.
        let generation =
            store.access_generation().await.map_err(|e| StartError(format!("cannot read the store: {e}")))?;
        let registry =
            store.registry_generation().await.map_err(|e| StartError(format!("cannot read the store: {e}")))?;
        let authz =
            authz::Authz::load(&store).await.map_err(|e| StartError(format!("cannot load access rules: {e}")))?;
        let directory =
            directory::Directory::load(&store).await.map_err(|e| StartError(format!("cannot load projects: {e}")))?;
        let oidc = match &auth.oidc {
            Some(o) => Some(Arc::new(oidc::Verifier::new(o.clone()).map_err(|e| StartError(e.to_string()))?)),
            None => None,
        };
        let access = table::access_map();
        Ok(AppState {
            store,
            authz: Arc::new(authz),
            oidc,
            admins: Arc::new(auth.platform_admins.clone()),
            tokens: Arc::new(Default::default()),
            directory: Arc::new(directory),
            generation: Arc::new(refresh::Generation::new(generation)),
            listings: Arc::new(listing_cache::ListingCache::new(registry)),
            access: Arc::new(access),
            engine,
            workspaces: Arc::new(workspaces::Workspaces::new(workspaces)),
            usage: Default::default(),
            http_metrics: Default::default(),
            audit_retention: Arc::new(audit_retention),
        })
    }
}

/// The router over `state`, with every route of the table behind the authentication layer.
pub fn router(state: AppState, max_body_bytes: usize) -> axum::Router {
    let defs = table::routes();
    let mut r = axum::Router::new();
    for d in defs {
        r = r.route(d.path, d.handler);
    }
    r.fallback(routes::fallback)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), request_log::log))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(extract::MaxBody(max_body_bytes)))
        .with_state(state)
}

/// A server running in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The credential file written on first start, if this start wrote one.
    pub admin_token_written: Option<PathBuf>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    store: Store,
    refresher: tokio::task::JoinHandle<()>,
    /// The workspace reconciler and event sender, the usage flusher, audit retention.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Flushed at shutdown, so no counted call is lost by a clean stop.
    usage: Arc<usage::Usage>,
    engine: Arc<tf_engine::Engine>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, closes the store.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let r = (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.refresher.abort();
        self.background.iter().for_each(|t| t.abort());
        self.usage.flush(&self.store).await;
        self.engine.shutdown().await;
        self.store.close().await;
        r
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] or a fatal error).
    pub async fn wait(mut self, stop: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        tokio::select! {
            r = &mut self.task => {
                self.refresher.abort();
                self.background.iter().for_each(|t| t.abort());
                self.engine.shutdown().await;
                self.store.close().await;
                return r.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
            _ = stop => {}
        }
        self.shutdown().await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn engine(&self) -> &tf_engine::Engine {
        &self.engine
    }
}

/// Opens the store, makes sure a platform-admin credential exists, binds and starts serving.
pub async fn start(opts: &ServerOptions) -> Result<RunningServer, StartError> {
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| StartError(format!("cannot create data dir {}: {e}", opts.data_dir.display())))?;
    let store_opts = match &opts.database_url {
        Some(url) => StoreOptions::url(url.clone()),
        None => StoreOptions::sqlite_in(&opts.data_dir),
    };
    let store = Store::open(&store_opts).await.map_err(|e| StartError(format!("cannot open the store: {e}")))?;
    let admin_token_written = ensure_admin_credential(&store, &opts.data_dir).await?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| StartError(e.to_string()))?;
    let engine = tf_engine::Engine::start(store.clone(), opts.engine_options()?)
        .await
        .map_err(|e| StartError(format!("cannot start the engine: {e}")))?;
    let engine = Arc::new(engine);
    let ws = opts.workspaces.check(addr).map_err(StartError)?;
    let retention = opts.audit.check().map_err(StartError)?;
    let state = AppState::new(store.clone(), &opts.auth, engine.clone(), ws, retention).await?;
    let refresher = tokio::spawn(refresh::run(state.clone()));
    let mut background = workspaces::spawn(&state);
    background.push(tokio::spawn(usage::run(state.clone())));
    background.push(tokio::spawn(audit::retention(state.clone())));
    let usage = state.usage.clone();
    let app = router(state, opts.max_body_bytes);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        admin_token_written,
        shutdown: Some(tx),
        task,
        store,
        refresher,
        background,
        usage,
        engine,
    })
}

/// Why the server could not start; the message is for the operator, as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);
