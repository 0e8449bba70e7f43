//! A mapping's status in a run, on the embedded store: the columns of `run_mappings` that each
//! chunk's outcome adds to in its transaction (see `runs.rs`), read with the run's header; and
//! the migration to schema version 4 that added them.

use super::runs::{get_run, header};
use super::{corrupt, from_json, to_json};
use crate::domain::{
    ChunkOutcome, ChunkStats, MappingId, MappingRun, MappingRunCounters, RunId, TenantId,
};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// The chunk's outcome in its mapping's counters (the caller's transaction holds the write
/// lock, so reading the stats and writing them back is atomic).
pub(super) fn record_mapping_outcome(
    tx: &Connection,
    t: &TenantId,
    run: &RunId,
    mapping: &MappingId,
    outcome: &ChunkOutcome,
) -> Result<(), StoreError> {
    let Some(mut c) = counters(tx, t, run, mapping)? else {
        return Ok(());
    };
    c.record(outcome);
    tx.execute(
        "UPDATE run_mappings SET open = ?4, not_done = ?5, failed = ?6, stats = ?7, error = ?8,
            last_at = ?9
         WHERE tenant=?1 AND run=?2 AND mapping=?3",
        params![
            t.as_str(),
            run.as_str(),
            mapping.as_str(),
            c.open as i64,
            c.not_done as i64,
            c.failed as i64,
            to_json(&c.stats)?,
            c.error,
            c.last_at.map(|a| a.to_rfc3339()),
        ],
    )?;
    Ok(())
}

/// The mapping's counters in the run (`None` when the run has no row for it).
fn counters(
    c: &Connection,
    t: &TenantId,
    run: &RunId,
    mapping: &MappingId,
) -> Result<Option<MappingRunCounters>, StoreError> {
    type Row = (
        i64,
        i64,
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = c
        .query_row(
            "SELECT chunks, open, failed, not_done, stats, error, last_at FROM run_mappings
             WHERE tenant=?1 AND run=?2 AND mapping=?3",
            params![t.as_str(), run.as_str(), mapping.as_str()],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((chunks, open, failed, not_done, stats, error, last_at)) = row else {
        return Ok(None);
    };
    let n = |v: i64| u64::try_from(v).map_err(|_| corrupt(format!("run {run}: counter {v}")));
    Ok(Some(MappingRunCounters {
        chunks: n(chunks)?,
        open: n(open)?,
        failed: n(failed)?,
        not_done: n(not_done)?,
        stats: match stats {
            Some(s) => from_json(&s)?,
            None => ChunkStats::default(),
        },
        error,
        last_at: last_at
            .map(|a| DateTime::parse_from_rfc3339(&a).map(|d| d.with_timezone(&Utc)))
            .transpose()
            .map_err(corrupt)?,
    }))
}

/// The run's header and the mapping's counters in it (two rows, whatever the run's size).
pub(super) fn mapping_run(
    c: &Connection,
    t: &TenantId,
    run: &RunId,
    mapping: &MappingId,
) -> Result<Option<MappingRun>, StoreError> {
    let Some(header) = header(c, t, run)? else {
        return Ok(None);
    };
    Ok(Some(MappingRun {
        run: header,
        counters: counters(c, t, run, mapping)?.unwrap_or_default(),
    }))
}

/// Adds `column` to `table` unless it is there; returns whether it was added.
pub(super) fn add_column(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    decl: &str,
) -> Result<bool, StoreError> {
    let present: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        params![table, column],
        |r| r.get(0),
    )?;
    if !present {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl};"))?;
    }
    Ok(!present)
}

