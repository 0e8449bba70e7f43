//! A mapping's status as a user reads it (DESIGN §1 "status"): its cursor, the last run that
//! included it and the last successful one, each with the mapping's own share of that run
//! (started, finished, outcome, rows read, values written, users created, rows skipped and why,
//! error). Built, without I/O, from the counters a store keeps per (run, mapping), which each
//! chunk's outcome updates in the same atomic write as the chunk (so recording it never reads
//! the run).

use super::ids::MappingId;
use super::mapping::{LastError, MappingState};
use super::metric::{
    ChunkOutcome, ChunkStats, ChunkStatus, RunKind, SyncRun, RUN_STALL_LIMIT_MINUTES,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// One mapping's counters within a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingRunCounters {
    /// The mapping's chunks in the run.
    pub chunks: u64,
    /// Those not over yet.
    pub open: u64,
    /// Those that ended failed.
    pub failed: u64,
    /// Those that ended failed or superseded.
    pub not_done: u64,
    /// The sums of the stats of its chunks that are over.
    pub stats: ChunkStats,
    /// The error of its chunk that failed last.
    pub error: Option<String>,
    /// When the outcome of one of its chunks was last recorded.
    pub last_at: Option<DateTime<Utc>>,
}

impl MappingRunCounters {
    /// The counters of `mapping` computed from the run's chunks (a run written whole, or
    /// migrated).
    pub fn of(run: &SyncRun, mapping: &MappingId) -> Self {
        let mine = || run.chunks.iter().filter(|c| &c.mapping_id == mapping);
        let n = mine().count() as u64;
        let mut out = Self {
            chunks: n,
            open: n,
            ..Self::default()
        };
        for c in mine().filter(|c| c.status.is_final()) {
            out.record(&ChunkOutcome {
                status: c.status.clone(),
                stats: c.stats.clone(),
                error: c.error.clone(),
                at: c.updated_at.unwrap_or(run.started_at),
            });
        }
        out
    }

    /// One final outcome of a chunk of the mapping that was open: what every store applies in
    /// the chunk's atomic write.
    pub fn record(&mut self, outcome: &ChunkOutcome) {
        self.open = self.open.saturating_sub(1);
        match outcome.status {
            ChunkStatus::Failed => {
                self.failed += 1;
                self.not_done += 1;
                if outcome.error.is_some() {
                    self.error = outcome.error.clone();
                }
            }
            ChunkStatus::Superseded => self.not_done += 1,
            ChunkStatus::Done | ChunkStatus::Pending => {}
        }
        self.stats.add(&outcome.stats);
        self.last_at = Some(self.last_at.map_or(outcome.at, |t| t.max(outcome.at)));
    }
}

/// A run's header (no chunks) and one mapping's counters in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRun {
    pub run: SyncRun,
    pub counters: MappingRunCounters,
}

/// How a mapping's part of a run ended (or stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MappingOutcome {
    /// Chunks of the mapping are still to be done.
    Running,
    /// Every chunk of the mapping was done.
    Succeeded,
    /// A chunk failed, or the run could not sync the mapping (its `error` says why).
    Failed,
    /// A Re-sync all replaced the run before its chunks ran.
    Superseded,
    /// Chunks are pending but none of them ended for an hour (the process running them
    /// stopped); the next run continues from the last synced day.
    Interrupted,
}

/// Rows skipped for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkipReason {
    /// `outsideWindow`, `noObjectId`, `notInDirectory`, `endUserUnmatched` or `unusable`.
    pub reason: String,
    pub rows: u64,
    pub meaning: String,
}

/// One mapping's part of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingRunView {
    pub run_id: String,
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    /// When the mapping's last chunk of the run ended (`null` while it runs).
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: MappingOutcome,
    pub chunks: u64,
    pub chunks_done: u64,
    pub chunks_failed: u64,
    pub rows_read: u64,
    pub values_written: u64,
    pub activities_written: u64,
    pub users_created: u64,
    pub rows_skipped: u64,
    /// The skipped rows by reason (only reasons with rows).
    pub skipped: Vec<SkipReason>,
    pub error: Option<String>,
}

