//! Tenant-scoped data: projects and registered entities. Every statement here binds the
//! handle's tenant as its first parameter; there is no way to name another tenant's rows.

use crate::records::{
    Domain, EntityRecord, EntitySummary, NewProject, Project, ProjectState, ProjectUpdate, RegisterOutcome,
};
use crate::{now_ms, Error, Page, PageRequest, Result, Store};
use sqlx::any::AnyRow;
use sqlx::Row;
use tf_model::{CompiledBundle, EntityKind};

pub struct TenantStore<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: String,
}

impl TenantStore<'_> {
    /// This tenant's quota; unlimited when none was set.
    pub async fn quota(&self) -> Result<crate::QuotaRecord> {
        self.store.platform().get_quota(&self.tenant).await
    }

    /// Bytes this tenant's attempts have stored in blob storage.
    pub async fn stored_bytes(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT stored_bytes FROM tenant_storage WHERE tenant_id = $1")
            .bind(&self.tenant)
            .fetch_optional(&self.store.read)
            .await?;
        Ok(v.unwrap_or(0))
    }
}

pub(crate) fn project_from_row(r: &AnyRow) -> Result<Project> {
    let state: String = r.try_get("state")?;
    let labels: String = r.try_get("labels")?;
    let domains: String = r.try_get("domains")?;
    Ok(Project {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        labels: serde_json::from_str(&labels)?,
        domains: serde_json::from_str::<Vec<Domain>>(&domains)?,
        state: ProjectState::parse(&state).ok_or_else(|| Error::Corrupt(format!("project state `{state}`")))?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn entity_from_row(r: &AnyRow) -> Result<EntityRecord> {
    let spec: String = r.try_get("spec")?;
    let interface: String = r.try_get("interface")?;
    let compiled: Option<String> = r.try_get("compiled")?;
    Ok(EntityRecord {
        kind: r.try_get("kind")?,
        project: r.try_get("project")?,
        domain: r.try_get("domain")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        spec: serde_json::from_str(&spec)?,
        interface: serde_json::from_str(&interface)?,
        compiled: compiled.map(|c| serde_json::from_str(&c)).transpose()?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

const ENTITY_COLUMNS: &str =
    "kind, project, domain, name, version, digest, spec, interface, compiled, created_at, created_by";

impl TenantStore<'_> {
    pub fn tenant_id(&self) -> &str {
        &self.tenant
    }

    /// This tenant's roles and bindings.
    pub fn roles(&self) -> crate::RoleStore<'_> {
        crate::RoleStore { store: self.store, key: self.tenant.clone() }
    }

    /// Creates a project owned by this tenant; with `create_tenant`, creates the tenant too
    /// (same id, default tier) in the same transaction when it does not exist yet.
    pub async fn create_project(&self, p: &NewProject, create_tenant: bool) -> Result<Project> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
            .bind(&self.tenant)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            if !create_tenant {
                return Err(Error::NotFound(format!("tenant `{}` not found", self.tenant)));
            }
            sqlx::query("INSERT INTO tenants (id, name, tier, state, labels, created_at, updated_at) VALUES ($1, $1, 'standard', 'active', '{}', $2, $2)")
                .bind(&self.tenant)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let res = sqlx::query(
            "INSERT INTO projects (tenant_id, id, name, description, labels, domains, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)",
        )
        .bind(&self.tenant)
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(serde_json::to_string(&p.labels)?)
        .bind(serde_json::to_string(&p.domains)?)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if Error::is_unique_violation(&e) => {
                return Err(Error::Conflict(format!("project `{}` already exists", p.id)));
            }
            Err(e) => return Err(e.into()),
        }
        crate::db::bump_access(&mut tx).await?;
        crate::db::commit(tx).await?;
        self.get_project(&p.id).await?.ok_or_else(|| Error::Corrupt("project vanished".into()))
    }

    pub async fn get_project(&self, id: &str) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT * FROM projects WHERE tenant_id = $1 AND id = $2")
            .bind(&self.tenant)
            .bind(id)
            .fetch_optional(&self.store.read)
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    pub async fn list_projects(&self, page: &PageRequest) -> Result<Page<Project>> {
        let sql = "SELECT * FROM projects WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3";
        crate::page::by_id(&self.store.read, sql, &[&self.tenant], page, project_from_row, |p| p.id.clone()).await
    }

    /// Applies `u` to project `id`. Domains may be added or renamed, never removed: registered
    /// entities and executions live in them.
    pub async fn update_project(&self, id: &str, u: &ProjectUpdate) -> Result<Project> {
        let mut tx = self.store.write.begin().await?;
        let row = sqlx::query("SELECT * FROM projects WHERE tenant_id = $1 AND id = $2")
            .bind(&self.tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(mut p) = row.as_ref().map(project_from_row).transpose()? else {
            return Err(Error::NotFound(format!("project `{id}` not found")));
        };
        if let Some(domains) = &u.domains {
            if let Some(gone) = p.domains.iter().find(|d| !domains.iter().any(|n| n.id == d.id)) {
                return Err(Error::Conflict(format!(
                    "domain `{}` cannot be removed from project `{id}`; domains can only be added",
                    gone.id
                )));
            }
            p.domains = domains.clone();
        }
        if let Some(x) = &u.name {
            p.name = x.clone();
        }
        if let Some(x) = &u.description {
            p.description = x.clone();
        }
        if let Some(x) = &u.labels {
            p.labels = x.clone();
        }
        if let Some(x) = u.state {
            p.state = x;
        }
        p.updated_at = now_ms();
        sqlx::query(
            "UPDATE projects SET name = $3, description = $4, labels = $5, domains = $6, state = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&self.tenant)
        .bind(id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(serde_json::to_string(&p.labels)?)
        .bind(serde_json::to_string(&p.domains)?)
        .bind(p.state.as_str())
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await?;
        crate::db::bump_access(&mut tx).await?;
        crate::db::commit(tx).await?;
        Ok(p)
    }

    /// One entity version, or the latest version when `version` is `None`.
    pub async fn get_entity(
        &self,
        project: &str,
        domain: &str,
        kind: EntityKind,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<EntityRecord>> {
        let q = match version {
            Some(_) => format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND kind = $4 AND name = $5 AND version = $6"),
            None => format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND kind = $4 AND name = $5 ORDER BY seq DESC LIMIT 1"),
        };
        let mut q = sqlx::query(&q).bind(&self.tenant).bind(project).bind(domain).bind(kind.storage_name()).bind(name);
        if let Some(v) = version {
            q = q.bind(v);
        }
        let row = q.fetch_optional(&self.store.read).await?;
        row.as_ref().map(entity_from_row).transpose()
    }

    /// Entity names of a kind in a project and domain, with their latest version, by name.
    pub async fn list_entities(
        &self,
        project: &str,
        domain: &str,
        kind: EntityKind,
        page: &PageRequest,
    ) -> Result<Page<EntitySummary>> {
        let after: Option<String> = page.after()?;
        let limit = page.limit();
        let rows = sqlx::query(
            "SELECT e.name, e.version, e.created_at, c.n FROM entities e JOIN ( \
                SELECT name, MAX(seq) AS s, COUNT(*) AS n FROM entities \
                WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND kind = $4 AND name > $5 \
                GROUP BY name ORDER BY name LIMIT $6) c ON e.name = c.name AND e.seq = c.s \
             WHERE e.tenant_id = $1 AND e.project = $2 AND e.domain = $3 AND e.kind = $4 ORDER BY e.name",
        )
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(kind.storage_name())
        .bind(after.unwrap_or_default())
        .bind(limit as i64 + 1)
        .fetch_all(&self.store.read)
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(EntitySummary {
                    kind: kind.storage_name().into(),
                    project: project.into(),
                    domain: domain.into(),
                    name: r.try_get("name")?,
                    latest_version: r.try_get("version")?,
                    versions: r.try_get("n")?,
                    updated_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |s| s.name.clone()))
    }

    /// Versions of one entity, newest first.
    pub async fn list_versions(
        &self,
        project: &str,
        domain: &str,
        kind: EntityKind,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<EntityRecord>> {
        let after: Option<i64> = page.after()?;
        let limit = page.limit();
        let rows = sqlx::query(&format!(
            "SELECT {ENTITY_COLUMNS}, seq FROM entities WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND kind = $4 AND name = $5 AND seq < $6 \
             ORDER BY seq DESC LIMIT $7"
        ))
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(kind.storage_name())
        .bind(name)
        .bind(after.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(&self.store.read)
        .await?;
        let items =
            rows.iter().map(|r| Ok((entity_from_row(r)?, r.try_get::<i64, _>("seq")?))).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |(_, seq)| *seq).map(|(e, _)| e))
    }

    /// Registers a compiled bundle atomically: every entity is new or identical to what is
    /// stored, or nothing is written and the first difference is reported as a conflict.
    pub async fn register(
        &self,
        project: &str,
        domain: &str,
        bundle: &CompiledBundle,
        actor: &str,
    ) -> Result<Vec<RegisterOutcome>> {
        // A concurrent registration of another version of the same name can take the same
        // `seq` on PostgreSQL; the unique index refuses it and we go again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.register_once(project, domain, bundle, actor).await {
                Err(Error::Backend(e)) if attempt < 4 && Error::is_unique_violation(&e) => continue,
                other => return other,
            }
        }
    }

    async fn register_once(
        &self,
        project: &str,
        domain: &str,
        bundle: &CompiledBundle,
        actor: &str,
    ) -> Result<Vec<RegisterOutcome>> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let mut out = Vec::with_capacity(bundle.entities.len());
        for e in &bundle.entities {
            let kind = e.kind.storage_name();
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM entities WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND kind = $4 AND name = $5 AND version = $6",
            )
            .bind(&self.tenant)
            .bind(project)
            .bind(domain)
            .bind(kind)
            .bind(&e.name)
            .bind(&e.version)
            .fetch_optional(&mut *tx)
            .await?;
            let status = match existing {
                Some(d) if d == e.digest => "unchanged",
                Some(_) => {
                    return Err(Error::Conflict(format!(
                        "{}/{} version `{}` is already registered in {project}/{domain} with different content; register a new version",
                        e.kind.as_str(),
                        e.name,
                        e.version
                    )))
                }
                None => {
                    let seq: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM entities WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND kind = $4 AND name = $5",
                    )
                    .bind(&self.tenant)
                    .bind(project)
                    .bind(domain)
                    .bind(kind)
                    .bind(&e.name)
                    .fetch_one(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO entities (tenant_id, project, domain, kind, name, version, seq, digest, spec, interface, compiled, created_at, created_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(&self.tenant)
                    .bind(project)
                    .bind(domain)
                    .bind(kind)
                    .bind(&e.name)
                    .bind(&e.version)
                    .bind(seq)
                    .bind(&e.digest)
                    .bind(e.spec.to_string())
                    .bind(serde_json::to_string(&e.interface)?)
                    .bind(e.compiled.as_ref().map(|c| c.to_string()))
                    .bind(now)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?;
                    "created"
                }
            };
            out.push(RegisterOutcome {
                kind: kind.into(),
                name: e.name.clone(),
                version: e.version.clone(),
                digest: e.digest.clone(),
                status: status.into(),
            });
        }
        if out.iter().any(|o| o.status == "created") {
            crate::db::bump_registry(&mut tx).await?;
        }
        crate::db::commit(tx).await?;
        Ok(out)
    }
}

/// Tables a tenant's export holds, in the order they are written.
pub const EXPORTED_TABLES: [&str; 9] = [
    "projects",
    "entities",
    "attributes",
    "launch_plan_states",
    "executions",
    "node_executions",
    "attempts",
    "catalog",
    "tenant_quotas",
];

impl TenantStore<'_> {
    /// Every row of `table` (one of [`EXPORTED_TABLES`]) that belongs to this tenant, as JSON
    /// objects keyed by column: the tenant's records as an export keeps them.
    pub async fn export_table(&self, table: &str) -> Result<Vec<serde_json::Value>> {
        if !EXPORTED_TABLES.contains(&table) {
            return Err(Error::Precondition(format!("`{table}` is not an exported table")));
        }
        let rows = sqlx::query(&format!("SELECT * FROM {table} WHERE tenant_id = $1"))
            .bind(&self.tenant)
            .fetch_all(&self.store.read)
            .await?;
        Ok(rows.iter().map(row_json).collect())
    }
}

/// A row as a JSON object: text, integer or real columns as such, anything else null.
fn row_json(r: &sqlx::any::AnyRow) -> serde_json::Value {
    use sqlx::{Column, Row};
    let mut obj = serde_json::Map::new();
    for (i, c) in r.columns().iter().enumerate() {
        let v = if let Ok(v) = r.try_get::<Option<String>, _>(i) {
            v.map(serde_json::Value::from)
        } else if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
            v.map(serde_json::Value::from)
        } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
            v.map(serde_json::Value::from)
        } else {
            None
        };
        obj.insert(c.name().to_string(), v.unwrap_or(serde_json::Value::Null));
    }
    serde_json::Value::Object(obj)
}
