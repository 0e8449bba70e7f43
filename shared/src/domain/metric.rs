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
    /// One mapping's values purged and fetched again (after an edit that needs it).
    #[serde(rename_all = "camelCase")]
    Rebuild {
        #[schema(value_type = String)]
        mapping_id: MappingId,
    },
    /// The days a mapping could not use rows of identities the directory now knows.
    #[serde(rename_all = "camelCase")]
    Recover {
        #[schema(value_type = String)]
        mapping_id: MappingId,
    },
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
    /// Rows the mapping could not use (the sum of `skipped`).
    pub rows_skipped: u64,
    /// The skipped rows by reason.
    #[serde(default)]
    pub skipped: SkippedRows,
}

impl ChunkStats {
    pub fn add(&mut self, o: &ChunkStats) {
        self.rows_read += o.rows_read;
        self.values_written += o.values_written;
        self.activities_written += o.activities_written;
        self.users_created += o.users_created;
        self.rows_skipped += o.rows_skipped;
        self.skipped.add(&o.skipped);
    }
}

/// Why rows of a chunk were not used, counted per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SkippedRows {
    /// Rows without a day, or with a day outside the chunk's days.
    pub outside_window: u64,
    /// Rows without a value in the target's id field (no company id for a company target).
    pub no_object_id: u64,
    /// Rows whose company, asset or project is not in the directory.
    pub not_in_directory: u64,
    /// Rows whose end user could be neither matched nor created (DESIGN §2).
    pub end_user_unmatched: u64,
    /// Rows of no use to the mapping (a PES row of another app, or without a score).
    pub unusable: u64,
}

impl SkippedRows {
    /// Every reason with its count and what it means, in a fixed order.
    pub fn reasons(&self) -> [(&'static str, u64, &'static str); 5] {
        [
            (
                "outsideWindow",
                self.outside_window,
                "no day, or a day outside the synced days",
            ),
            (
                "noObjectId",
                self.no_object_id,
                "no value in the target's id field",
            ),
            (
                "notInDirectory",
                self.not_in_directory,
                "the company, asset or project is not in the directory",
            ),
            (
                "endUserUnmatched",
                self.end_user_unmatched,
                "the end user could be neither matched nor created (auto-create off, no company id on the row, or its company not in the directory)",
            ),
            (
                "unusable",
                self.unusable,
                "rows the mapping does not use (another app's score, or no value)",
            ),
        ]
    }
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|r| r.1).sum()
    }
    pub fn add(&mut self, o: &SkippedRows) {
        self.outside_window += o.outside_window;
        self.no_object_id += o.no_object_id;
        self.not_in_directory += o.not_in_directory;
        self.end_user_unmatched += o.end_user_unmatched;
        self.unusable += o.unusable;
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
    /// Deliveries of the chunk's message (a duplicate delivery counts; a retry is a delivery).
    pub attempts: u32,
    /// Deliveries that ended in a transient fault and were left for the queue to redeliver.
    #[serde(default)]
    pub retries: u32,
    pub error: Option<String>,
    /// Queued only once the run's chunks that may create end users are all over (see
    /// `sync::waves`): activity and end-user values then never depend on which chunk ran first.
    #[serde(default)]
    pub deferred: bool,
    /// When a worker last recorded an outcome or a retry of this chunk.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// A delivery at work on the chunk holds it until then: another delivery of the chunk
    /// (a duplicate of its message) meanwhile is acknowledged without calling Pendo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_until: Option<DateTime<Utc>>,
    /// The id of the delivery counted last (each delivery draws one): a store write that is
    /// sent again after its answer was lost recognises its own earlier write by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// The id of the delivery that took the lease (`leased_until`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_by: Option<String>,
    /// The chunk whose Pendo call this one shares (its index in the run; see `sync::share`):
    /// chunks with the same `share` travel in one fetch message. `None`: fetched alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<usize>,
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
            retries: 0,
            error: None,
            deferred: false,
            updated_at: None,
            leased_until: None,
            delivery: None,
            leased_by: None,
            share: None,
        }
    }
}

/// How long a delivery holds its chunk (see `ChunkRecord::leased_until`): longer than a fetch
/// may work (the fetch function's timeout, 5 minutes in `infra/template.yaml`), shorter than the
/// fetch queue's visibility timeout (30 minutes), so that the redelivery of a message whose
/// worker died always finds the lease expired and takes the chunk over.
pub const CHUNK_LEASE_MINUTES: i64 = 15;

/// A delivery's start on a chunk (what the store's `begin_chunk` answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkStart {
    pub chunk: ChunkRecord,
    /// This delivery holds the chunk now; false when the chunk is over or another delivery
    /// holds it.
    pub taken: bool,
}

/// What a worker records about one chunk (an outcome, or a retry still pending).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkOutcome {
    pub status: ChunkStatus,
    pub stats: ChunkStats,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl ChunkStatus {
    /// Done, failed or superseded: nothing more happens to the chunk.
    pub fn is_final(&self) -> bool {
        *self != ChunkStatus::Pending
    }
}

/// Where the release of a run's deferred chunks stands (see `sync::waves`). Claimed by the
/// chunk whose outcome closed the last creating chunk, then done once its messages are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Release {
    /// Not released (or nothing to release).
    #[default]
    Waiting,
    /// Chunk `by` won the release; its message's redelivery sends again until `Released`.
    Claimed {
        by: u32,
    },
    Released,
}

