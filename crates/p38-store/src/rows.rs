//! Decoding rows into domain types. Columns are read by name; every JSON
//! column is parsed here, so a corrupt row is an error with its id, never a
//! panic.

use sqlx::Row;
use sqlx::any::AnyRow;

use p38_core::agent::{Agent, AgentState, AgentVersion};
use p38_core::audit::AuditEntry;
use p38_core::auth::{ApiToken, Principal, TokenLookup};
use p38_core::task::{Excerpt, SUMMARY_CHARS, Task, TaskKind, TaskSummary, TaskTarget};
use p38_core::time::from_millis;
use p38_core::{Error, Result};

use crate::db_err;

/// The agent columns every agent query selects (a macro so that `concat!`
/// can build static SQL from it).
macro_rules! agent_cols {
    () => {
        "id, name, description, code, status, schedule, config, secrets, tools, network, settings, version, created_by, created_at, updated_at, next_fire_at, approved_by, approved_at, generation_id, allow_hosts, changed_by, rejected_reason, approved_version, approved_snapshot"
    };
}
pub(crate) use agent_cols;

/// Every task column.
macro_rules! task_cols {
    () => {
        "id, agent_id, agent_version, generation_id, status, trigger_kind, kind, attempt, retry_of, scheduled_at, started_at, completed_at, result, stdout, stderr, logs, error, exit_code, signal, duration_ms, cpu_ms, peak_memory_kb, unsandboxed, worker, created_at"
    };
}
pub(crate) use task_cols;

/// Task columns for listings: the captured outputs are left out and the
/// result and error cut in the database to one character more than a
/// [`p38_core::task::TaskSummary`] keeps (so that a cut can be told), so
/// that neither the page nor the server's memory grows with what agents
/// return (`GET /api/tasks/{id}` has the whole task).
macro_rules! task_summary_cols {
    () => {
        "id, agent_id, agent_version, generation_id, status, trigger_kind, kind, attempt, retry_of, scheduled_at, started_at, completed_at, substr(result, 1, 501) AS result_head, substr(error, 1, 501) AS error_head, exit_code, signal, duration_ms, cpu_ms, peak_memory_kb, unsandboxed, worker, created_at"
    };
}
pub(crate) use task_summary_cols;

fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col).map_err(db_err)
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal_source(format!("corrupt {what} in store"), e))
}

fn opt_json(row: &AnyRow, col: &str) -> Result<Option<serde_json::Value>> {
    get::<Option<String>>(row, col)?
        .map(|t| json(&t, col))
        .transpose()
}

/// A row read by column name, from either driver: sqlx's `AnyRow`, or a
/// SQLite row on the blocking pool ([`crate::reader`]), so that one decoder
/// serves both paths. JSON columns are parsed where they lie, not copied
/// first.
pub(crate) trait Columns {
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<Option<T>>;

    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        self.opt_json(col)?
            .ok_or_else(|| Error::internal(format!("corrupt {col} in store: NULL")))
    }
}

impl Columns for AnyRow {
    fn int(&self, col: &str) -> Result<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        get(self, col)
    }
    fn text(&self, col: &str) -> Result<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        get(self, col)
    }
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        get::<Option<&str>>(self, col)?
            .map(|t| json(t, col))
            .transpose()
    }
}

pub(crate) fn agent(row: &impl Columns) -> Result<Agent> {
    Ok(Agent {
        id: row.int("id")?,
        name: row.text("name")?,
        description: row.text("description")?,
        code: row.text("code")?,
        status: row.text("status")?.parse()?,
        schedule: row.opt_text("schedule")?,
        config: row.json("config")?,
        secrets: row.json("secrets")?,
        tools: row.json("tools")?,
        network: row.int("network")? != 0,
        settings: row.json("settings")?,
        version: row.int("version")?,
        created_by: row.text("created_by")?,
        created_at: from_millis(row.int("created_at")?),
        updated_at: from_millis(row.int("updated_at")?),
        next_fire_at: row.opt_int("next_fire_at")?.map(from_millis),
        approved_by: row.opt_text("approved_by")?,
        approved_at: row.opt_int("approved_at")?.map(from_millis),
        generation_id: row.opt_int("generation_id")?,
        allow_hosts: row.json("allow_hosts")?,
        changed_by: match row.opt_text("changed_by")? {
            Some(who) => who,
            None => row.text("created_by")?,
        },
        rejected_reason: row.opt_text("rejected_reason")?,
        approved_version: row.opt_int("approved_version")?,
        approved_snapshot: row.opt_json("approved_snapshot")?,
    })
}

pub(crate) fn token_lookup(row: &impl Columns) -> Result<TokenLookup> {
    Ok(TokenLookup {
        principal: Principal {
            token_id: row.int("id")?,
            name: row.text("name")?,
            scope: row.text("scope")?.parse()?,
        },
        expires_at: row.opt_int("expires_at")?.map(from_millis),
        last_used_at: row.opt_int("last_used_at")?.map(from_millis),
    })
}

pub(crate) fn version(row: &AnyRow) -> Result<AgentVersion> {
    Ok(AgentVersion {
        agent_id: get(row, "agent_id")?,
        version: get(row, "version")?,
        code: get(row, "code")?,
        created_by: get(row, "created_by")?,
        created_at: from_millis(get(row, "created_at")?),
    })
}

pub(crate) fn state(row: &AnyRow) -> Result<AgentState> {
    Ok(AgentState {
        agent_id: get(row, "agent_id")?,
        state: json(&get::<String>(row, "state")?, "state")?,
        run_count: get(row, "run_count")?,
        updated_at: from_millis(get(row, "updated_at")?),
    })
}

