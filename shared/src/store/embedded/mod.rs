//! `EmbeddedStore`: the store port on one SQLite file (WAL, transactional, survives restarts).
//! Configuration operations are here; values, activity and the directory are in `data.rs`.
//! Every statement is scoped by tenant.

mod blocks;
mod directory;
mod keys;
mod migrate;
mod points;
mod reads;
mod run_status;
mod runs;
mod unmatched;

use super::{ActivityOf, MetricInfo, SeriesPoint, Store, StoreError};
use crate::domain::mapping::LastError;
use crate::domain::Window;
use crate::domain::{
    Activity, ChunkOutcome, ChunkStart, DirectoryImport, DirectoryObject, EndUser, EndUserInput,
    ExportRow, ImportId, Integration, Mapping, MappingId, MappingRun, MappingState, MetricValue,
    ObjectRef, RunFlag, RunId, RunProgress, SyncRun, Target, TenantId, UnmatchedEntry,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
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
        StoreError::Unavailable(e.to_string())
    }
}

/// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), waiting up to the
/// busy timeout for another process. A deferred one would read first and then fail with
/// "database is locked" when another connection wrote in between (two processes on one file).
pub(crate) fn write_tx(c: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    Ok(c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
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

impl EmbeddedStore {
    /// Opens (creating if needed) `DIR/pendo-sync.sqlite`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
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
                    return Err(StoreError::Unavailable(format!(
                        "removing {}: {e}",
                        p.display()
                    )))
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
        conn.execute_batch(include_str!("schema.sql"))?;
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
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
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
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        let Inner { conn, keys } = &mut *guard;
        f(conn, keys)
    }
}

/// The connection and what the store keeps beside it.
struct Inner {
    conn: Connection,
    keys: keys::KeyCache,
}

fn read_state(conn: &Connection, t: &str, id: &str) -> Result<Option<MappingState>, StoreError> {
    let row = conn
        .query_row(
            "SELECT generation, last_synced_day, last_run, last_error, last_ok_run
             FROM mapping_state WHERE tenant=?1 AND id=?2",
            params![t, id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((generation, day, run, err, ok_run)) = row else {
        return Ok(None);
    };
    let run_id = |r: Option<String>| r.as_deref().map(RunId::parse).transpose().map_err(corrupt);
    Ok(Some(MappingState {
        generation: generation as u64,
        last_synced_day: day.as_deref().map(parse_day).transpose()?,
        last_run: run_id(run)?,
        last_successful_run: run_id(ok_run)?,
        last_error: err.as_deref().map(from_json::<LastError>).transpose()?,
    }))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get_integration(&self, t: &TenantId) -> Result<Option<Integration>, StoreError> {
        self.with(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM integrations WHERE tenant=?1",
                    [t.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            body.as_deref().map(from_json).transpose()
        })
    }

    async fn put_integration(&self, i: &Integration) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let body = to_json(&stored)?;
        self.with(|c| {
            let tx = write_tx(c)?;
            let current: Option<i64> = tx
                .query_row("SELECT version FROM integrations WHERE tenant=?1", [i.tenant.as_str()], |r| r.get(0))
                .optional()?;
            if current.unwrap_or(0) as u64 != i.version {
                return Err(StoreError::Conflict(format!(
                    "integration version is {}, expected {}",
                    current.unwrap_or(0),
                    i.version
                )));
            }
            tx.execute(
                "INSERT INTO integrations (tenant, version, generation, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(tenant) DO UPDATE SET version=excluded.version, generation=excluded.generation, body=excluded.body",
                params![i.tenant.as_str(), stored.version as i64, stored.generation as i64, body],
            )?;
            tx.commit()?;
            Ok(stored.version)
        })
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT tenant FROM integrations ORDER BY tenant")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| {
                r.map_err(StoreError::from)
                    .and_then(|s| TenantId::parse(&s).map_err(corrupt))
            })
            .collect()
        })
    }

    async fn put_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
        let body = to_json(m)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO mappings (tenant, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(tenant, id) DO UPDATE SET body=excluded.body",
                params![m.tenant.as_str(), m.id.as_str(), body],
            )?;
            Ok(())
        })
    }

    async fn get_mapping(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<Mapping>, StoreError> {
        self.with(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM mappings WHERE tenant=?1 AND id=?2",
                    params![t.as_str(), id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            body.as_deref().map(from_json).transpose()
        })
    }

    async fn list_mappings(&self, t: &TenantId) -> Result<Vec<Mapping>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT body FROM mappings WHERE tenant=?1")?;
            let rows = st.query_map([t.as_str()], |r| r.get::<_, String>(0))?;
            let mut out: Vec<Mapping> = rows
                .map(|r| r.map_err(StoreError::from).and_then(|s| from_json(&s)))
                .collect::<Result<_, _>>()?;
            out.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.id.cmp(&b.id))
            });
            Ok(out)
        })
    }

    async fn delete_mapping(&self, t: &TenantId, id: &MappingId) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let p = params![t.as_str(), id.as_str()];
            let n = tx.execute("DELETE FROM mappings WHERE tenant=?1 AND id=?2", p)?;
            tx.execute("DELETE FROM mapping_state WHERE tenant=?1 AND id=?2", p)?;
            points::delete_values_of(&tx, t, id)?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    async fn get_mapping_state(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<MappingState>, StoreError> {
        self.with(|c| read_state(c, t.as_str(), id.as_str()))
    }

    async fn reset_mapping_state(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO mapping_state (tenant, id, generation, last_synced_day, last_run, last_error)
                 VALUES (?1, ?2, ?3, NULL, NULL, NULL)
                 ON CONFLICT(tenant, id) DO UPDATE SET generation=excluded.generation, last_synced_day=NULL",
                params![t.as_str(), id.as_str(), generation as i64],
            )?;
            Ok(())
        })
    }

    async fn advance_cursor(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        to: NaiveDate,
        succeeded: Option<&RunId>,
    ) -> Result<(), StoreError> {
        let day = to.format("%Y-%m-%d").to_string();
        self.with(|c| {
            let n = c.execute(
                "UPDATE mapping_state SET
                    last_synced_day = CASE WHEN last_synced_day IS NULL OR last_synced_day < ?4 THEN ?4 ELSE last_synced_day END,
                    last_ok_run = coalesce(?5, last_ok_run),
                    last_error = CASE WHEN ?5 IS NULL THEN last_error END
                 WHERE tenant=?1 AND id=?2 AND generation=?3",
                params![t.as_str(), id.as_str(), generation as i64, day, succeeded.map(RunId::as_str)],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("mapping {id} is not at generation {generation}")));
            }
            Ok(())
        })
    }

    async fn set_mapping_error(
        &self,
        t: &TenantId,
        id: &MappingId,
        error: Option<LastError>,
    ) -> Result<(), StoreError> {
        let e = error.as_ref().map(to_json).transpose()?;
        self.with(|c| {
            c.execute(
                "UPDATE mapping_state SET last_error=?3 WHERE tenant=?1 AND id=?2",
                params![t.as_str(), id.as_str(), e],
            )?;
            Ok(())
        })
    }

    async fn set_last_run(
        &self,
        t: &TenantId,
        id: &MappingId,
        run: &RunId,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mapping_state SET last_run=?3 WHERE tenant=?1 AND id=?2",
                params![t.as_str(), id.as_str(), run.as_str()],
            )?;
            Ok(())
        })
    }

    async fn mapping_run(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<MappingRun>, StoreError> {
        self.with(|c| run_status::mapping_run(c, t, run, mapping))
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            runs::put_run(&tx, run)?;
            tx.commit()?;
            Ok(())
        })
    }

    async fn put_import(&self, i: &DirectoryImport) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let body = to_json(&stored)?;
        self.with(|c| {
            let tx = write_tx(c)?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM imports WHERE tenant=?1 AND id=?2",
                    params![i.tenant.as_str(), i.id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if current.unwrap_or(0) as u64 != i.version {
                return Err(StoreError::Conflict(format!(
                    "import {} is not at version {}",
                    i.id, i.version
                )));
            }
            tx.execute(
                "INSERT INTO imports (tenant, id, started_at, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(tenant, id) DO UPDATE SET version=excluded.version, body=excluded.body",
                params![
                    i.tenant.as_str(),
                    i.id.as_str(),
                    i.started_at.to_rfc3339(),
                    stored.version as i64,
                    body
                ],
            )?;
            tx.commit()?;
            Ok(stored.version)
        })
    }

    async fn get_import(
        &self,
        t: &TenantId,
        id: &ImportId,
    ) -> Result<Option<DirectoryImport>, StoreError> {
        self.with(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM imports WHERE tenant=?1 AND id=?2",
                    params![t.as_str(), id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            body.as_deref().map(from_json).transpose()
        })
    }

    async fn list_imports(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<DirectoryImport>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT body FROM imports WHERE tenant=?1 ORDER BY started_at DESC, id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![t.as_str(), limit as i64], |r| {
                r.get::<_, String>(0)
            })?;
            rows.map(|r| r.map_err(StoreError::from).and_then(|s| from_json(&s)))
                .collect()
        })
    }

    async fn get_run(&self, t: &TenantId, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        self.with(|c| runs::get_run(c, t, id))
    }

    async fn list_runs(&self, t: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        self.with(|c| runs::list_runs(c, t, limit))
    }

    async fn begin_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ChunkStart, StoreError> {
        self.with(|c| runs::begin_chunk(c, t, run, index, at, lease_until))
    }

    async fn finish_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        outcome: &ChunkOutcome,
    ) -> Result<RunProgress, StoreError> {
        self.with(|c| runs::finish_chunk(c, t, run, index, outcome))
    }

    async fn retry_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| runs::retry_chunk(c, t, run, index, error, at))
    }

    async fn run_progress(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<RunProgress, StoreError> {
        self.with(|c| runs::progress(c, t, run, mapping))
    }

    async fn set_run_flag(
        &self,
        t: &TenantId,
        run: &RunId,
        flag: RunFlag,
    ) -> Result<bool, StoreError> {
        self.with(|c| runs::set_flag(c, t, run, flag))
    }

    async fn run_source(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.with(|c| runs::source(c, t, run, mapping))
    }

    async fn upsert_objects(
        &self,
        t: &TenantId,
        kind: Target,
        objects: &[DirectoryObject],
    ) -> Result<(), StoreError> {
        self.with(|c| directory::upsert_objects(c, t, kind, objects))
    }
    async fn list_objects(
        &self,
        t: &TenantId,
        kind: Target,
    ) -> Result<Vec<DirectoryObject>, StoreError> {
        self.with(|c| directory::list_objects(c, t, kind))
    }
    async fn list_end_users(&self, t: &TenantId) -> Result<Vec<EndUser>, StoreError> {
        self.with(|c| directory::list_end_users(c, t))
    }
    async fn directory_stamp(&self, t: &TenantId) -> Result<Option<u64>, StoreError> {
        self.with(|c| directory::directory_stamp(c, t).map(Some))
    }
    async fn create_end_user_if_absent(
        &self,
        t: &TenantId,
        u: &EndUserInput,
    ) -> Result<(EndUser, bool), StoreError> {
        self.with(|c| directory::create_end_user_if_absent(c, t, u))
    }
    async fn upsert_end_user(&self, t: &TenantId, u: &EndUserInput) -> Result<EndUser, StoreError> {
        self.with(|c| directory::upsert_end_user(c, t, u))
    }
    async fn fill_end_user(
        &self,
        t: &TenantId,
        id: &str,
        email: Option<&str>,
        name: Option<&str>,
        surname: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| directory::fill_end_user(c, t, id, email, name, surname))
    }
    async fn replace_chunk(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        values: &[MetricValue],
        activities: &[Activity],
    ) -> Result<(), StoreError> {
        let records = crate::store::RecordSlices { values, activities };
        self.with_keys(|c, keys| {
            points::replace_chunk(c, keys, t, generation, mapping, window, &records)
        })
    }
    async fn replace_chunk_from(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        records: &dyn crate::store::ChunkRecords,
    ) -> Result<(), StoreError> {
        self.with_keys(|c, keys| {
            points::replace_chunk(c, keys, t, generation, mapping, window, records)
        })
    }
    async fn purge_below_generation(
        &self,
        t: &TenantId,
        generation: u64,
    ) -> Result<u64, StoreError> {
        self.with(|c| points::purge_below_generation(c, t, generation))
    }
    async fn delete_mapping_data(
        &self,
        t: &TenantId,
        mapping: &MappingId,
    ) -> Result<u64, StoreError> {
        self.with(|c| points::delete_mapping_data(c, t, mapping))
    }
    async fn replace_unmatched(
        &self,
        t: &TenantId,
        mapping: &MappingId,
        generation: u64,
        window: Window,
        entries: &[UnmatchedEntry],
    ) -> Result<(), StoreError> {
        self.with(|c| unmatched::replace(c, t, mapping, generation, window, entries))
    }
    async fn unmatched_of(
        &self,
        t: &TenantId,
        mapping: &MappingId,
        generation: u64,
    ) -> Result<Vec<UnmatchedEntry>, StoreError> {
        self.with(|c| unmatched::of_mapping(c, t, mapping, generation))
    }
    async fn delete_unmatched(&self, t: &TenantId, mapping: &MappingId) -> Result<(), StoreError> {
        self.with(|c| unmatched::delete(c, t, mapping))
    }
    async fn read_series(
        &self,
        t: &TenantId,
        object: &ObjectRef,
        metric: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.with(|c| reads::read_series(c, t, object, metric, from, to))
    }
    async fn list_metrics(
        &self,
        t: &TenantId,
        object: &ObjectRef,
    ) -> Result<Vec<MetricInfo>, StoreError> {
        self.with(|c| reads::list_metrics(c, t, object))
    }
    async fn recent_activity(
        &self,
        t: &TenantId,
        of: &ActivityOf,
        from: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        self.with(|c| reads::recent_activity(c, t, of, from, limit))
    }
    async fn export(&self, t: Option<&TenantId>) -> Result<Vec<ExportRow>, StoreError> {
        self.with(|c| reads::export(c, t))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn embedded_store_passes_the_store_contract() {
        let store = super::EmbeddedStore::in_memory().unwrap();
        crate::store::contract::run_all(&store).await;
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::domain::TenantId::parse("t1").unwrap();
        {
            let s = super::EmbeddedStore::open_dir(dir.path()).unwrap();
            crate::store::Store::put_integration(&s, &crate::domain::Integration::new(t.clone()))
                .await
                .unwrap();
        }
        let s = super::EmbeddedStore::open_dir(dir.path()).unwrap();
        let i = crate::store::Store::get_integration(&s, &t)
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