/// A change of a run's flags, taken conditionally by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFlag {
    /// The planned chunks were sent (a redelivered Re-sync all message sends nothing again).
    Queued,
    /// Claim the release for chunk `by`: taken when the release is `Waiting` or already
    /// `Claimed { by }` (its own redelivery); refused otherwise.
    ClaimRelease { by: u32 },
    /// The deferred chunks were sent.
    Released,
    /// Claim the planning of a Re-sync all for one delivery of its message until `until`:
    /// taken when no delivery holds it or its hold ended before `at` (a duplicate delivery
    /// meanwhile is acknowledged without purging or planning again), or when the holder is
    /// `by` (the delivery's own id: its claim sent again after the answer was lost).
    ClaimPlanning {
        at: DateTime<Utc>,
        until: DateTime<Utc>,
        by: u128,
    },
    /// End a planning hold (its delivery failed and is left for the queue to redeliver).
    EndPlanning,
}

/// A run's counters as the store keeps them, for the decisions a worker takes after a chunk
/// (is the mapping's window over, was this the last creating chunk): read in constant time,
/// never by reading every chunk back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunProgress {
    /// Whether this call recorded the outcome (false: the chunk was already over).
    pub applied: bool,
    pub total: u64,
    /// Chunks not yet done, failed or superseded.
    pub open: u64,
    /// Open chunks that are not deferred.
    pub creators_open: u64,
    /// Chunks recorded as deferred (0: the run defers nothing).
    pub deferred: u64,
    pub release: Release,
    pub queued: bool,
    /// Open chunks of the mapping asked about.
    pub mapping_open: u64,
    /// Chunks of that mapping that ended failed or superseded.
    pub mapping_not_done: u64,
    /// The last day of that mapping's window in this run.
    pub mapping_end: Option<NaiveDate>,
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
    /// A newer Re-sync all replaced the run's generation before the run was over: its chunks
    /// still pending do nothing (a worker acknowledges them as superseded), and it is over from
    /// the moment the Re-sync all was asked for.
    Superseded,
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
    /// True once the planned chunks were sent.
    #[serde(default)]
    pub queued: bool,
    #[serde(default)]
    pub release: Release,
    pub chunks: Vec<ChunkRecord>,
    /// What the run's Report mappings read from Pendo once, at planning (the saved report's
    /// definition, or `null` when Pendo did not list it): each day chunk reads it here instead
    /// of listing the reports again. Stored apart from the run's header.
    #[serde(skip)]
    pub sources: std::collections::BTreeMap<MappingId, serde_json::Value>,
    /// Mappings the run did not sync, each with the reason (a Pendo object it refers to is no
    /// longer in Pendo): their status shows the run as failed with that reason.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub left_out: std::collections::BTreeMap<MappingId, String>,
    /// The mappings whose chunks write a generation other than the run's (a rebuild's: see
    /// `domain::generations`), with that generation.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub own: std::collections::BTreeMap<MappingId, u64>,
}

impl SyncRun {
    /// The generation the chunks of mapping `m` write.
    pub fn generation_of(&self, m: &MappingId) -> u64 {
        self.own.get(m).copied().unwrap_or(self.generation)
    }

    /// A new run, not yet planned.
    pub fn new(
        tenant: TenantId,
        id: RunId,
        kind: RunKind,
        generation: u64,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            id,
            kind,
            generation,
            started_at,
            planned: false,
            queued: false,
            release: Release::Waiting,
            chunks: Vec::new(),
            sources: Default::default(),
            left_out: Default::default(),
            own: Default::default(),
        }
    }
    /// The counters a store keeps for this run, computed from its chunks (for `put_run` and
    /// migrations), with `mapping`'s own.
    pub fn progress(&self, mapping: Option<&MappingId>) -> RunProgress {
        let open = |c: &&ChunkRecord| !c.status.is_final();
        let mine = |c: &&ChunkRecord| Some(&c.mapping_id) == mapping;
        RunProgress {
            applied: false,
            total: self.chunks.len() as u64,
            open: self.chunks.iter().filter(open).count() as u64,
            creators_open: self
                .chunks
                .iter()
                .filter(open)
                .filter(|c| !c.deferred)
                .count() as u64,
            deferred: self.chunks.iter().filter(|c| c.deferred).count() as u64,
            release: self.release,
            queued: self.queued,
            mapping_open: self.chunks.iter().filter(mine).filter(open).count() as u64,
            mapping_not_done: self
                .chunks
                .iter()
                .filter(mine)
                .filter(|c| matches!(c.status, ChunkStatus::Failed | ChunkStatus::Superseded))
                .count() as u64,
            mapping_end: self.chunks.iter().filter(mine).map(|c| c.to).max(),
        }
    }
    /// The distinct mappings of the run's chunks, in order of first appearance.
    pub fn mappings(&self) -> Vec<&MappingId> {
        let mut out: Vec<&MappingId> = Vec::new();
        for c in &self.chunks {
            if !out.contains(&&c.mapping_id) {
                out.push(&c.mapping_id);
            }
        }
        out
    }
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
    /// Where the run stands at `now`, the tenant's generation being `generation` (a run of an
    /// older one that was not over when a Re-sync all replaced it, or whose chunks the Re-sync
    /// all superseded, is superseded).
    pub fn state(&self, now: DateTime<Utc>, generation: u64) -> RunState {
        let replaced = self.generation < generation
            && (!self.is_finished()
                || self.chunks.is_empty()
                || self
                    .chunks
                    .iter()
                    .any(|c| c.status == ChunkStatus::Superseded));
        if replaced {
            RunState::Superseded
        } else if self.is_finished() {
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
