//! Roles and bindings. A [`RoleStore`] is obtained from a tenant (its roles) or from the
//! platform (platform roles, stored under the empty tenant id); either way every statement
//! binds that key first.

use crate::records::{BindingRecord, RoleRecord};
use crate::{now_ms, Error, Page, PageRequest, Result, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

pub struct RoleStore<'a> {
    pub(crate) store: &'a Store,
    /// The tenant id, or `""` for platform roles.
    pub(crate) key: String,
}

fn tenant_of(key: String) -> Option<String> {
    (!key.is_empty()).then_some(key)
}

pub(crate) fn role_from_row(r: &AnyRow) -> Result<RoleRecord> {
    let perms: String = r.try_get("permissions")?;
    let projects: String = r.try_get("projects")?;
    let domains: String = r.try_get("domains")?;
    Ok(RoleRecord {
        tenant: tenant_of(r.try_get("tenant_id")?),
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        permissions: serde_json::from_str(&perms)?,
        projects: serde_json::from_str(&projects)?,
        domains: serde_json::from_str(&domains)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(crate) fn binding_from_row(r: &AnyRow) -> Result<BindingRecord> {
    Ok(BindingRecord {
        tenant: tenant_of(r.try_get("tenant_id")?),
        role: r.try_get("role")?,
        subject_kind: r.try_get("subject_kind")?,
        subject: r.try_get("subject")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

impl RoleStore<'_> {
    /// Creates or replaces a role; returns `created`, `updated` or `unchanged`.
    pub async fn put_role(&self, role: &RoleRecord) -> Result<&'static str> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let existing = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(&self.key)
            .bind(&role.name)
            .fetch_optional(&mut *tx)
            .await?;
        let perms = serde_json::to_string(&role.permissions)?;
        let projects = serde_json::to_string(&role.projects)?;
        let domains = serde_json::to_string(&role.domains)?;
        let status = match existing.as_ref().map(role_from_row).transpose()? {
            Some(old)
                if old.permissions == role.permissions
                    && old.projects == role.projects
                    && old.domains == role.domains
                    && old.description == role.description =>
            {
                "unchanged"
            }
            Some(_) => {
                sqlx::query(
                    "UPDATE roles SET description = $3, permissions = $4, projects = $5, domains = $6, updated_at = $7 \
                     WHERE tenant_id = $1 AND name = $2",
                )
                .bind(&self.key)
                .bind(&role.name)
                .bind(&role.description)
                .bind(&perms)
                .bind(&projects)
                .bind(&domains)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                "updated"
            }
            None => {
                sqlx::query(
                    "INSERT INTO roles (tenant_id, name, description, permissions, projects, domains, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&self.key)
                .bind(&role.name)
                .bind(&role.description)
                .bind(&perms)
                .bind(&projects)
                .bind(&domains)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                "created"
            }
        };
        if status != "unchanged" {
            crate::db::bump_access(&mut tx).await?;
        }
        crate::db::commit(tx).await?;
        Ok(status)
    }

    pub async fn get_role(&self, name: &str) -> Result<Option<RoleRecord>> {
        let row = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(&self.key)
            .bind(name)
            .fetch_optional(&self.store.read)
            .await?;
        row.as_ref().map(role_from_row).transpose()
    }

    pub async fn list_roles(&self, page: &PageRequest) -> Result<Page<RoleRecord>> {
        let after: Option<String> = page.after()?;
        let limit = page.limit();
        let rows = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3")
            .bind(&self.key)
            .bind(after.unwrap_or_default())
            .bind(limit as i64 + 1)
            .fetch_all(&self.store.read)
            .await?;
        let items = rows.iter().map(role_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |r| r.name.clone()))
    }

    /// Deletes a role and its bindings; false when it did not exist.
    pub async fn delete_role(&self, name: &str) -> Result<bool> {
        let mut tx = self.store.write.begin().await?;
        sqlx::query("DELETE FROM role_bindings WHERE tenant_id = $1 AND role = $2")
            .bind(&self.key)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(&self.key)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        crate::db::bump_access(&mut tx).await?;
        crate::db::commit(tx).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Binds a subject to a role of this scope; true when the binding is new.
    pub async fn bind(&self, role: &str, kind: &str, subject: &str, actor: &str) -> Result<bool> {
        let mut tx = self.store.write.begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(&self.key)
            .bind(role)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("role `{role}` not found")));
        }
        if !self.insert_binding(&mut tx, role, kind, subject, actor, now_ms()).await? {
            return Ok(false);
        }
        crate::db::bump_access(&mut tx).await?;
        crate::db::commit(tx).await?;
        Ok(true)
    }

    /// Binds many subjects in one transaction (bulk membership changes); existing bindings
    /// are left as they are. Returns how many were new.
    pub async fn bind_many(&self, items: &[(String, String, String)], actor: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let mut added = 0;
        for (role, kind, subject) in items {
            if self.insert_binding(&mut tx, role, kind, subject, actor, now).await? {
                added += 1;
            }
        }
        if added > 0 {
            crate::db::bump_access(&mut tx).await?;
        }
        crate::db::commit(tx).await?;
        Ok(added)
    }

    /// Inserts a binding unless present; true when it was new.
    async fn insert_binding(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        role: &str,
        kind: &str,
        subject: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        let present: Option<String> = sqlx::query_scalar(
            "SELECT role FROM role_bindings WHERE tenant_id = $1 AND role = $2 AND subject_kind = $3 AND subject = $4",
        )
        .bind(&self.key)
        .bind(role)
        .bind(kind)
        .bind(subject)
        .fetch_optional(&mut **tx)
        .await?;
        if present.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO role_bindings (tenant_id, role, subject_kind, subject, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&self.key)
        .bind(role)
        .bind(kind)
        .bind(subject)
        .bind(now)
        .bind(actor)
        .execute(&mut **tx)
        .await
        .map_err(|e| if Error::is_unique_violation(&e) { Error::Conflict("concurrent change; retry".into()) } else { e.into() })?;
        Ok(true)
    }

    /// Removes a binding; false when it did not exist.
    pub async fn unbind(&self, role: &str, kind: &str, subject: &str) -> Result<bool> {
        let mut tx = self.store.write.begin().await?;
        let r = sqlx::query(
            "DELETE FROM role_bindings WHERE tenant_id = $1 AND role = $2 AND subject_kind = $3 AND subject = $4",
        )
        .bind(&self.key)
        .bind(role)
        .bind(kind)
        .bind(subject)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() > 0 {
            crate::db::bump_access(&mut tx).await?;
        }
        crate::db::commit(tx).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Bindings of this scope, by role then subject; optionally of one role only.
    pub async fn list_bindings(&self, role: Option<&str>, page: &PageRequest) -> Result<Page<BindingRecord>> {
        let after: Option<(String, String, String)> = page.after()?;
        let (ar, ak, asub) = after.unwrap_or_default();
        let limit = page.limit();
        let rows = sqlx::query(
            "SELECT * FROM role_bindings WHERE tenant_id = $1 AND ($2 = '' OR role = $2) \
             AND (role > $3 OR (role = $3 AND (subject_kind > $4 OR (subject_kind = $4 AND subject > $5)))) \
             ORDER BY role, subject_kind, subject LIMIT $6",
        )
        .bind(&self.key)
        .bind(role.unwrap_or(""))
        .bind(ar)
        .bind(ak)
        .bind(asub)
        .bind(limit as i64 + 1)
        .fetch_all(&self.store.read)
        .await?;
        let items = rows.iter().map(binding_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |b| (b.role.clone(), b.subject_kind.clone(), b.subject.clone())))
    }
}
