//! `EmbeddedStore`: the store port on one SQLite file (WAL, transactional, survives restarts).
//! Opening the file and the connection are here; each role of the port is implemented in its
//! own file: `config.rs`, `runs.rs`, `directory.rs`, `points.rs` (writes of values and
//! activity), `reads.rs` and `unmatched.rs`. Every statement is scoped by tenant.

mod blocks;
mod budget;
mod config;
mod directory;
mod keys;
mod migrate;
mod points;
mod reads;
mod run_status;
mod runs;
mod unmatched;

use super::StoreError;
use chrono::NaiveDate;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Mutex<Inner>>,
    /// Store operations so far (calls through the port), for the run-cost figures.
    operations: Arc<std::sync::atomic::AtomicU64>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::unavailable_from("SQLite", e)
    }
}

/// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), waiting up to the
/// busy timeout for another process. A deferred one would read first and then fail with
/// "database is locked" when another connection wrote in between (two processes on one file).
pub(crate) fn write_tx(c: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    Ok(c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

fn corrupt(e: impl Into<crate::error::Cause>) -> StoreError {
    StoreError::corrupt_from("a stored record does not decode", e)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(corrupt)
}

fn parse_day(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(corrupt)
}

/// The layout of a new file: `schema.sql`, then the block rows of values and activity
/// (`blocks.sql`, apart so that the migration to schema version 7 makes them again).
pub(crate) const SCHEMA: &str = concat!(include_str!("schema.sql"), include_str!("blocks.sql"));

impl EmbeddedStore {
    /// Opens (creating if needed) `DIR/pendo-sync.sqlite`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::unavailable_from(format!("creating {}", dir.display()), e))?;
        Self::open(&dir.join(Self::FILE))
    }

    /// The store file of a data folder.
    pub const FILE: &'static str = "pendo-sync.sqlite";

    /// Removes the store of `DIR` (its file and SQLite's companions), if any: the next
    /// `open_dir` starts empty. Only for a process that holds the folder (no connection open).
    pub fn remove_files(dir: &Path) -> Result<(), StoreError> {
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.join(format!("{}{suffix}", Self::FILE));
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::unavailable_from(
                        format!("removing {}", p.display()),
                        e,
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        migrate::migrate(&mut conn)?;
        // SQLite's default page cache (2 MiB): a 16 MiB cache was measured at +10 MiB peak
        // resident memory for a 1M-row sync (72 MiB, over the 64 MiB budget) for a small gain in
        // write speed. A WAL checkpoint every ~16 MiB instead of every 4 MiB, so a chunk's
        // commit is not followed by a checkpoint (and its fsync) each time.
        // Durability is unchanged: WAL with synchronous = NORMAL (schema.sql) keeps every
        // committed transaction across a crash of the process; only a power loss can lose the
        // last commits (never corrupt the file).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 4000;")?;
        // Statement journals in memory: a multi-row insert of a chunk's values (data.rs) keeps
        // the pages it changes there until it completes, a few pages each; in a temporary file
        // they cost a write each (~25% of a chunk's write time). Set after the migration, whose
        // one-time sort of a whole table would then be held in memory too; the other sorts are
        // of a series' points or a page of activity.
        conn.execute_batch("PRAGMA temp_store = MEMORY;")?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                conn,
                keys: keys::KeyCache::default(),
            })),
            operations: Arc::default(),
        })
    }

    /// Store operations so far (each a call through the port; clones share the count).
    pub fn operations(&self) -> u64 {
        self.operations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends the holds of workers that are gone (see `runs::end_holds`): for the local runner
    /// only, once it holds the data folder's consumer lock.
    pub fn end_holds_of_dead_workers(&self) -> Result<usize, StoreError> {
        self.with_connection(runs::end_holds)
    }

    /// Runs `f` on the connection without counting a store operation: for the queue kept in
    /// the same file (`queue::embedded`), whose operations are the queue's, not the store's.
    pub(crate) fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.inner.lock().map_err(|_| {
            StoreError::unavailable(
                "the store's lock is poisoned (a thread panicked while holding it)",
            )
        })?;
        f(&mut guard.conn)
    }

    /// Runs `f` on the connection. SQLite calls are short; the lock serialises writers the way
    /// SQLite would anyway.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_keys(|c, _| f(c))
    }

    /// [`EmbeddedStore::with`], with the cache of the point tables' keys.
    fn with_keys<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut keys::KeyCache) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.operations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut guard = self.inner.lock().map_err(|_| {
            StoreError::unavailable(
                "the store's lock is poisoned (a thread panicked while holding it)",
            )
        })?;
        let Inner { conn, keys } = &mut *guard;
        f(conn, keys)
    }
}

/// The connection and what the store keeps beside it.
struct Inner {
    conn: Connection,
    keys: keys::KeyCache,
}

#[cfg(test)]
mod tests {
    /// The store contract, one test per sentence, each on a new in-memory store.
    mod contract {
        crate::store_contract_tests!(crate::store::embedded::EmbeddedStore::in_memory()
            .expect("an in-memory SQLite store opens"));
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::domain::TenantId::parse("t1").unwrap();
        {
            let s = super::EmbeddedStore::open_dir(dir.path()).unwrap();
            crate::store::ConfigStore::put_integration(
                &s,
                &crate::domain::Integration::new(t.clone()),
            )
            .await
            .unwrap();
        }
        let s = super::EmbeddedStore::open_dir(dir.path()).unwrap();
        let i = crate::store::ConfigStore::get_integration(&s, &t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(i.version, 1);
        let page_size: i64 = s
            .with(|c| Ok(c.query_row("PRAGMA page_size", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(page_size, 8192);
    }
}
