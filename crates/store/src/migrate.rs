//! Schema migrations, applied in order at open, each in its own transaction and recorded in
//! `schema_migrations`. The SQL is portable between SQLite and PostgreSQL; a migration may
//! carry a PostgreSQL-only part. On PostgreSQL an advisory lock serialises concurrent starts.

use crate::{Backend, Error, Result, Store};
use sqlx::Acquire;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "foundation", sql: include_str!("../migrations/0001_foundation.sql") },
    Migration { version: 2, name: "access", sql: include_str!("../migrations/0002_access.sql") },
    Migration { version: 3, name: "access_generation", sql: include_str!("../migrations/0003_access_generation.sql") },
    Migration {
        version: 4,
        name: "registry_generation",
        sql: include_str!("../migrations/0004_registry_generation.sql"),
    },
    Migration { version: 5, name: "executions", sql: include_str!("../migrations/0005_executions.sql") },
    Migration { version: 6, name: "engine", sql: include_str!("../migrations/0006_engine.sql") },
    Migration { version: 7, name: "quotas", sql: include_str!("../migrations/0007_quotas.sql") },
    Migration {
        version: 8,
        name: "attributes_schedules",
        sql: include_str!("../migrations/0008_attributes_schedules.sql"),
    },
    Migration { version: 9, name: "workspaces", sql: include_str!("../migrations/0009_workspaces.sql") },
    Migration {
        version: 10,
        name: "workspace_lifecycle",
        sql: include_str!("../migrations/0010_workspace_lifecycle.sql"),
    },
    Migration { version: 11, name: "audit_usage", sql: include_str!("../migrations/0011_audit_usage.sql") },
];

const LOCK_KEY: i64 = 0x7465_6e61_6e74; // "tenant"

pub async fn run(store: &Store) -> Result<()> {
    let mut conn = store.write.acquire().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK_KEY).execute(&mut *conn).await?;
    }
    let result = apply(&mut conn).await;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY).execute(&mut *conn).await?;
    }
    result
}

async fn apply(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut **conn)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version").fetch_all(&mut **conn).await?;
    if let Some(&newest) = applied.last() {
        let known = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
        if newest > known {
            return Err(Error::Migration(format!(
                "the database is at schema version {newest}, newer than this binary knows ({known}); upgrade tenantflow"
            )));
        }
    }
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
        crate::db::commit(tx).await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let listed: Vec<String> =
            super::MIGRATIONS.iter().map(|m| format!("{:04}_{}.sql", m.version, m.name)).collect();
        assert_eq!(files, listed);
    }
}