/// What a task is for, from its `agent_id`, `agent_version` and
/// `generation_id` (the schema's `tasks_one_target` check keeps them to
/// one target, agreeing with the kind).
fn target(row: &AnyRow, kind: TaskKind) -> Result<TaskTarget> {
    let agent: Option<i64> = get(row, "agent_id")?;
    let version: Option<i64> = get(row, "agent_version")?;
    let generation: Option<i64> = get(row, "generation_id")?;
    match (kind, agent, version, generation) {
        (TaskKind::Generation, None, None, Some(generation_id)) => {
            Ok(TaskTarget::Generation { generation_id })
        }
        (TaskKind::Agent | TaskKind::Noop, Some(agent_id), Some(agent_version), None) => {
            Ok(TaskTarget::Agent {
                agent_id,
                agent_version,
            })
        }
        _ => Err(Error::internal(format!(
            "corrupt task {} in store: kind {} with agent {agent:?} and generation {generation:?}",
            get::<i64>(row, "id")?,
            kind.as_str()
        ))),
    }
}

pub(crate) fn task(row: &AnyRow) -> Result<Task> {
    let ms = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(get::<Option<i64>>(row, col)?.map(from_millis))
    };
    let kind = get::<String>(row, "kind")?.parse()?;
    Ok(Task {
        id: get(row, "id")?,
        target: target(row, kind)?,
        status: get::<String>(row, "status")?.parse()?,
        trigger: get::<String>(row, "trigger_kind")?.parse()?,
        kind,
        attempt: get(row, "attempt")?,
        retry_of: get(row, "retry_of")?,
        scheduled_at: from_millis(get(row, "scheduled_at")?),
        started_at: ms("started_at")?,
        completed_at: ms("completed_at")?,
        result: opt_json(row, "result")?,
        stdout: get(row, "stdout")?,
        stderr: get(row, "stderr")?,
        logs: opt_json(row, "logs")?,
        error: get(row, "error")?,
        exit_code: get(row, "exit_code")?,
        signal: get(row, "signal")?,
        duration_ms: get(row, "duration_ms")?,
        cpu_ms: get(row, "cpu_ms")?,
        peak_memory_kb: get(row, "peak_memory_kb")?,
        unsandboxed: get::<i64>(row, "unsandboxed")? != 0,
        worker: get(row, "worker")?,
        created_at: from_millis(get(row, "created_at")?),
    })
}

/// A row selected with `task_summary_cols!`.
pub(crate) fn task_summary(row: &AnyRow) -> Result<TaskSummary> {
    const _: () = assert!(SUMMARY_CHARS == 500, "task_summary_cols! cuts at 501");
    let ms = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(get::<Option<i64>>(row, col)?.map(from_millis))
    };
    let excerpt = |col: &str| -> Result<Option<Excerpt>> {
        Ok(get::<Option<String>>(row, col)?.map(|t| Excerpt::of(&t)))
    };
    let kind = get::<String>(row, "kind")?.parse()?;
    Ok(TaskSummary {
        id: get(row, "id")?,
        target: target(row, kind)?,
        status: get::<String>(row, "status")?.parse()?,
        trigger: get::<String>(row, "trigger_kind")?.parse()?,
        kind,
        attempt: get(row, "attempt")?,
        retry_of: get(row, "retry_of")?,
        scheduled_at: from_millis(get(row, "scheduled_at")?),
        started_at: ms("started_at")?,
        completed_at: ms("completed_at")?,
        result_preview: excerpt("result_head")?,
        error: excerpt("error_head")?,
        exit_code: get(row, "exit_code")?,
        signal: get(row, "signal")?,
        duration_ms: get(row, "duration_ms")?,
        cpu_ms: get(row, "cpu_ms")?,
        peak_memory_kb: get(row, "peak_memory_kb")?,
        unsandboxed: get::<i64>(row, "unsandboxed")? != 0,
        worker: get(row, "worker")?,
        created_at: from_millis(get(row, "created_at")?),
    })
}

pub(crate) fn token(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: get(row, "id")?,
        name: get(row, "name")?,
        scope: get::<String>(row, "scope")?.parse()?,
        prefix: get(row, "prefix")?,
        created_at: from_millis(get(row, "created_at")?),
        revoked_at: get::<Option<i64>>(row, "revoked_at")?.map(from_millis),
        expires_at: get::<Option<i64>>(row, "expires_at")?.map(from_millis),
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(from_millis),
    })
}

pub(crate) fn audit(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: get(row, "id")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target: get(row, "target")?,
        detail: opt_json(row, "detail")?,
        at: from_millis(get(row, "at")?),
    })
}

/// Serialises a value for a JSON text column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain data (maps, strings, numbers) cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn generation(row: &AnyRow) -> Result<p38_core::generation::Generation> {
    Ok(p38_core::generation::Generation {
        id: get(row, "id")?,
        description: get(row, "description")?,
        status: get::<String>(row, "status")?.parse()?,
        stage: get::<String>(row, "stage")?.parse()?,
        iteration: get(row, "iteration")?,
        findings: get(row, "findings")?,
        cost_usd: get(row, "cost_usd")?,
        input_tokens: get(row, "input_tokens")?,
        output_tokens: get(row, "output_tokens")?,
        model: get(row, "model")?,
        report: opt_json(row, "report")?,
        error: get(row, "error")?,
        agent_id: get(row, "agent_id")?,
        task_id: get(row, "task_id")?,
        created_by: get(row, "created_by")?,
        created_at: from_millis(get(row, "created_at")?),
        updated_at: from_millis(get(row, "updated_at")?),
        overrides: json(&get::<String>(row, "overrides")?, "overrides")?,
    })
}
