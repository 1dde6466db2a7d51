//! Agents, their versions and their state.

use async_trait::async_trait;
use rusqlite::types::Value;

use p38_core::agent::{
    Agent, AgentChange, AgentId, AgentState, AgentStatus, AgentVersion, NewAgent,
};
use p38_core::approval::Covered;
use p38_core::audit::NewAudit;
use p38_core::page::{Page, PageRequest};
use p38_core::store::AgentStore;
use p38_core::time::{now, to_millis};
use p38_core::{Error, Result};

use crate::audit::insert_audit;
use crate::rows::{self, agent_cols, to_json};
use crate::{Backend, SqlStore, db_err};

/// A unique violation on insert or update of an agent can only be its name.
fn name_conflict(e: Error, name: &str) -> Error {
    match e {
        Error::Conflict { .. } => {
            Error::conflict("name", format!("an agent named {name:?} already exists"))
        }
        other => other,
    }
}

// The reads of the request path: one text for both backends, run by sqlx
// on PostgreSQL and on the blocking pool on SQLite (`crate::reader`).
const AGENT_BY_ID: &str = concat!("SELECT ", agent_cols!(), " FROM agents WHERE id = $1");
const AGENT_BY_NAME: &str = concat!("SELECT ", agent_cols!(), " FROM agents WHERE name = $1");
const AGENTS_PAGE: &str = concat!(
    "SELECT ",
    agent_cols!(),
    " FROM agents WHERE id < $1 ORDER BY id DESC LIMIT $2"
);
const AGENTS_PAGE_OF_STATUS: &str = concat!(
    "SELECT ",
    agent_cols!(),
    " FROM agents WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);

#[async_trait]
impl AgentStore for SqlStore {
    async fn create_agent(&self, new: NewAgent, audit: NewAudit) -> Result<Agent> {
        let mut tx = self.begin().await?;
        let t = to_millis(now());
        let row = sqlx::query(concat!(
            "INSERT INTO agents (name, description, code, status, schedule, config, secrets, tools, network, settings, version, created_by, created_at, updated_at, next_fire_at, approved_by, approved_at, generation_id, max_concurrency, allow_hosts, changed_by, approved_version, approved_snapshot) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $12, $13, $14, CASE WHEN $14 IS NULL THEN NULL ELSE $12 END, $15, $16, $17, $11, CASE WHEN $14 IS NULL THEN NULL ELSE 1 END, $18) RETURNING ",
            agent_cols!()
        ))
        .bind(&new.name)
        .bind(&new.description)
        .bind(&new.code)
        .bind(new.status.as_str())
        .bind(&new.schedule)
        .bind(to_json(&new.config))
        .bind(to_json(&new.secrets))
        .bind(to_json(&new.tools))
        .bind(new.network as i64)
        .bind(to_json(&new.settings))
        .bind(&new.created_by)
        .bind(t)
        .bind(new.next_fire_at.map(to_millis))
        .bind(&new.approved_by)
        .bind(new.generation_id)
        .bind(i64::from(new.settings.concurrency.unwrap_or(1)))
        .bind(to_json(&new.allow_hosts))
        .bind(new.approved_by.as_ref().map(|_| to_json(&Covered::of_new(&new))))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| name_conflict(db_err(e), &new.name))?;
        let agent = rows::agent(&row)?;
        insert_version(&mut tx, &agent).await?;
        let audit = NewAudit {
            target: format!("agent:{}", agent.id),
            ..audit
        };
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(agent)
    }

    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>> {
        if let Some(r) = &self.reader {
            return r
                .optional(AGENT_BY_ID, vec![Value::Integer(id)], |r| rows::agent(r))
                .await;
        }
        sqlx::query(AGENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::agent(&r))
            .transpose()
    }

    async fn get_agent_by_name(&self, name: &str) -> Result<Option<Agent>> {
        if let Some(r) = &self.reader {
            let name = Value::Text(name.to_string());
            return r
                .optional(AGENT_BY_NAME, vec![name], |r| rows::agent(r))
                .await;
        }
        sqlx::query(AGENT_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::agent(&r))
            .transpose()
    }

    async fn list_agents(
        &self,
        status: Option<AgentStatus>,
        page: PageRequest,
    ) -> Result<Page<Agent>> {
        let before = page.before.unwrap_or(i64::MAX);
        let fetch = i64::from(page.limit) + 1;
        let agents = if let Some(r) = &self.reader {
            let (sql, params) = match status {
                None => (
                    AGENTS_PAGE,
                    vec![Value::Integer(before), Value::Integer(fetch)],
                ),
                Some(s) => (
                    AGENTS_PAGE_OF_STATUS,
                    vec![
                        Value::Text(s.as_str().to_string()),
                        Value::Integer(before),
                        Value::Integer(fetch),
                    ],
                ),
            };
            r.all(sql, params, |r| rows::agent(r)).await?
        } else {
            let q = match status {
                None => sqlx::query(AGENTS_PAGE).bind(before).bind(fetch),
                Some(s) => sqlx::query(AGENTS_PAGE_OF_STATUS)
                    .bind(s.as_str())
                    .bind(before)
                    .bind(fetch),
            };
            let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
            rows.iter().map(rows::agent).collect::<Result<Vec<_>>>()?
        };
        Ok(Page::from_rows(agents, page.limit, |a| a.id))
    }

    async fn update_agent(
        &self,
        id: AgentId,
        change: AgentChange,
        actor: &str,
        audit: NewAudit,
    ) -> Result<Agent> {
        let mut tx = self.begin().await?;
        let select = match self.backend {
            Backend::Postgres => concat!(
                "SELECT ",
                agent_cols!(),
                " FROM agents WHERE id = $1 FOR UPDATE"
            ),
            Backend::Sqlite => concat!("SELECT ", agent_cols!(), " FROM agents WHERE id = $1"),
        };
        let row = sqlx::query(select)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found("agent", id))?;
        let mut a = rows::agent(&row)?;
        if change.expect_updated_at.is_some_and(|t| t != a.updated_at)
            || change.expect_version.is_some_and(|v| v != a.version)
        {
            return Err(Error::conflict(
                "version",
                format!(
                    "agent {} changed meanwhile (now version {}); reload it and try again",
                    a.name, a.version
                ),
            ));
        }
        let code_changed = change.code.as_ref().is_some_and(|c| *c != a.code);
        let approving = change.approval.grants();
        apply(&mut a, change);
        // `version` counts code versions: a task records which code it ran,
        // and agent_versions keeps each one.
        if code_changed {
            a.version += 1;
        }
        // An approval records what it approved; a withdrawn one keeps it,
        // so the next approver sees what changed since.
        if approving {
            a.approved_version = Some(a.version);
            a.approved_snapshot = Some(Covered::of(&a));
        }
        a.updated_at = now();
        let row = sqlx::query(concat!(
            "UPDATE agents SET name = $2, description = $3, code = $4, status = $5, schedule = $6, config = $7, secrets = $8, tools = $9, network = $10, settings = $11, version = $12, updated_at = $13, next_fire_at = $14, approved_by = $15, approved_at = $16, max_concurrency = $17, allow_hosts = $18, changed_by = $19, rejected_reason = $20, approved_version = $21, approved_snapshot = $22 WHERE id = $1 RETURNING ",
            agent_cols!()
        ))
        .bind(id)
        .bind(&a.name)
        .bind(&a.description)
        .bind(&a.code)
        .bind(a.status.as_str())
        .bind(&a.schedule)
        .bind(to_json(&a.config))
        .bind(to_json(&a.secrets))
        .bind(to_json(&a.tools))
        .bind(a.network as i64)
        .bind(to_json(&a.settings))
        .bind(a.version)
        .bind(to_millis(a.updated_at))
        .bind(a.next_fire_at.map(to_millis))
        .bind(&a.approved_by)
        .bind(a.approved_at.map(to_millis))
        .bind(i64::from(a.settings.concurrency.unwrap_or(1)))
        .bind(to_json(&a.allow_hosts))
        .bind(&a.changed_by)
        .bind(&a.rejected_reason)
        .bind(a.approved_version)
        .bind(a.approved_snapshot.as_ref().map(to_json))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| name_conflict(db_err(e), &a.name))?;
        let mut updated = rows::agent(&row)?;
        if code_changed {
            updated.created_by = actor.to_string();
            insert_version(&mut tx, &updated).await?;
            updated.created_by = a.created_by;
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(updated)
    }

    async fn delete_agent(&self, id: AgentId, audit: NewAudit) -> Result<()> {
        let mut tx = self.begin().await?;
        // Children first: no reliance on ON DELETE CASCADE being enabled.
        for sql in [
            "DELETE FROM tasks WHERE agent_id = $1",
            "DELETE FROM agent_state WHERE agent_id = $1",
            "DELETE FROM agent_versions WHERE agent_id = $1",
            "DELETE FROM workspace_archives WHERE agent_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let done = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("agent", id));
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn list_versions(&self, id: AgentId) -> Result<Vec<AgentVersion>> {
        let rows = sqlx::query("SELECT agent_id, version, code, created_by, created_at FROM agent_versions WHERE agent_id = $1 ORDER BY version DESC")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::version).collect()
    }

    async fn get_state(&self, id: AgentId) -> Result<Option<AgentState>> {
        sqlx::query(
            "SELECT agent_id, state, run_count, updated_at FROM agent_state WHERE agent_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::state(&r))
        .transpose()
    }
}

fn apply(a: &mut Agent, c: AgentChange) {
    if let Some(v) = c.name {
        a.name = v;
    }
    if let Some(v) = c.description {
        a.description = v;
    }
    if let Some(v) = c.code {
        a.code = v;
    }
    if let Some(v) = c.status {
        a.status = v;
    }
    if let Some(v) = c.schedule {
        a.schedule = v;
    }
    if let Some(v) = c.config {
        a.config = v;
    }
    if let Some(v) = c.secrets {
        a.secrets = v;
    }
    if let Some(v) = c.tools {
        a.tools = v;
    }
    if let Some(v) = c.network {
        a.network = v;
    }
    if let Some(v) = c.settings {
        a.settings = v;
    }
    if let Some(v) = c.allow_hosts {
        a.allow_hosts = v;
    }
    if let Some(v) = c.changed_by {
        a.changed_by = v;
    }
    if let Some(v) = c.rejected_reason {
        a.rejected_reason = v;
    }
    if let Some(v) = c.next_fire_at {
        a.next_fire_at = v;
    }
    if let Some(v) = c.approval.approved_by() {
        a.approved_at = v.as_ref().map(|_| now());
        a.approved_by = v;
    }
}

async fn insert_version(tx: &mut sqlx::Transaction<'static, sqlx::Any>, a: &Agent) -> Result<()> {
    sqlx::query("INSERT INTO agent_versions (agent_id, version, code, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(a.id)
        .bind(a.version)
        .bind(&a.code)
        .bind(&a.created_by)
        .bind(to_millis(a.updated_at))
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}
