//! Project38's persistence: one implementation of the `p38_core::store`
//! traits over sqlx's `Any` driver, so SQLite (the embedded default) and
//! PostgreSQL (the multi-node backbone) share every query. The few places
//! where the dialects differ (transaction start, row locks, the queue claim)
//! are chosen by [`Backend`].
//!
//! Why `Any` rather than two typed implementations: the schema is kept
//! portable (epoch-millisecond integers, JSON as text), so one body of SQL
//! serves both and the conformance suite proves it; a second copy of every
//! query would drift.
#![deny(missing_docs)]

mod agents;
mod audit;
mod generations;
mod reader;
mod rows;
mod schedule;
mod secrets;
mod tasks;
mod tokens;
mod workspace_archives;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use p38_core::store::Store;
use p38_core::{Error, Result};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Connection options beyond the URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Pool size; defaults to 8 on PostgreSQL and 4 on SQLite.
    pub max_connections: Option<u32>,
    /// PostgreSQL schema to use (created if missing); tests use one each.
    pub schema: Option<String>,
}

/// The SQL store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    claim_pool: AnyPool,
    backend: Backend,
    /// SQLite only: the request path's reads, on the blocking pool.
    reader: Option<std::sync::Arc<reader::SqliteReader>>,
    /// The URL without Project38's own parameters (PostgreSQL LISTEN needs
    /// a connection of its own).
    url: String,
}

/// SQLite keeps memory statistics by default, behind one process-wide
/// mutex taken on every allocation; with several connections reading at
/// once (API requests in parallel) that mutex is contended on every row.
/// Project38 never reads those statistics, so they are turned off, once,
/// before SQLite initialises (afterwards the call is refused, harmlessly).
#[allow(unsafe_code)] // one FFI call; SQLite validates the moment itself
fn sqlite_tuning() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with an int argument, before any connection
        // of this process exists (SQLite checks this and refuses otherwise).
        unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`), creating a
    /// SQLite file and its folder when missing, and runs the migrations.
    pub async fn connect(url: &str, opts: StoreOptions) -> Result<SqlStore> {
        install_default_drivers();
        let backend = backend_of(url)?;
        if matches!(backend, Backend::Sqlite) {
            sqlite_tuning();
        }
        let (url, url_schema) = take_schema_param(url);
        let mut opts = opts;
        if opts.schema.is_none() {
            opts.schema = url_schema;
        }
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(&url)?,
            Backend::Postgres => url.to_string(),
        };
        let schema = opts.schema.clone();
        if let Some(s) = &schema {
            check_schema_name(s)?;
        }
        let max = opts.max_connections.unwrap_or(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        });
        let pool = open_pool(&url, backend, schema.clone(), max, false).await?;
        // Claims go through connections that do not wait for their WAL
        // flush: a claim lost in a database crash leaves its task queued,
        // and it runs again (at least once, as after a lost worker). Every
        // outcome is still committed durably, and its flush covers the
        // claims before it.
        let claim_pool = match backend {
            Backend::Postgres => open_pool(&url, backend, schema, 2, true).await?,
            Backend::Sqlite => pool.clone(),
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::unavailable_source("the database migration failed", e))?;
        let reader = match backend {
            Backend::Sqlite => Some(reader::SqliteReader::new(sqlite_path(&url).into(), max)),
            Backend::Postgres => None,
        };
        Ok(SqlStore {
            pool,
            claim_pool,
            backend,
            reader,
            url,
        })
    }

    /// Which database this is.
    pub fn backend_kind(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for benchmarks and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Drops a PostgreSQL schema (test clean-up).
    pub async fn drop_schema(&self, schema: &str) -> Result<()> {
        check_schema_name(schema)?;
        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        self.pool
            .execute(sqlx::AssertSqlSafe(sql))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`) so that two writers queue on the busy timeout
    /// instead of failing when a read lock would have to be upgraded.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let r = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        r.map_err(db_err)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        if let Some(r) = &self.reader {
            r.close();
        }
        self.claim_pool.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| Error::unavailable_source("the database is unreachable", e))
    }

    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn listen(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> Result<()> {
        // Notifications are per database, not per schema: a listener of one
        // schema may be woken by another's tasks and then finds nothing to
        // claim, which is harmless.
        self.forward(TASKS_CHANNEL, wake).await
    }

    async fn announce_secrets_changed(&self) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(SECRETS_CHANNEL)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn listen_secrets(&self, changed: std::sync::Arc<tokio::sync::Notify>) -> Result<()> {
        // Per database too: another schema's change costs one extra reload.
        self.forward(SECRETS_CHANNEL, changed).await
    }
}

/// The NOTIFY channel of queued tasks (sent by `tasks.rs`).
pub(crate) const TASKS_CHANNEL: &str = "p38_tasks";
/// The NOTIFY channel of secret changes.
const SECRETS_CHANNEL: &str = "p38_secrets";

