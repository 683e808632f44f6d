//! Cross-tenant operations: tenants, credentials and the project directory. Nothing here
//! returns another tenant's registered entities; that is [`crate::TenantStore`]'s job.

use crate::db::ExecuteAudited;
use crate::records::{Project, QuotaRecord, Tenant, TenantState};
use crate::tenant::project_from_row;
use crate::{now_ms, Error, Page, PageRequest, Result, Store};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;

pub struct PlatformStore<'a> {
    pub(crate) store: &'a Store,
}

/// A credential as the store knows it; the secret itself is never stored.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TokenInfo {
    pub id: String,
    /// `platform_admin`, `service_account` or `user`.
    pub kind: String,
    pub subject: String,
    pub tenant: Option<String>,
    pub description: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// For a platform service account: the platform permissions it holds (and nothing else).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

/// A freshly minted credential: `secret` is shown once and only its hash is kept.
pub struct NewToken {
    pub info: TokenInfo,
    pub secret: String,
}

/// Secrets look like `tf_<id>_<random>`; the hash is over the whole secret.
/// The credential kind of a platform service account.
pub const PLATFORM_SERVICE_ACCOUNT: &str = "platform_service_account";

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const TOKEN_COLUMNS: &str =
    "id, kind, subject, tenant_id, description, created_at, expires_at, last_used_at, permissions";

fn token_from_row(r: &AnyRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        tenant: r.try_get("tenant_id")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        permissions: match r.try_get::<Option<String>, _>("permissions")? {
            Some(p) => serde_json::from_str(&p)?,
            None => vec![],
        },
    })
}

