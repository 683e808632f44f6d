//! Execution attributes of one tenant, per level: project, project-domain, workflow and launch
//! plan. Every statement binds the tenant first; the parts a level does not have are stored as
//! `''`, so one primary key covers every level.

use crate::db::ExecuteAudited;
use crate::{now_ms, Result, TenantStore};
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use tf_model::{Attributes, Level};

/// Where a set of attributes applies: the project always, the domain and name when the level
/// has them (`''` otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributesScope {
    pub project: String,
    pub level: Level,
    pub domain: String,
    pub name: String,
}

impl AttributesScope {
    /// How effective values name this scope.
    pub fn source(&self) -> String {
        self.level.source(&self.project, &self.domain, &self.name)
    }
}

/// Attributes as stored at one scope.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AttributesRecord {
    pub level: String,
    pub project: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub attributes: Attributes,
    pub updated_at: i64,
    pub updated_by: String,
}

fn record_from_row(r: &AnyRow) -> Result<AttributesRecord> {
    let a: String = r.try_get("attributes")?;
    Ok(AttributesRecord {
        level: r.try_get("level")?,
        project: r.try_get("project")?,
        domain: r.try_get("domain")?,
        name: r.try_get("name")?,
        attributes: serde_json::from_str(&a)?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

const SCOPE: &str = "tenant_id = $1 AND project = $2 AND level = $3 AND domain = $4 AND name = $5";

impl TenantStore<'_> {
    pub async fn get_attributes(&self, s: &AttributesScope) -> Result<Option<AttributesRecord>> {
        let row = sqlx::query(&format!("SELECT * FROM attributes WHERE {SCOPE}"))
            .bind(&self.tenant)
            .bind(&s.project)
            .bind(s.level.as_str())
            .bind(&s.domain)
            .bind(&s.name)
            .fetch_optional(&self.store.read)
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Replaces the attributes at a scope; `false` when they were already exactly these.
    pub async fn put_attributes(&self, s: &AttributesScope, a: &Attributes, by: &str) -> Result<bool> {
        let body = serde_json::to_string(a)?;
        if self.get_attributes(s).await?.is_some_and(|r| &r.attributes == a) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO attributes (tenant_id, project, level, domain, name, attributes, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, project, level, domain, name) \
             DO UPDATE SET attributes = $6, updated_at = $7, updated_by = $8",
        )
        .bind(&self.tenant)
        .bind(&s.project)
        .bind(s.level.as_str())
        .bind(&s.domain)
        .bind(&s.name)
        .bind(body)
        .bind(now_ms())
        .bind(by)
        .execute_audited(self.store)
        .await?;
        Ok(true)
    }

    /// Removes the attributes at a scope; `false` when none were set.
    pub async fn delete_attributes(&self, s: &AttributesScope) -> Result<bool> {
        let done = sqlx::query(&format!("DELETE FROM attributes WHERE {SCOPE}"))
            .bind(&self.tenant)
            .bind(&s.project)
            .bind(s.level.as_str())
            .bind(&s.domain)
            .bind(&s.name)
            .execute_audited(self.store)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every level that applies to a run of `workflow` (and `launch_plan`) in a project and
    /// domain, least specific first — one query.
    pub async fn attributes_for(
        &self,
        project: &str,
        domain: &str,
        workflow: &str,
        launch_plan: Option<&str>,
    ) -> Result<Vec<(AttributesScope, Attributes)>> {
        let rows = sqlx::query(
            "SELECT * FROM attributes WHERE tenant_id = $1 AND project = $2 AND ( \
               (level = 'project') \
               OR (level = 'project_domain' AND domain = $3) \
               OR (level = 'workflow' AND domain = $3 AND name = $4) \
               OR (level = 'launch_plan' AND domain = $3 AND name = $5))",
        )
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(workflow)
        .bind(launch_plan.unwrap_or(""))
        .fetch_all(&self.store.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let rec = record_from_row(r)?;
            let level = Level::parse(&rec.level)
                .ok_or_else(|| crate::Error::Corrupt(format!("attributes level `{}`", rec.level)))?;
            let scope = AttributesScope { project: rec.project, level, domain: rec.domain, name: rec.name };
            out.push((scope, rec.attributes));
        }
        out.sort_by_key(|(s, _)| s.level);
        Ok(out)
    }
}