impl MappingRunView {
    /// The mapping's share of the run at `now`, the tenant's generation being `generation`
    /// (chunks still open in a run of an older generation were superseded by a Re-sync all).
    pub fn at(r: &MappingRun, mapping: &MappingId, now: DateTime<Utc>, generation: u64) -> Self {
        let c = &r.counters;
        let left_out = r.run.left_out.get(mapping).filter(|_| c.chunks == 0);
        let outcome = if left_out.is_some() || c.failed > 0 && c.open == 0 {
            MappingOutcome::Failed
        } else if c.open > 0 && r.run.generation < generation {
            MappingOutcome::Superseded
        } else if c.open > 0 {
            let last = c
                .last_at
                .map_or(r.run.started_at, |t| t.max(r.run.started_at));
            if now - last > chrono::Duration::minutes(RUN_STALL_LIMIT_MINUTES) {
                MappingOutcome::Interrupted
            } else {
                MappingOutcome::Running
            }
        } else if c.not_done > 0 {
            MappingOutcome::Superseded
        } else {
            MappingOutcome::Succeeded
        };
        let skipped = c
            .stats
            .skipped
            .reasons()
            .into_iter()
            .filter(|(_, rows, _)| *rows > 0)
            .map(|(reason, rows, meaning)| SkipReason {
                reason: reason.into(),
                rows,
                meaning: meaning.into(),
            })
            .collect();
        Self {
            run_id: r.run.id.to_string(),
            kind: r.run.kind.clone(),
            started_at: r.run.started_at,
            finished_at: (c.open == 0).then(|| c.last_at.unwrap_or(r.run.started_at)),
            outcome,
            chunks: c.chunks,
            chunks_done: c.chunks - c.open - c.not_done,
            chunks_failed: c.failed,
            rows_read: c.stats.rows_read,
            values_written: c.stats.values_written,
            activities_written: c.stats.activities_written,
            users_created: c.stats.users_created,
            rows_skipped: c.stats.rows_skipped,
            skipped,
            error: left_out.cloned().or_else(|| c.error.clone()),
        }
    }
}

/// A mapping's sync status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingStatus {
    pub generation: u64,
    /// Last local day whose values are complete; `null` before the first sync.
    pub last_synced_day: Option<NaiveDate>,
    /// The latest run planned with the mapping, whatever its outcome (a failed daily run
    /// shows here).
    pub last_run: Option<MappingRunView>,
    /// The latest run in which every chunk of the mapping was done.
    pub last_successful_run: Option<MappingRunView>,
    /// The latest error met while syncing it (cleared by a successful run).
    pub last_error: Option<LastError>,
}

