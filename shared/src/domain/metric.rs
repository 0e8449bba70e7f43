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
}

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
