//! Runs on the embedded store: a header row with the run's counters, a row per chunk and a row
//! per (run, mapping) with that mapping's counters and planning source. Recording a chunk's
//! outcome reads and writes those three rows only (constant cost, whatever the run's size). The
//! mapping's row also holds its status numbers (`run_status.rs`).

use super::EmbeddedStore;
use super::{corrupt, from_json, parse_day, to_json, write_tx};
use crate::domain::{
    ChunkOutcome, ChunkRecord, ChunkStart, MappingId, MappingRun, MappingRunCounters, Release,
    RunFlag, RunId, RunProgress, SyncRun, TenantId,
};
use crate::store::RunStore;
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

fn chunk_not_found(run: &RunId, index: usize) -> StoreError {
    StoreError::NotFound(format!("chunk {index} of run {run}"))
}

/// Writes `run` whole: header, chunks, per-mapping counters and sources (replacing any earlier
/// copy of the same run).
pub(super) fn put_run(tx: &Transaction<'_>, run: &SyncRun) -> Result<(), StoreError> {
    let (t, id) = (run.tenant.as_str(), run.id.as_str());
    let header = SyncRun {
        chunks: Vec::new(),
        ..run.clone()
    };
    let p = run.progress(None);
    tx.execute(
        "INSERT INTO run_headers
            (tenant, id, started_at, body, total, open, creators_open, deferred, release, queued)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(tenant, id) DO UPDATE SET body=excluded.body, total=excluded.total,
            open=excluded.open, creators_open=excluded.creators_open,
            deferred=excluded.deferred, release=excluded.release, queued=excluded.queued",
        params![
            t,
            id,
            run.started_at.to_rfc3339(),
            to_json(&header)?,
            p.total as i64,
            p.open as i64,
            p.creators_open as i64,
            p.deferred as i64,
            to_json(&run.release)?,
            run.queued,
        ],
    )?;
    tx.execute(
        "DELETE FROM run_chunks WHERE tenant=?1 AND run=?2",
        params![t, id],
    )?;
    tx.execute(
        "DELETE FROM run_mappings WHERE tenant=?1 AND run=?2",
        params![t, id],
    )?;
    {
        let mut ins =
            tx.prepare("INSERT INTO run_chunks (tenant, run, idx, body) VALUES (?1, ?2, ?3, ?4)")?;
        for (i, c) in run.chunks.iter().enumerate() {
            ins.execute(params![t, id, i as i64, to_json(c)?])?;
        }
    }
    let mut ins = tx.prepare(
        "INSERT INTO run_mappings (tenant, run, mapping, open, not_done, end_day, source,
            chunks, failed, stats, error, last_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut mappings: Vec<&MappingId> = run.mappings();
    for m in run.sources.keys() {
        if !mappings.contains(&m) {
            mappings.push(m);
        }
    }
    for m in mappings {
        let mp = run.progress(Some(m));
        let source = run.sources.get(m).map(to_json).transpose()?;
        let c = MappingRunCounters::of(run, m);
        ins.execute(params![
            t,
            id,
            m.as_str(),
            mp.mapping_open as i64,
            mp.mapping_not_done as i64,
            mp.mapping_end.map(|d| d.to_string()),
            source,
            c.chunks as i64,
            c.failed as i64,
            to_json(&c.stats)?,
            c.error,
            c.last_at.map(|a| a.to_rfc3339()),
        ])?;
    }
    Ok(())
}

pub(super) fn header(
    c: &Connection,
    t: &TenantId,
    id: &RunId,
) -> Result<Option<SyncRun>, StoreError> {
    let row: Option<(String, String, bool)> = c
        .query_row(
            "SELECT body, release, queued FROM run_headers WHERE tenant=?1 AND id=?2",
            params![t.as_str(), id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(body, release, queued)| {
        let mut run: SyncRun = from_json(&body)?;
        run.release = from_json(&release)?;
        run.queued = queued;
        Ok(run)
    })
    .transpose()
}

pub(super) fn get_run(
    c: &Connection,
    t: &TenantId,
    id: &RunId,
) -> Result<Option<SyncRun>, StoreError> {
    let Some(mut run) = header(c, t, id)? else {
        return Ok(None);
    };
    let mut st =
        c.prepare("SELECT idx, body FROM run_chunks WHERE tenant=?1 AND run=?2 ORDER BY idx")?;
    let rows = st.query_map(params![t.as_str(), id.as_str()], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    for (expected, row) in rows.enumerate() {
        let (idx, body) = row?;
        if idx != expected as i64 {
            return Err(corrupt(format!("run {id} lacks chunk {expected}")));
        }
        run.chunks.push(from_json(&body)?);
    }
    Ok(Some(run))
}

fn read_chunk(
    tx: &Connection,
    t: &TenantId,
    run: &RunId,
    index: usize,
) -> Result<ChunkRecord, StoreError> {
    let body: Option<String> = tx
        .query_row(
            "SELECT body FROM run_chunks WHERE tenant=?1 AND run=?2 AND idx=?3",
            params![t.as_str(), run.as_str(), index as i64],
            |r| r.get(0),
        )
        .optional()?;
    from_json(&body.ok_or_else(|| chunk_not_found(run, index))?)
}

fn write_chunk(
    tx: &Connection,
    t: &TenantId,
    run: &RunId,
    index: usize,
    c: &ChunkRecord,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE run_chunks SET body=?4 WHERE tenant=?1 AND run=?2 AND idx=?3",
        params![t.as_str(), run.as_str(), index as i64, to_json(c)?],
    )?;
    Ok(())
}

pub(super) fn progress(
    c: &Connection,
    t: &TenantId,
    run: &RunId,
    mapping: &MappingId,
) -> Result<RunProgress, StoreError> {
    let head: Option<(i64, i64, i64, i64, String, bool)> = c
        .query_row(
            "SELECT total, open, creators_open, deferred, release, queued
             FROM run_headers WHERE tenant=?1 AND id=?2",
            params![t.as_str(), run.as_str()],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let (total, open, creators_open, deferred, release, queued) =
        head.ok_or_else(|| StoreError::NotFound(format!("run {run}")))?;
    let m: Option<(i64, i64, Option<String>)> = c
        .query_row(
            "SELECT open, not_done, end_day FROM run_mappings
             WHERE tenant=?1 AND run=?2 AND mapping=?3",
            params![t.as_str(), run.as_str(), mapping.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (mapping_open, mapping_not_done, end) = m.unwrap_or((0, 0, None));
    let n = |v: i64| u64::try_from(v).map_err(|_| corrupt(format!("run {run}: counter {v}")));
    Ok(RunProgress {
        applied: false,
        total: n(total)?,
        open: n(open)?,
        creators_open: n(creators_open)?,
        deferred: n(deferred)?,
        release: from_json(&release)?,
        queued,
        mapping_open: n(mapping_open)?,
        mapping_not_done: n(mapping_not_done)?,
        mapping_end: end.as_deref().map(parse_day).transpose()?,
    })
}

/// Ends every hold a worker took on work in progress: the chunks' leases of open runs, the
/// Re-sync all plannings' holds, and the page holds of running directory imports. Only for a process that knows every worker of the file is gone (the
/// local runner, once it holds the folder's consumer lock): the deliveries that held them died
/// with their process, and their messages are delivered again at once. Returns how many holds
/// ended.
pub(super) fn end_holds(c: &mut Connection) -> Result<usize, StoreError> {
    let tx = write_tx(c)?;
    let mut ended = tx.execute(
        "UPDATE run_headers SET planning_until = NULL WHERE planning_until IS NOT NULL",
        [],
    )?;
    let held: Vec<(String, String, i64, String)> = {
        let mut st = tx.prepare(
            "SELECT c.tenant, c.run, c.idx, c.body FROM run_headers h
             JOIN run_chunks c ON c.tenant = h.tenant AND c.run = h.id
             WHERE h.open > 0",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (t, run, idx, body) in held {
        let mut chunk: ChunkRecord = from_json(&body)?;
        if chunk.leased_until.take().is_some() {
            tx.execute(
                "UPDATE run_chunks SET body=?4 WHERE tenant=?1 AND run=?2 AND idx=?3",
                params![t, run, idx, to_json(&chunk)?],
            )?;
            ended += 1;
        }
    }
    let imports: Vec<(String, String, String)> = {
        let mut st = tx.prepare("SELECT tenant, id, body FROM imports")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (t, id, body) in imports {
        let mut import: crate::domain::DirectoryImport = from_json(&body)?;
        if import.leased_until.take().is_some() {
            tx.execute(
                "UPDATE imports SET body=?3 WHERE tenant=?1 AND id=?2",
                params![t, id, to_json(&import)?],
            )?;
            ended += 1;
        }
    }
    tx.commit()?;
    Ok(ended)
}

/// Schema version 3: the runs of `runs` (one JSON body each, chunks included) into the header,
/// chunk and mapping rows; `runs` dropped.
pub(super) fn migrate_runs(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let old: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs')",
        [],
        |r| r.get(0),
    )?;
    if !old {
        return Ok(());
    }
    let bodies: Vec<String> = {
        let mut st = tx.prepare("SELECT body FROM runs")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for body in bodies {
        let mut run: SyncRun = from_json(&body)?;
        // Runs of earlier versions were queued when they were planned.
        run.queued = run.planned;
        if run.chunks.iter().any(|c| c.deferred)
            && run.chunks.iter().all(|c| c.deferred || c.status.is_final())
        {
            run.release = Release::Released;
        }
        put_run(tx, &run)?;
    }
    tx.execute_batch("DROP TABLE runs;")?;
    Ok(())
}

#[async_trait]
impl RunStore for EmbeddedStore {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            put_run(&tx, run)?;
            tx.commit()?;
            Ok(())
        })
    }

    async fn create_run(&self, run: &SyncRun) -> Result<bool, StoreError> {
        if !run.chunks.is_empty() {
            return Err(StoreError::Conflict(
                "a run is created before it has chunks".into(),
            ));
        }
        self.with(|c| {
            let tx = write_tx(c)?;
            if header(&tx, &run.tenant, &run.id)?.is_some() {
                return Ok(false);
            }
            put_run(&tx, run)?;
            tx.commit()?;
            Ok(true)
        })
    }

    async fn get_run(&self, t: &TenantId, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        self.with(|c| get_run(c, t, id))
    }

    async fn run_progress(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<RunProgress, StoreError> {
        self.with(|c| progress(c, t, run, mapping))
    }

    async fn mapping_run(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<MappingRun>, StoreError> {
        self.with(|c| super::run_status::mapping_run(c, t, run, mapping))
    }

    async fn list_runs(&self, t: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        self.with(|c| {
            let ids: Vec<String> = {
                let mut st = c.prepare(
            "SELECT id FROM run_headers WHERE tenant=?1 ORDER BY started_at DESC, id DESC LIMIT ?2",
        )?;
                let rows =
                    st.query_map(params![t.as_str(), limit as i64], |r| r.get::<_, String>(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let id = RunId::parse(&id).map_err(corrupt)?;
                if let Some(r) = get_run(c, t, &id)? {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    async fn begin_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        delivery: &str,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ChunkStart, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let mut chunk = read_chunk(&tx, t, run, index)?;
            if chunk.delivery.as_deref() == Some(delivery) {
                // This delivery's call again: counted already.
                let taken = !chunk.status.is_final()
                    && chunk.leased_by.as_deref() == Some(delivery)
                    && chunk.leased_until.is_some();
                return Ok(ChunkStart { chunk, taken });
            }
            chunk.delivery = Some(delivery.to_string());
            chunk.attempts += 1;
            chunk.updated_at = Some(at);
            let taken = !chunk.status.is_final() && chunk.leased_until.is_none_or(|l| l <= at);
            if taken {
                chunk.leased_until = Some(lease_until);
                chunk.leased_by = Some(delivery.to_string());
            }
            write_chunk(&tx, t, run, index, &chunk)?;
            tx.commit()?;
            Ok(ChunkStart { chunk, taken })
        })
    }

    async fn retry_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        delivery: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let mut chunk = read_chunk(&tx, t, run, index)?;
            let holds =
                chunk.leased_by.as_deref() == Some(delivery) && chunk.leased_until.is_some();
            if !chunk.status.is_final() && holds {
                chunk.retries += 1;
                chunk.error = Some(error.to_string());
                chunk.updated_at = Some(at);
                chunk.leased_until = None;
                write_chunk(&tx, t, run, index, &chunk)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn finish_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        outcome: &ChunkOutcome,
    ) -> Result<RunProgress, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let mut chunk = read_chunk(&tx, t, run, index)?;
            let applied = !chunk.status.is_final() && outcome.status.is_final();
            if applied {
                chunk.status = outcome.status.clone();
                chunk.stats = outcome.stats.clone();
                chunk.error = outcome.error.clone();
                chunk.updated_at = Some(outcome.at);
                chunk.leased_until = None;
                write_chunk(&tx, t, run, index, &chunk)?;
                tx.execute(
                    "UPDATE run_headers SET open = open - 1,
                creators_open = creators_open - ?3
             WHERE tenant=?1 AND id=?2",
                    params![t.as_str(), run.as_str(), i64::from(!chunk.deferred)],
                )?;
                super::run_status::record_mapping_outcome(&tx, t, run, &chunk.mapping_id, outcome)?;
            }
            let mut p = progress(&tx, t, run, &chunk.mapping_id)?;
            tx.commit()?;
            p.applied = applied;
            Ok(p)
        })
    }

    async fn set_run_flag(
        &self,
        t: &TenantId,
        run: &RunId,
        flag: RunFlag,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let release: Option<String> = tx
                .query_row(
                    "SELECT release FROM run_headers WHERE tenant=?1 AND id=?2",
                    params![t.as_str(), run.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let current: Release =
                from_json(&release.ok_or_else(|| StoreError::NotFound(format!("run {run}")))?)?;
            let taken = match flag {
                RunFlag::Queued => {
                    tx.execute(
                        "UPDATE run_headers SET queued = 1 WHERE tenant=?1 AND id=?2",
                        params![t.as_str(), run.as_str()],
                    )?;
                    true
                }
                RunFlag::ClaimRelease { by } => {
                    let free = match current {
                        Release::Waiting => true,
                        Release::Claimed { by: owner } => owner == by,
                        Release::Released => false,
                    };
                    if free {
                        tx.execute(
                            "UPDATE run_headers SET release = ?3 WHERE tenant=?1 AND id=?2",
                            params![t.as_str(), run.as_str(), to_json(&Release::Claimed { by })?],
                        )?;
                    }
                    free
                }
                RunFlag::Released => {
                    tx.execute(
                        "UPDATE run_headers SET release = ?3 WHERE tenant=?1 AND id=?2",
                        params![t.as_str(), run.as_str(), to_json(&Release::Released)?],
                    )?;
                    true
                }
                RunFlag::ClaimPlanning { at, until, by } => {
                    // `planning_until` holds the hold's end and its holder: "<RFC 3339> <by>"
                    // (an end alone: a hold written before holders were recorded).
                    let held: Option<String> = tx.query_row(
                        "SELECT planning_until FROM run_headers WHERE tenant=?1 AND id=?2",
                        params![t.as_str(), run.as_str()],
                        |r| r.get(0),
                    )?;
                    let me = format!("{by:032x}");
                    let free = match held
                        .as_deref()
                        .map(|h| h.split_once(' ').unwrap_or((h, "")))
                    {
                        None => true,
                        Some((_, holder)) if holder == me => true,
                        Some((end, _)) => {
                            DateTime::parse_from_rfc3339(end)
                                .map_err(corrupt)?
                                .with_timezone(&Utc)
                                <= at
                        }
                    };
                    if free {
                        tx.execute(
                            "UPDATE run_headers SET planning_until = ?3 WHERE tenant=?1 AND id=?2",
                            params![
                                t.as_str(),
                                run.as_str(),
                                format!("{} {me}", until.to_rfc3339())
                            ],
                        )?;
                    }
                    free
                }
                RunFlag::EndPlanning => {
                    tx.execute(
                        "UPDATE run_headers SET planning_until = NULL WHERE tenant=?1 AND id=?2",
                        params![t.as_str(), run.as_str()],
                    )?;
                    true
                }
            };
            tx.commit()?;
            Ok(taken)
        })
    }

    async fn run_source(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.with(|c| {
            let s: Option<Option<String>> = c
                .query_row(
                    "SELECT source FROM run_mappings WHERE tenant=?1 AND run=?2 AND mapping=?3",
                    params![t.as_str(), run.as_str(), mapping.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            s.flatten().as_deref().map(from_json).transpose()
        })
    }
}
