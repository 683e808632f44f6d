//! Opening the store: connection pools for SQLite or PostgreSQL behind one `Any` query layer.
//!
//! SQLite gets a single-connection write pool (one writer, no `SQLITE_BUSY` storms) and a
//! read pool; PostgreSQL uses one pool for both.

use crate::{migrate, PlatformStore, Result, TenantStore};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Most connections to PostgreSQL, or SQLite readers.
    pub max_connections: u32,
}

impl StoreOptions {
    /// The embedded default: a SQLite file in `data_dir`.
    pub fn sqlite_in(data_dir: &Path) -> StoreOptions {
        StoreOptions { url: format!("sqlite://{}", data_dir.join("tenantflow.db").display()), max_connections: 8 }
    }

    pub fn url(url: impl Into<String>) -> StoreOptions {
        StoreOptions { url: url.into(), max_connections: 16 }
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects, applies pending migrations, and returns the store.
    pub async fn open(opts: &StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if opts.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if opts.url.starts_with("postgres:") || opts.url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(crate::Error::Precondition(format!(
                "unsupported database URL `{}`; expected sqlite://PATH or postgres://…",
                redact(&opts.url)
            )));
        };
        let store = match backend {
            Backend::Sqlite => {
                let url = if opts.url.contains('?') { opts.url.clone() } else { format!("{}?mode=rwc", opts.url) };
                let write = sqlite_pool(&url, 1).await?;
                // Set WAL once through the writer before readers connect.
                let read = sqlite_pool(&url, opts.max_connections.max(1)).await?;
                Store { read, write, backend }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&opts.url)
                    .await?;
                Store { read: pool.clone(), write: pool, backend }
            }
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Operations across tenants: tenants, tokens, the project directory.
    pub fn platform(&self) -> PlatformStore<'_> {
        PlatformStore { store: self }
    }

    /// Every query through the returned handle is confined to `tenant`.
    pub fn tenant(&self, tenant: &str) -> TenantStore<'_> {
        TenantStore { store: self, tenant: tenant.to_string() }
    }

    /// The access generation: it changes whenever projects, roles or bindings change.
    pub async fn access_generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM access_generation WHERE id = 1").fetch_one(&self.read).await?)
    }

    /// The registry generation: it changes whenever an entity is registered.
    pub async fn registry_generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM access_generation WHERE id = 2").fetch_one(&self.read).await?)
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn: &mut AnyConnection, _| {
            Box::pin(async move {
                // WAL: readers never block the writer. synchronous=FULL: a committed write
                // survives power loss, not only a process crash.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// A database URL with any password removed, safe to log or show.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Bumps the access generation inside the caller's transaction.
pub(crate) async fn bump_access(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE access_generation SET value = value + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}

/// Bumps the registry generation inside the caller's transaction.
pub(crate) async fn bump_registry(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE access_generation SET value = value + 1 WHERE id = 2").execute(&mut **tx).await?;
    Ok(())
}

/// Commits a write transaction, appending the running request's audit entry (if one is
/// waiting) to it first: the change and its record commit together or not at all.
pub(crate) async fn commit(mut tx: sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    let pending = crate::audit::take_pending();
    if let Some(e) = &pending {
        if let Err(err) = crate::audit::append(&mut tx, e).await {
            crate::audit::restore_pending(e.clone());
            return Err(err);
        }
    }
    if let Err(err) = tx.commit().await {
        if let Some(e) = pending {
            crate::audit::restore_pending(e);
        }
        return Err(err.into());
    }
    Ok(())
}

/// One statement as its own write transaction, committed through [`commit`].
pub(crate) trait ExecuteAudited {
    async fn execute_audited(self, store: &Store) -> Result<sqlx::any::AnyQueryResult>;
}

impl<'q> ExecuteAudited for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    async fn execute_audited(self, store: &Store) -> Result<sqlx::any::AnyQueryResult> {
        let mut tx = store.write.begin().await?;
        let r = self.execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            // Nothing changed: no change to record (the request's entry stays for its outcome).
            tx.rollback().await?;
        } else {
            commit(tx).await?;
        }
        Ok(r)
    }
}