pub(crate) fn tenant_from_row(r: &AnyRow) -> Result<Tenant> {
    let state: String = r.try_get("state")?;
    let labels: String = r.try_get("labels")?;
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        tier: r.try_get("tier")?,
        state: TenantState::parse(&state).ok_or_else(|| Error::Corrupt(format!("tenant state `{state}`")))?,
        labels: serde_json::from_str(&labels)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Only touch `last_used_at` when it is this stale, so authentication stays a read.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Everything authorisation needs in memory, read in three queries.
pub struct PolicySnapshot {
    pub roles: Vec<crate::RoleRecord>,
    pub bindings: Vec<crate::BindingRecord>,
    /// (project, tenant)
    pub projects: Vec<(String, String)>,
}

impl PlatformStore<'_> {
    /// Platform roles (not tied to a tenant) and their bindings.
    pub fn roles(&self) -> crate::RoleStore<'_> {
        crate::RoleStore { store: self.store, key: String::new() }
    }

    /// Every role, binding and project owner: the authorisation index is built from this.
    pub async fn policy_snapshot(&self) -> Result<PolicySnapshot> {
        let roles = sqlx::query("SELECT * FROM roles").fetch_all(&self.store.read).await?;
        let bindings = sqlx::query("SELECT * FROM role_bindings").fetch_all(&self.store.read).await?;
        let projects = sqlx::query("SELECT id, tenant_id FROM projects").fetch_all(&self.store.read).await?;
        Ok(PolicySnapshot {
            roles: roles.iter().map(crate::access::role_from_row).collect::<Result<_>>()?,
            bindings: bindings.iter().map(crate::access::binding_from_row).collect::<Result<_>>()?,
            projects: projects
                .iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("tenant_id")?)))
                .collect::<Result<_>>()?,
        })
    }

    /// Credentials of a tenant (or platform-wide ones with `None`), newest first.
    pub async fn list_tokens(&self, tenant: &str) -> Result<Vec<TokenInfo>> {
        self.live_tokens("tenant_id = $1", tenant).await
    }

    /// Live credentials matching `filter` (one `$1` parameter), newest first.
    async fn live_tokens(&self, filter: &str, arg: &str) -> Result<Vec<TokenInfo>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE {filter} AND revoked_at IS NULL ORDER BY created_at DESC"
        ))
        .bind(arg)
        .fetch_all(&self.store.read)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Live credentials minted for one user, newest first.
    pub async fn list_user_tokens(&self, subject: &str) -> Result<Vec<TokenInfo>> {
        self.live_tokens("kind = 'user' AND subject = $1", subject).await
    }

    /// Revokes one of a user's own credentials; false when they have no such live credential.
    pub async fn revoke_user_token(&self, subject: &str, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND kind = 'user' AND subject = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(subject)
        .execute_audited(self.store)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Revokes a tenant's credential; false when the tenant has no such live credential.
    pub async fn revoke_tenant_token(&self, tenant: &str, id: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .bind(tenant)
                .execute_audited(self.store)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        tier: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Tenant> {
        let now = now_ms();
        let res = sqlx::query(
            "INSERT INTO tenants (id, name, tier, state, labels, created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $5, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(tier)
        .bind(serde_json::to_string(labels)?)
        .bind(now)
        .execute_audited(self.store)
        .await;
        match res {
            Ok(_) => self.get_tenant(id).await?.ok_or_else(|| Error::Corrupt("tenant vanished".into())),
            Err(Error::Backend(e)) if Error::is_unique_violation(&e) => {
                Err(Error::Conflict(format!("tenant `{id}` already exists")))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1").bind(id).fetch_optional(&self.store.read).await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Sets a tenant's quota (replacing the previous one).
    pub async fn set_quota(&self, tenant: &str, q: &QuotaRecord) -> Result<()> {
        let mut tx = self.store.write.begin().await?;
        upsert_quota(&mut tx, tenant, q, now_ms()).await?;
        crate::db::commit(tx).await
    }

    /// A tenant's quota; unlimited when none was set.
    pub async fn get_quota(&self, tenant: &str) -> Result<QuotaRecord> {
        let row = sqlx::query("SELECT * FROM tenant_quotas WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.store.read)
            .await?;
        Ok(row.as_ref().map(quota_from_row).transpose()?.map(|(_, q)| q).unwrap_or_default())
    }

    /// Every tenant with its tier and quota (unlimited when none was set), for the engine's
    /// admission queue: one query however many tenants there are.
    pub async fn all_quotas(&self) -> Result<Vec<(String, String, QuotaRecord)>> {
        let rows = sqlx::query(
            "SELECT t.id AS tenant_id, t.tier, q.cpu_millis, q.memory_bytes, q.running_tasks, q.running_executions, \
             q.stored_bytes, q.weight FROM tenants t LEFT JOIN tenant_quotas q ON q.tenant_id = t.id ORDER BY t.id",
        )
        .fetch_all(&self.store.read)
        .await?;
        rows.iter()
            .map(|r| {
                let (t, q) = quota_from_row(r)?;
                Ok((t, r.try_get("tier")?, q))
            })
            .collect()
    }

    pub async fn list_tenants(&self, page: &PageRequest) -> Result<Page<Tenant>> {
        let sql = "SELECT * FROM tenants WHERE id > $1 ORDER BY id LIMIT $2";
        crate::page::by_id(&self.store.read, sql, &[], page, tenant_from_row, |t| t.id.clone()).await
    }

    /// Which tenant owns project `id` — the one lookup that is not tenant-scoped, because a
    /// request names only the project. Callers must authorise before revealing anything.
    pub async fn project_owner(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT tenant_id FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.store.read)
            .await?)
    }

    /// All projects of all tenants, for platform administrators.
    pub async fn list_all_projects(&self, page: &PageRequest) -> Result<Page<Project>> {
        let sql = "SELECT * FROM projects WHERE id > $1 ORDER BY id LIMIT $2";
        crate::page::by_id(&self.store.read, sql, &[], page, project_from_row, |p| p.id.clone()).await
    }

    /// Every project of every tenant, for the server's in-memory project directory.
    pub async fn all_projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query("SELECT * FROM projects ORDER BY id").fetch_all(&self.store.read).await?;
        rows.iter().map(project_from_row).collect()
    }

    /// The projects with these ids, in id order — for listings whose visible ids the caller
    /// already computed from the access index.
    pub async fn projects_by_ids(&self, ids: &[String]) -> Result<Vec<Project>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT * FROM projects WHERE id IN ({}) ORDER BY id", placeholders.join(", "));
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.store.read).await?;
        rows.iter().map(project_from_row).collect()
    }

    /// Mints a credential. Only its hash is stored.
    pub async fn create_token(
        &self,
        kind: &str,
        subject: &str,
        tenant: Option<&str>,
        description: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken> {
        self.mint(kind, subject, tenant, description, expires_at, &[]).await
    }

    /// Mints a platform service account's credential holding only `permissions` (platform-wide,
    /// e.g. `workspaces:*`).
    pub async fn create_platform_service_account(
        &self,
        name: &str,
        permissions: &[String],
        description: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken> {
        self.mint(PLATFORM_SERVICE_ACCOUNT, name, None, description, expires_at, permissions).await
    }

    /// Live platform service-account credentials, newest first.
    pub async fn list_platform_service_accounts(&self) -> Result<Vec<TokenInfo>> {
        self.live_tokens("kind = $1", PLATFORM_SERVICE_ACCOUNT).await
    }

    /// Revokes a platform service account's credential; false when there is no such live one.
    pub async fn revoke_platform_service_account(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND kind = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .bind(PLATFORM_SERVICE_ACCOUNT)
            .execute_audited(self.store)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn mint(
        &self,
        kind: &str,
        subject: &str,
        tenant: Option<&str>,
        description: &str,
        expires_at: Option<i64>,
        permissions: &[String],
    ) -> Result<NewToken> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        {
            let mut rng = rand::thread_rng();
            rng.fill_bytes(&mut id);
            rng.fill_bytes(&mut secret);
        }
        let id = hex::encode(id);
        let secret = format!("tf_{id}_{}", hex::encode(secret));
        let now = now_ms();
        sqlx::query(
            "INSERT INTO tokens (id, hash, kind, subject, tenant_id, description, created_at, expires_at, permissions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(hash_secret(&secret))
        .bind(kind)
        .bind(subject)
        .bind(tenant)
        .bind(description)
        .bind(now)
        .bind(expires_at)
        .bind((!permissions.is_empty()).then(|| serde_json::to_string(permissions)).transpose()?)
        .execute_audited(self.store)
        .await?;
        let info = TokenInfo {
            id,
            kind: kind.into(),
            subject: subject.into(),
            tenant: tenant.map(str::to_string),
            description: description.into(),
            created_at: now,
            expires_at,
            last_used_at: None,
            permissions: permissions.to_vec(),
        };
        Ok(NewToken { info, secret })
    }

    /// The live credential with this secret, if any: not revoked, not expired.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(hash_secret(secret))
        .bind(now)
        .fetch_optional(&self.store.read)
        .await?;
        let Some(info) = row.as_ref().map(token_from_row).transpose()? else { return Ok(None) };
        if info.last_used_at.is_none_or(|t| now - t > LAST_USED_RESOLUTION_MS) {
            sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&info.id)
                .execute_audited(self.store)
                .await?;
        }
        Ok(Some(info))
    }

    pub async fn count_tokens(&self, kind: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = $1 AND revoked_at IS NULL")
            .bind(kind)
            .fetch_one(&self.store.read)
            .await?)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute_audited(self.store)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

pub(crate) fn quota_from_row(r: &AnyRow) -> Result<(String, QuotaRecord)> {
    Ok((
        r.try_get("tenant_id")?,
        QuotaRecord {
            cpu_millis: r.try_get("cpu_millis")?,
            memory_bytes: r.try_get("memory_bytes")?,
            running_tasks: r.try_get("running_tasks")?,
            running_executions: r.try_get("running_executions")?,
            stored_bytes: r.try_get("stored_bytes")?,
            weight: r.try_get("weight")?,
        },
    ))
}

/// Sets `tenant`'s quota on `conn` (a connection or a transaction's).
pub(crate) async fn upsert_quota(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    q: &QuotaRecord,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenant_quotas (tenant_id, cpu_millis, memory_bytes, running_tasks, running_executions, stored_bytes, weight, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id) DO UPDATE SET cpu_millis = $2, memory_bytes = $3, \
         running_tasks = $4, running_executions = $5, stored_bytes = $6, weight = $7, updated_at = $8",
    )
    .bind(tenant)
    .bind(q.cpu_millis)
    .bind(q.memory_bytes)
    .bind(q.running_tasks)
    .bind(q.running_executions)
    .bind(q.stored_bytes)
    .bind(q.weight)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
