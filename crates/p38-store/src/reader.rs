//! Reads of the request path on SQLite, run whole on tokio's blocking pool.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every
//! row to the async side through a channel, copied twice on the way (into
//! a `SqliteRow`, then an `AnyRow`): a page of 100 agents was 101 hand-overs
//! and as many thread wake-ups, most of a listing's time. Here one blocking
//! task steps the statement and decodes the rows in place, straight from
//! SQLite's buffers, and hands over the finished page once.
//!
//! The SQL is the same text the PostgreSQL path runs (SQLite reads `$1` as
//! the first parameter), and the rows go through the same decoder
//! ([`crate::rows::Columns`]). Writes stay on sqlx; these connections are
//! `query_only`. In WAL mode a reader sees every committed write and never
//! waits for the writer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value;
use tokio::sync::Semaphore;

use p38_core::{Error, Result};

use crate::rows::Columns;

/// Read-only SQLite connections, opened on first use and kept.
pub(crate) struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// At most this many reads at once (each holds a blocking thread).
    permits: Semaphore,
}

impl SqliteReader {
    pub(crate) fn new(path: PathBuf, max: u32) -> Arc<SqliteReader> {
        Arc::new(SqliteReader {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1) as usize),
        })
    }

    /// Every row of `sql` with `params`, decoded by `decode`.
    pub(crate) async fn all<T: Send + 'static>(
        self: &Arc<Self>,
        sql: &'static str,
        params: Vec<Value>,
        decode: impl Fn(&rusqlite::Row<'_>) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(sql).map_err(sqlite_err)?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(sqlite_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err)? {
                out.push(decode(row)?);
            }
            Ok(out)
        })
        .await
    }

    /// The first row of `sql`, if any.
    pub(crate) async fn optional<T: Send + 'static>(
        self: &Arc<Self>,
        sql: &'static str,
        params: Vec<Value>,
        decode: impl Fn(&rusqlite::Row<'_>) -> Result<T> + Send + 'static,
    ) -> Result<Option<T>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(sql).map_err(sqlite_err)?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(sqlite_err)?;
            rows.next().map_err(sqlite_err)?.map(&decode).transpose()
        })
        .await
    }

    /// Runs `f` on a blocking thread with an idle connection (or a new one),
    /// and keeps the connection for the next read.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| {
            // Closed with the store's pool: the same fault, in the
            // same words, as a write after the close.
            crate::db_err(sqlx::Error::PoolClosed)
        })?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match me.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                Some(c) => c,
                None => me.open()?,
            };
            let out = f(&conn);
            me.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            out
        })
        .await
        .map_err(|e| Error::internal_source("a database read stopped", e))?
    }

    fn open(&self) -> Result<rusqlite::Connection> {
        let c = rusqlite::Connection::open(&self.path).map_err(|e| {
            Error::unavailable_source(
                "the database cannot be opened right now; try again shortly",
                e,
            )
        })?;
        c.busy_timeout(Duration::from_secs(10))
            .map_err(sqlite_err)?;
        c.pragma_update(None, "query_only", true)
            .map_err(sqlite_err)?;
        c.set_prepared_statement_cache_capacity(32);
        Ok(c)
    }

    /// Closes the idle connections.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A busy database is unavailable (try again); anything else is internal,
/// with the detail in the log.
fn sqlite_err(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::unavailable_source("the database is busy right now; try again shortly", e)
        }
        // Logged once, where the error becomes a response.
        _ => Error::internal_source("a database read failed", e),
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, col: &str) -> Result<i64> {
        self.get(col).map_err(sqlite_err)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.get(col).map_err(sqlite_err)
    }
    fn text(&self, col: &str) -> Result<String> {
        self.get(col).map_err(sqlite_err)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.get(col).map_err(sqlite_err)
    }
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        let text = self
            .get_ref(col)
            .map_err(sqlite_err)?
            .as_str_or_null()
            .map_err(|e| Error::internal(format!("corrupt {col} in store: {e}")))?;
        text.map(|t| {
            serde_json::from_str(t)
                .map_err(|e| Error::internal(format!("corrupt {col} in store: {e}")))
        })
        .transpose()
    }
}
