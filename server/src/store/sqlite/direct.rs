//! The hot reads of the SQLite store (lookups of tokens, sites, notices and a person's
//! events; exports) through rusqlite: short reads at once on the calling thread, long ones
//! on a blocking thread, and rows read in place.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and talks to it over
//! channels: every statement costs two thread hand-offs, and every row crosses as owned
//! values, one allocation per column. For a status lookup (two statements) and for an export
//! (a million rows) that is most of the time. Both drivers link the same SQLite and open the
//! same WAL file; these connections only read (`SQLITE_OPEN_READ_ONLY`), so they never block
//! the writer, and each statement sees one consistent snapshot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Columns;
use crate::store::{StoreError, StoreResult};

/// How much of the file each reader maps (address space, not memory): SQLite's own
/// ceiling, `SQLITE_MAX_MMAP_SIZE`; beyond it reads fall back to `pread`.
const MMAP_BYTES: i64 = 0x7fff_0000;

/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 32;

/// A small pool of read-only connections to one database file.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    /// Connections kept open for reuse: one per thread that has read at once so far.
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn open(&self, mmap: bool) -> StoreResult<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if mmap {
            // Pages read through a memory map rather than a `pread` each (a status lookup
            // touches a dozen index pages): the OS page cache, shared by every reader.
            conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        }
        Ok(conn)
    }

    fn take(&self) -> StoreResult<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.open(true),
        }
    }

    /// Keeps every connection for reuse: at most one `now` per runtime thread is ever out
    /// at once (exports read on connections of their own), so the pool stays that small. A
    /// connection dropped here would cost the next reader a fresh open, which parses the
    /// whole schema and prepares its statements again.
    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
    }

    /// Runs a short read on this thread, which it blocks: lookups by a unique key (tokens,
    /// sites, notices) and a person's events through their indexes, which take microseconds
    /// once their pages are cached, less than handing them to a blocking thread and back
    /// would.
    pub(crate) fn now<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.take()?;
        let out = read(&conn);
        self.give_back(conn);
        out
    }

    /// Runs a long read (an export) on a connection of its own, on this thread (which may
    /// block): it takes no pooled connection, and reads with `pread` rather than a
    /// memory map, so a scan of the whole file does not count as the server's memory.
    pub(crate) fn scan<T>(
        &self,
        read: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        read(&self.open(false)?)
    }
}

/// The row `sql` finds (at most one is expected), parsed by `parse`; `None` when none.
pub(crate) fn optional<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    parse: impl FnOnce(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(parse).transpose()
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> StoreResult<&str> {
        self.get_ref(i)?
            .as_str()
            .map_err(|e| column(i, e))
    }

    fn opt_text(&self, i: usize) -> StoreResult<Option<&str>> {
        self.get_ref(i)?
            .as_str_or_null()
            .map_err(|e| column(i, e))
    }

    fn int(&self, i: usize) -> StoreResult<i64> {
        self.get_ref(i)?
            .as_i64()
            .map_err(|e| column(i, e))
    }

    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.get_ref(i)?
            .as_i64_or_null()
            .map_err(|e| column(i, e))
    }

    fn opt_blob(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        self.get_ref(i)?
            .as_blob_or_null()
            .map_err(|e| column(i, e))
    }
}

fn column(i: usize, err: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!("column {i}: {err}"))
}