impl MappingStatus {
    pub fn new(
        state: &MappingState,
        last_run: Option<MappingRunView>,
        last_successful_run: Option<MappingRunView>,
    ) -> Self {
        Self {
            generation: state.generation,
            last_synced_day: state.last_synced_day,
            last_run,
            last_successful_run,
            last_error: state.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChunkRecord, RunId, SkippedRows, TenantId};
    use chrono::TimeZone;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap() + chrono::Duration::minutes(min.into())
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn run(chunks: Vec<ChunkRecord>) -> SyncRun {
        let mut r = SyncRun::new(
            TenantId::parse("t").unwrap(),
            RunId::parse("r1").unwrap(),
            RunKind::Daily,
            1,
            at(0),
        );
        r.planned = true;
        r.chunks = chunks;
        r
    }

    fn over(m: &MappingId, status: ChunkStatus, rows: u64, minute: u32) -> ChunkRecord {
        ChunkRecord {
            status,
            stats: ChunkStats {
                rows_read: rows,
                values_written: rows / 2,
                rows_skipped: 1,
                skipped: SkippedRows {
                    not_in_directory: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
            error: Some(format!("error at {minute}")),
            updated_at: Some(at(minute)),
            ..ChunkRecord::pending(m.clone(), day(1), day(1))
        }
    }

    #[test]
    fn counters_from_chunks_equal_counters_recorded_one_outcome_at_a_time() {
        let m = MappingId::parse("m").unwrap();
        let other = MappingId::parse("o").unwrap();
        let chunks = vec![
            over(&m, ChunkStatus::Done, 10, 3),
            over(&other, ChunkStatus::Failed, 7, 4),
            over(&m, ChunkStatus::Failed, 4, 9),
            ChunkRecord::pending(m.clone(), day(2), day(2)),
            over(&m, ChunkStatus::Superseded, 0, 5),
        ];
        let r = run(chunks.clone());
        let c = MappingRunCounters::of(&r, &m);
        let mut recorded = MappingRunCounters {
            chunks: 4,
            open: 4,
            ..Default::default()
        };
        for ch in chunks
            .iter()
            .filter(|c| c.mapping_id == m && c.status.is_final())
        {
            recorded.record(&ChunkOutcome {
                status: ch.status.clone(),
                stats: ch.stats.clone(),
                error: ch.error.clone(),
                at: ch.updated_at.unwrap(),
            });
        }
        assert_eq!(c, recorded);
        assert_eq!(
            (c.chunks, c.open, c.failed, c.not_done),
            (4, 1, 1, 2),
            "{c:?}"
        );
        assert_eq!(c.stats.rows_read, 14);
        assert_eq!(c.stats.skipped.not_in_directory, 3);
        assert_eq!(c.error.as_deref(), Some("error at 9"));
        assert_eq!(c.last_at, Some(at(9)));
    }

    #[test]
    fn the_outcome_follows_the_counters() {
        let m = MappingId::parse("m").unwrap();
        let view = |chunks: Vec<ChunkRecord>, now: u32| {
            let r = run(chunks);
            let counters = MappingRunCounters::of(&r, &m);
            let g = r.generation;
            MappingRunView::at(&MappingRun { run: r, counters }, &m, at(now), g)
        };
        let done = view(vec![over(&m, ChunkStatus::Done, 10, 3)], 5);
        assert_eq!(done.outcome, MappingOutcome::Succeeded);
        assert_eq!(done.finished_at, Some(at(3)));
        assert_eq!(
            (
                done.chunks,
                done.chunks_done,
                done.rows_read,
                done.values_written
            ),
            (1, 1, 10, 5)
        );
        assert_eq!(
            done.skipped,
            vec![SkipReason {
                reason: "notInDirectory".into(),
                rows: 1,
                meaning: "the company, asset or project is not in the directory".into()
            }]
        );
        let running = view(
            vec![
                over(&m, ChunkStatus::Failed, 1, 3),
                ChunkRecord::pending(m.clone(), day(2), day(2)),
            ],
            50,
        );
        assert_eq!(
            (running.outcome, running.finished_at),
            (MappingOutcome::Running, None)
        );
        let stalled = view(vec![ChunkRecord::pending(m.clone(), day(2), day(2))], 61);
        assert_eq!(stalled.outcome, MappingOutcome::Interrupted);
        // Chunks still open when a Re-sync all moved the tenant to the next generation.
        let open = run(vec![ChunkRecord::pending(m.clone(), day(2), day(2))]);
        let counters = MappingRunCounters::of(&open, &m);
        let next = open.generation + 1;
        let replaced = MappingRunView::at(
            &MappingRun {
                run: open,
                counters,
            },
            &m,
            at(5),
            next,
        );
        assert_eq!(replaced.outcome, MappingOutcome::Superseded);
        let failed = view(
            vec![
                over(&m, ChunkStatus::Failed, 1, 3),
                over(&m, ChunkStatus::Done, 1, 4),
            ],
            5,
        );
        assert_eq!(failed.outcome, MappingOutcome::Failed);
        assert_eq!(failed.error.as_deref(), Some("error at 3"));
        assert_eq!((failed.chunks_done, failed.chunks_failed), (1, 1));
        let superseded = view(vec![over(&m, ChunkStatus::Superseded, 0, 3)], 5);
        assert_eq!(superseded.outcome, MappingOutcome::Superseded);
        // A mapping the run left out: failed, with the reason.
        let mut r = run(vec![]);
        r.left_out.insert(m.clone(), "feature f1 is gone".into());
        let v = MappingRunView::at(
            &MappingRun {
                run: r,
                counters: MappingRunCounters::default(),
            },
            &m,
            at(1),
            0,
        );
        assert_eq!(
            (v.outcome, v.error.as_deref(), v.finished_at),
            (
                MappingOutcome::Failed,
                Some("feature f1 is gone"),
                Some(at(0))
            )
        );
    }
}