impl SqlStore {
    /// Forwards PostgreSQL notifications on `channel` to `to`, on a task of
    /// its own that reconnects when the connection drops. A no-op on SQLite.
    async fn forward(
        &self,
        channel: &'static str,
        to: std::sync::Arc<tokio::sync::Notify>,
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url)
            .await
            .map_err(|e| Error::unavailable_source(format!("cannot LISTEN on {channel}"), e))?;
        listener
            .listen(channel)
            .await
            .map_err(|e| Error::unavailable_source(format!("cannot LISTEN on {channel}"), e))?;
        tokio::spawn(async move {
            loop {
                // `try_recv` rather than `recv`: it says when the connection
                // was lost (`Ok(None)`; the next call reconnects), and what
                // was sent meanwhile is lost, so the listener is notified
                // anyway: a spurious wake-up is harmless, a missed one not.
                match listener.try_recv().await {
                    Ok(Some(_)) => to.notify_one(),
                    Ok(None) => {
                        tracing::warn!(channel, "notification connection lost; reconnecting");
                        to.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(channel, error = %e, "notifications interrupted; reconnecting");
                        to.notify_one();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(())
    }
}

/// Takes Project38's own `schema=NAME` parameter out of a PostgreSQL URL:
/// Project38's tables then live in that schema (created if missing).
fn take_schema_param(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(v) => {
                schema = Some(v.to_string());
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

/// Opens a pool whose connections use `schema` (PostgreSQL) or WAL mode
/// (SQLite); `relaxed_commit` turns off waiting for the WAL flush.
async fn open_pool(
    url: &str,
    backend: Backend,
    schema: Option<String>,
    max: u32,
    relaxed_commit: bool,
) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            let schema = schema.clone();
            Box::pin(async move {
                match backend {
                    // WAL lets readers run beside the one writer; NORMAL
                    // sync is durable across application crashes.
                    Backend::Sqlite => {
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;")
                            .await?;
                    }
                    Backend::Postgres => {
                        if let Some(s) = schema {
                            // The name was checked to be [a-z0-9_]+ before.
                            let sql = format!("CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s}");
                            conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                        }
                        if relaxed_commit {
                            conn.execute("SET synchronous_commit = off").await?;
                        }
                    }
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| {
            Error::unavailable_source(
                format!("cannot open the database at {}", redact_url(url)),
                e,
            )
        })
}

fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(Error::validation(
            "database_url",
            "database URL must start with sqlite:// or postgres://",
        ))
    }
}

/// Makes sure the folder of a SQLite file exists and asks sqlx to create
/// the file (`mode=rwc`).
fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(Error::validation(
            "database_url",
            "SQLite needs a file path (sqlite://PATH); in-memory databases are not shared between connections",
        ));
    }
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::unavailable_source(format!("cannot create {}", parent.display()), e)
        })?;
    }
    // Create the file ourselves, owner-only, before SQLite opens it: SQLite
    // gives the -wal and -shm files the database file's mode.
    if !Path::new(path).exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                Error::unavailable_source(format!("cannot create the database file {path}"), e)
            })?;
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The file of a URL made by [`prepare_sqlite_url`].
fn sqlite_path(url: &str) -> &str {
    let rest = url.trim_start_matches("sqlite://");
    rest.split_once('?').map_or(rest, |(path, _)| path)
}

fn check_schema_name(s: &str) -> Result<()> {
    if !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(())
    } else {
        Err(Error::validation(
            "schema",
            "schema name must be [a-z0-9_], at most 63 characters",
        ))
    }
}

/// Hides a password in a database URL before it reaches a message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:****@{}", &url[..s], &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Maps a database error: unique violations become conflicts, a lost
/// connection an unavailable database, everything else an internal error.
/// The driver's error is kept as the source, for the log, and its text is
/// never the message a client sees; nothing is logged here (the error is
/// logged once, where it is handled).
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict {
            field: None,
            message: "already exists".into(),
        },
        // PostgreSQL refuses NUL in text (22021) and in JSON (22P05); the
        // API refuses it first, this is the backstop for any other path.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22021" | "22P05")) => {
            Error::Malformed("text must not contain NUL characters (\\u0000)".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::unavailable_source(
                "the database is not available right now; try again shortly",
                e,
            )
        }
        _ => Error::internal_source("a database operation failed", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(backend_of("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert!(backend_of("mysql://x").is_err());
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:****@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            take_schema_param("postgres://h/db?schema=abc"),
            ("postgres://h/db".into(), Some("abc".into()))
        );
        assert_eq!(
            take_schema_param("postgres://h/db?sslmode=disable&schema=x"),
            ("postgres://h/db?sslmode=disable".into(), Some("x".into()))
        );
        assert_eq!(
            take_schema_param("postgres://h/db"),
            ("postgres://h/db".into(), None)
        );
    }
}