/// Schema version 4: the status of each (run, mapping) (`run_mappings.chunks` … `last_at`,
/// computed from the run's chunks) and `mapping_state.last_ok_run` (version 3's `last_run`, the
/// run that last moved the cursor, is the closest it kept).
pub(super) fn migrate_status(tx: &Transaction<'_>) -> Result<(), StoreError> {
    if add_column(tx, "mapping_state", "last_ok_run", "TEXT")? {
        tx.execute_batch("UPDATE mapping_state SET last_ok_run = last_run;")?;
    }
    let mut added = false;
    for (column, decl) in [
        ("chunks", "INTEGER NOT NULL DEFAULT 0"),
        ("failed", "INTEGER NOT NULL DEFAULT 0"),
        ("stats", "TEXT"),
        ("error", "TEXT"),
        ("last_at", "TEXT"),
    ] {
        added |= add_column(tx, "run_mappings", column, decl)?;
    }
    if !added {
        return Ok(());
    }
    let runs: Vec<(String, String)> = {
        let mut st = tx.prepare("SELECT tenant, id FROM run_headers")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (t, id) in runs {
        let t = TenantId::parse(&t).map_err(corrupt)?;
        let id = RunId::parse(&id).map_err(corrupt)?;
        let Some(run) = get_run(tx, &t, &id)? else {
            continue;
        };
        for m in run.mappings() {
            let c = MappingRunCounters::of(&run, m);
            tx.execute(
                "UPDATE run_mappings SET chunks = ?4, failed = ?5, stats = ?6, error = ?7,
                    last_at = ?8
                 WHERE tenant=?1 AND run=?2 AND mapping=?3",
                params![
                    t.as_str(),
                    id.as_str(),
                    m.as_str(),
                    c.chunks as i64,
                    c.failed as i64,
                    to_json(&c.stats)?,
                    c.error,
                    c.last_at.map(|a| a.to_rfc3339()),
                ],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::domain::*;
    use crate::store::prelude::*;
    use chrono::{TimeZone, Utc};

    /// A file of version 3 (no status columns) gets each stored run's status counters from its
    /// chunks, and a mapping's last successful run from its last run.
    #[tokio::test]
    async fn a_file_of_schema_version_3_gets_the_status_of_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pendo-sync.sqlite");
        let t = TenantId::parse("t1").unwrap();
        let m = MappingId::parse("m1").unwrap();
        let at = |min: u32| Utc.with_ymd_and_hms(2026, 11, 20, 2, min, 0).unwrap();
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let mut run = SyncRun::new(
            t.clone(),
            RunId::parse("r1").unwrap(),
            RunKind::Daily,
            1,
            at(0),
        );
        run.planned = true;
        run.chunks = vec![
            ChunkRecord {
                status: ChunkStatus::Done,
                stats: ChunkStats {
                    rows_read: 9,
                    values_written: 4,
                    ..Default::default()
                },
                updated_at: Some(at(3)),
                ..ChunkRecord::pending(m.clone(), day(1), day(7))
            },
            ChunkRecord {
                status: ChunkStatus::Failed,
                error: Some("boom".into()),
                updated_at: Some(at(5)),
                ..ChunkRecord::pending(m.clone(), day(8), day(14))
            },
            ChunkRecord::pending(m.clone(), day(15), day(16)),
        ];
        {
            let s = super::super::EmbeddedStore::open(&path).unwrap();
            s.put_run(&run).await.unwrap();
            s.reset_mapping_state(&t, &m, 1).await.unwrap();
            s.set_last_run(&t, &m, &run.id).await.unwrap();
        }
        {
            // Back to version 3's layout.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "ALTER TABLE run_mappings DROP COLUMN chunks;
                 ALTER TABLE run_mappings DROP COLUMN failed;
                 ALTER TABLE run_mappings DROP COLUMN stats;
                 ALTER TABLE run_mappings DROP COLUMN error;
                 ALTER TABLE run_mappings DROP COLUMN last_at;
                 ALTER TABLE mapping_state DROP COLUMN last_ok_run;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let s = super::super::EmbeddedStore::open(&path).unwrap();
        let got = s.mapping_run(&t, &run.id, &m).await.unwrap().unwrap();
        assert_eq!(got.counters, MappingRunCounters::of(&run, &m));
        assert_eq!(
            (got.counters.chunks, got.counters.open, got.counters.failed),
            (3, 1, 1)
        );
        assert_eq!(got.counters.stats.rows_read, 9);
        assert_eq!(got.counters.error.as_deref(), Some("boom"));
        let st = s.get_mapping_state(&t, &m).await.unwrap().unwrap();
        assert_eq!(
            (st.last_run, st.last_successful_run),
            (Some(run.id.clone()), Some(run.id.clone()))
        );
        // The next outcome adds to the migrated counters.
        s.finish_chunk(
            &t,
            &run.id,
            2,
            &ChunkOutcome {
                status: ChunkStatus::Done,
                stats: ChunkStats {
                    rows_read: 1,
                    ..Default::default()
                },
                error: None,
                at: at(9),
            },
        )
        .await
        .unwrap();
        let got = s.mapping_run(&t, &run.id, &m).await.unwrap().unwrap();
        assert_eq!(
            (
                got.counters.open,
                got.counters.stats.rows_read,
                got.counters.last_at
            ),
            (0, 10, Some(at(9)))
        );
    }
}
