//! Metric values, activity records and sync runs: what a sync writes and what a user reads.

use super::ids::{MappingId, RunId, TenantId};
use super::mapping::Target;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// An object a value lands on.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: Target,
    /// External id for companies, assets and projects; the service's id for end users.
    pub id: String,
}

/// One daily value of one metric on one object. Keyed by (tenant, object, metric, app, day)
/// and always written as a replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    pub object: ObjectRef,
    pub metric: String,
    /// The apps-table row of a multi-app metric (`-323232`, `unknown`, …); empty otherwise.
    pub app: String,
    pub day: NaiveDate,
    pub value: f64,
}

/// One end user's activity from one mapping on one local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub end_user_id: String,
    pub company_id: String,
    #[schema(value_type = String)]
    pub mapping_id: MappingId,
    /// The metric name of the mapping (what the activity is "about").
    pub label: String,
    pub day: NaiveDate,
    pub events: f64,
    pub minutes: f64,
    /// Passive activity shows in recent activity but never moves last seen / last active.
    pub passive: bool,
}

/// What a run was started for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RunKind {
    Daily,
    #[serde(rename_all = "camelCase")]
    SyncNow {
        #[schema(value_type = String)]
        mapping_id: MappingId,
    },
    ResyncAll,
}

/// Per-chunk outcome, recorded by the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChunkStatus {
    Pending,
    Done,
    Failed,
    /// Dropped because a newer generation superseded it.
    Superseded,
}

/// The counters of one processed chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkStats {
    pub rows_read: u64,
    pub values_written: u64,
    pub activities_written: u64,
    pub users_created: u64,
    /// Rows whose target object or end user could be neither matched nor created.
    pub rows_skipped: u64,
}

impl ChunkStats {
    pub fn add(&mut self, o: &ChunkStats) {
        self.rows_read += o.rows_read;
        self.values_written += o.values_written;
        self.activities_written += o.activities_written;
        self.users_created += o.users_created;
        self.rows_skipped += o.rows_skipped;
    }
}

/// One chunk of a run, as stored for progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRecord {
    #[schema(value_type = String)]
    pub mapping_id: MappingId,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub status: ChunkStatus,
    pub stats: ChunkStats,
    pub attempts: u32,
    pub error: Option<String>,
    /// Queued only once the run's chunks that may create end users are all over (see
    /// `sync::waves`): activity and end-user values then never depend on which chunk ran first.
    #[serde(default)]
    pub deferred: bool,
    /// When a worker last recorded an outcome or a retry of this chunk.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl ChunkRecord {
    /// A chunk of a new run: pending, nothing recorded yet.
    pub fn pending(mapping_id: MappingId, from: NaiveDate, to: NaiveDate) -> Self {
        Self {
            mapping_id,
            from,
            to,
            status: ChunkStatus::Pending,
            stats: ChunkStats::default(),
            attempts: 0,
            error: None,
            deferred: false,
            updated_at: None,
        }
    }
}

/// What a worker records about one chunk (an outcome, or a retry still pending).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkOutcome {
    pub status: ChunkStatus,
    pub stats: ChunkStats,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where a run stands, as a user reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    /// Chunks are pending and a worker recorded progress recently.
    Running,
    /// Every chunk is over (done, failed or superseded).
    Finished,
    /// Chunks are pending but nothing happened for longer than [`RUN_STALL_LIMIT_MINUTES`]: the
    /// process running it was stopped (a killed local runner, messages gone to the dead-letter
    /// queue). Its data is safe; the next run continues from each mapping's last synced day.
    Interrupted,
}

/// Minutes without any recorded progress after which a run with pending chunks is
/// `Interrupted`: longer than a Lambda's longest invocation (15 min) plus the queue's
/// redelivery delays, so a run that is only retrying is never reported as stopped.
pub const RUN_STALL_LIMIT_MINUTES: i64 = 60;

/// A sync run and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    #[schema(value_type = String)]
    pub tenant: TenantId,
    #[schema(value_type = String)]
    pub id: RunId,
    pub kind: RunKind,
    pub generation: u64,
    pub started_at: DateTime<Utc>,
    /// False until the chunks are planned (a Re-sync all plans them in its worker).
    pub planned: bool,
    pub chunks: Vec<ChunkRecord>,
}

impl SyncRun {
    pub fn is_finished(&self) -> bool {
        self.planned && self.chunks.iter().all(|c| c.status != ChunkStatus::Pending)
    }
    /// The latest moment a worker recorded anything about this run.
    pub fn last_progress(&self) -> DateTime<Utc> {
        self.chunks
            .iter()
            .filter_map(|c| c.updated_at)
            .fold(self.started_at, DateTime::max)
    }
    pub fn state(&self, now: DateTime<Utc>) -> RunState {
        if self.is_finished() {
            RunState::Finished
        } else if now - self.last_progress() > chrono::Duration::minutes(RUN_STALL_LIMIT_MINUTES) {
            RunState::Interrupted
        } else {
            RunState::Running
        }
    }
    pub fn totals(&self) -> ChunkStats {
        let mut t = ChunkStats::default();
        for c in &self.chunks {
            t.add(&c.stats);
        }
        t
    }
}

/// One line of `export`: every stored value and activity record, in a stable order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    pub tenant: String,
    pub record: String,
    pub object_type: String,
    pub object_id: String,
    pub metric: String,
    pub app: String,
    pub day: NaiveDate,
    pub value: f64,
}
