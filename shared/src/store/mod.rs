//! The store port, one trait per role: [`ConfigStore`] (integrations, mappings, cursors,
//! imports), [`RunStore`] (runs and their chunks), [`DirectoryStore`] (companies, assets,
//! projects, end users), [`DataStore`] (writes of metric values and activity), [`ReadStore`]
//! (their reads and the export) and [`UnmatchedStore`] (what found no object); [`Store`] is all
//! of them. Every method takes the tenant first; no read crosses tenants. [`BudgetStore`] keeps
//! the request budgets of Pendo subscriptions, which are not a tenant's.
//! Adapters: `embedded` (SQLite file) and `dynamo` (DynamoDB), each role in its own file. The
//! contract every adapter must pass is `contract.rs` (`store_contract_tests!`).

#[cfg(any(test, feature = "testing"))]
pub mod contract;
#[cfg(any(test, feature = "testing"))]
pub mod contract_budget;
#[cfg(any(test, feature = "testing"))]
pub mod contract_directory;
#[cfg(any(test, feature = "testing"))]
pub mod contract_mappings;
#[cfg(any(test, feature = "testing"))]
pub mod contract_reads;
#[cfg(any(test, feature = "testing"))]
pub mod contract_records;
#[cfg(any(test, feature = "testing"))]
pub mod contract_runs;
#[cfg(any(test, feature = "testing"))]
pub mod contract_status;
#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
mod error;
pub mod optimistic;
mod records;

pub use error::{EmailTaken, StoreError};
pub use records::{collect_records, ChunkRecords, RecordSlices, Slots, Text};

/// The order and bound of `ReadStore::recent_activity`, the same in every adapter: newest day
/// first, then by end user and mapping; at most `limit` records.
pub(crate) fn newest_first(activity: &mut Vec<Activity>, limit: usize) {
    activity.sort_by(|a, b| {
        b.day
            .cmp(&a.day)
            .then_with(|| a.end_user_id.cmp(&b.end_user_id))
            .then_with(|| a.mapping_id.cmp(&b.mapping_id))
    });
    activity.truncate(limit);
}

use crate::domain::mapping::{LastError, SyncedRange};
#[cfg(doc)]
use crate::domain::MappingRunCounters;
use crate::domain::Window;
use crate::domain::{
    Activity, ChunkOutcome, ChunkStart, DirectoryImport, DirectoryObject, EndUser, EndUserInput,
    ExportRow, Generations, ImportId, Integration, Mapping, MappingId, MappingRun, MappingState,
    MetricValue, ObjectRef, RunFlag, RunId, RunProgress, SyncRun, Target, TenantId, UnmatchedEntry,
};
use crate::domain::{Answer, Budget, BudgetSettings, Take};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

/// Whose activity to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityOf {
    EndUser(String),
    Company(String),
}

/// A new end user from its input. Its service id is stable for the same company and identity
/// (`company|x:externalId`, else `company|e:email`), so two workers creating the same user pick
/// the same id, and every adapter gives the same ids. In the company part `%` and `|` are
/// escaped (`%25`, `%7C`), so the first `|` always ends it and two users never share an id.
pub fn new_end_user(u: &EndUserInput) -> EndUser {
    let ident = u
        .external_id
        .as_deref()
        .map(|e| format!("x:{e}"))
        .unwrap_or_else(|| format!("e:{}", u.email.as_deref().unwrap_or_default()));
    let company = u.company_id.replace('%', "%25").replace('|', "%7C");
    EndUser {
        id: format!("{company}|{ident}"),
        company_id: u.company_id.clone(),
        external_id: u.external_id.clone(),
        email: u.email.clone(),
        name: u.name.clone().filter(|n| !n.is_empty()),
        surname: u.surname.clone().filter(|n| !n.is_empty()),
    }
}

/// A directory row applied to the user it matched: given fields replace stored ones; the
/// external id and the company stay.
pub fn merged_user(found: EndUser, u: &EndUserInput) -> EndUser {
    EndUser {
        email: u.email.clone().or(found.email),
        name: written(&u.name, found.name),
        surname: written(&u.surname, found.surname),
        ..found
    }
}

/// A field after a directory write: `None` keeps the stored one, `Some("")` clears it.
fn written(given: &Option<String>, stored: Option<String>) -> Option<String> {
    match given.as_deref() {
        None => stored,
        Some("") => None,
        Some(v) => Some(v.to_string()),
    }
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    pub day: NaiveDate,
    pub app: String,
    pub value: f64,
}

/// A metric present on an object.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct MetricInfo {
    pub metric: String,
    pub app: String,
}

/// The order every adapter's `export` returns rows in (so two stores compare line by line).
pub fn sort_export(rows: &mut [ExportRow]) {
    rows.sort_by(|a, b| {
        (
            &a.tenant,
            &a.record,
            &a.object_type,
            &a.object_id,
            &a.metric,
            &a.app,
            a.day,
        )
            .cmp(&(
                &b.tenant,
                &b.record,
                &b.object_type,
                &b.object_id,
                &b.metric,
                &b.app,
                b.day,
            ))
    });
}

/// The tenant's configuration: its integration, its mappings and their state (the cursor, the
/// last run, the last error), and its directory imports.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    async fn get_integration(&self, t: &TenantId) -> Result<Option<Integration>, StoreError>;

    /// Writes with optimistic concurrency: the stored version MUST equal `i.version` (0 = must
    /// not exist yet); the stored copy gets `i.version + 1`, which is returned.
    ///
    /// # Errors
    /// `Conflict` when the stored version differs.
    async fn put_integration(&self, i: &Integration) -> Result<u64, StoreError>;

    /// Tenants with an integration (the scheduler filters active ones).
    async fn list_tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    async fn put_mapping(&self, m: &Mapping) -> Result<(), StoreError>;

    async fn get_mapping(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<Mapping>, StoreError>;

    async fn list_mappings(&self, t: &TenantId) -> Result<Vec<Mapping>, StoreError>;

    /// Deletes the mapping and its state (its values, activity and unmatched entries are
    /// purged apart: `delete_mapping_data`, `delete_unmatched`). Returns whether it existed.
    async fn delete_mapping(&self, t: &TenantId, id: &MappingId) -> Result<bool, StoreError>;

    async fn get_mapping_state(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<MappingState>, StoreError>;

    /// Sets the cursor to "never synced" for `generation`, and forgets any range kept from
    /// before a Re-sync all.
    async fn reset_mapping_state(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
    ) -> Result<(), StoreError> {
        self.reset_mapping_state_keeping(t, id, generation, None)
            .await
    }

    /// Sets the cursor to "never synced" for `generation`, keeping `previous` (the synced range
    /// of the generation reads show, while a Re-sync all builds `generation`).
    async fn reset_mapping_state_keeping(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        previous: Option<SyncedRange>,
    ) -> Result<(), StoreError>;

    /// Records `day` as the first day of the mapping's synced range (a sync from scratch
    /// planned its window from it); nothing if the state is not for `generation` or absent.
    async fn set_synced_from(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        day: NaiveDate,
    ) -> Result<(), StoreError>;

    /// Moves the cursor to `max(cursor, to)`. With `succeeded` (every chunk of the mapping in
    /// that run was done), also records that run as the mapping's last successful run and
    /// clears its last error; without, both stay as they are.
    ///
    /// # Errors
    /// `Conflict` if the state is not for `generation` (a re-sync reset it meanwhile).
    async fn advance_cursor(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        to: NaiveDate,
        succeeded: Option<&RunId>,
    ) -> Result<(), StoreError>;

    /// Records `run` as the latest run planned with the mapping (its status reads it); nothing
    /// for a mapping without state.
    async fn set_last_run(
        &self,
        t: &TenantId,
        id: &MappingId,
        run: &RunId,
    ) -> Result<(), StoreError>;

    async fn set_mapping_error(
        &self,
        t: &TenantId,
        id: &MappingId,
        error: Option<LastError>,
    ) -> Result<(), StoreError>;

    /// Writes a directory import with optimistic concurrency, as `put_integration`: the stored
    /// version MUST equal `i.version` (0 = must not exist yet); the stored copy gets
    /// `i.version + 1`, which is returned.
    ///
    /// # Errors
    /// `Conflict` when the stored version differs.
    async fn put_import(&self, i: &DirectoryImport) -> Result<u64, StoreError>;

    async fn get_import(
        &self,
        t: &TenantId,
        id: &ImportId,
    ) -> Result<Option<DirectoryImport>, StoreError>;

    /// Newest first.
    async fn list_imports(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<DirectoryImport>, StoreError>;
}

/// Sync runs: a run as planned, and what happens to its chunks (leases, outcomes, retries,
/// counters, flags).
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Writes a run: its header, its chunks, the counters derived from them, and its
    /// `sources`. A run is written whole once, when it is planned (or re-planned before any of
    /// its chunks was queued); afterwards only the chunk methods below change it.
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError>;

    /// Writes a run that has no chunks yet (a placeholder its planner fills in with
    /// `put_run`) only if no run of that id exists: true when this call created it. What
    /// makes the daily planning of a tenant and day happen once, however often its message
    /// comes.
    ///
    /// # Errors
    /// `Conflict` for a run that already has chunks.
    async fn create_run(&self, run: &SyncRun) -> Result<bool, StoreError>;

    /// The run with every chunk (its `sources` are not read back: see [`RunStore::run_source`]).
    async fn get_run(&self, t: &TenantId, id: &RunId) -> Result<Option<SyncRun>, StoreError>;

    /// Newest first.
    async fn list_runs(&self, t: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError>;

    /// Counts one delivery of chunk `index` (its `attempts`; `updated_at` set) and, when the
    /// chunk is pending and no other delivery holds it (no lease, or one that ended before
    /// `at`), gives it to this delivery until `lease_until`. Returns the chunk as stored and
    /// whether it was taken: a chunk over, or held, tells the worker the delivery is a
    /// duplicate. Constant cost. `delivery` is the delivery's own id: called again for the
    /// same delivery (a write resent after its answer was lost), it counts nothing more and
    /// answers as the first call did (taken when the lease `lease_until` is on the chunk).
    ///
    /// # Errors
    /// `NotFound` for an unknown run or chunk index.
    async fn begin_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        delivery: &str,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ChunkStart, StoreError>;

    /// Records a final outcome (done, failed or superseded) of a chunk still pending, and the
    /// run's counters with it (the run's, and its mapping's as [`MappingRunCounters::record`]
    /// changes them), in one atomic write; a chunk already over is left as it is
    /// (`applied` false). Returns the counters after, for the chunk's mapping. Constant cost.
    ///
    /// # Errors
    /// `NotFound` for an unknown run or chunk index.
    async fn finish_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        outcome: &ChunkOutcome,
    ) -> Result<RunProgress, StoreError>;

    /// Records a transient fault of a chunk that stays pending (its error, one more retry) and
    /// ends the delivery's lease, so the message's redelivery takes the chunk at once. Only
    /// while `delivery` holds the chunk; called again, it records nothing more.
    async fn retry_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        delivery: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The run's counters, with `mapping`'s own. Constant cost.
    ///
    /// # Errors
    /// `NotFound` for an unknown run.
    async fn run_progress(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<RunProgress, StoreError>;

    /// The run's header (without chunks) and `mapping`'s counters in it, which every
    /// `finish_chunk` of the mapping's chunks updates in its atomic write (zero counters for a
    /// mapping the run has no chunk of). Constant cost. `None` for an unknown run.
    async fn mapping_run(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<MappingRun>, StoreError>;

    /// Changes a flag of the run conditionally (see [`RunFlag`]); returns whether it was taken.
    async fn set_run_flag(
        &self,
        t: &TenantId,
        run: &RunId,
        flag: RunFlag,
    ) -> Result<bool, StoreError>;

    /// What the run's planning read from Pendo for `mapping` (see `SyncRun::sources`).
    async fn run_source(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<serde_json::Value>, StoreError>;
}

/// The directory: companies, assets, projects and end users.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Upserts companies, assets or projects by external id (idempotent): a `None` field
    /// leaves the stored one as it is, `Some("")` clears it (absent on a new object); for two
    /// objects with one external id, the last one's fields win.
    async fn upsert_objects(
        &self,
        t: &TenantId,
        kind: Target,
        objects: &[DirectoryObject],
    ) -> Result<(), StoreError>;

    async fn list_objects(
        &self,
        t: &TenantId,
        kind: Target,
    ) -> Result<Vec<DirectoryObject>, StoreError>;

    /// The end users, ordered by id.
    async fn list_end_users(&self, t: &TenantId) -> Result<Vec<EndUser>, StoreError>;

    /// The end users in any order (the sync's directory snapshot, which does not depend on
    /// it); a store that can list them faster unordered says so here.
    async fn list_end_users_unordered(&self, t: &TenantId) -> Result<Vec<EndUser>, StoreError> {
        self.list_end_users(t).await
    }

    /// A stamp of the tenant's directory (companies, assets, projects, end users): it MUST
    /// change with every write that changes any of them, in the same atomic write, so a
    /// snapshot read between two equal stamps is the directory as stored. `None` when the
    /// adapter keeps no stamp (its callers then read the directory every time).
    async fn directory_stamp(&self, t: &TenantId) -> Result<Option<u64>, StoreError>;

    /// Creates the end user unless one exists with the same (company, external id) or
    /// (company, email); returns the stored user and whether it was created. Two concurrent
    /// calls for the same user MUST leave exactly one.
    async fn create_end_user_if_absent(
        &self,
        t: &TenantId,
        user: &EndUserInput,
    ) -> Result<(EndUser, bool), StoreError>;

    /// Upserts a directory end user, matched within its company on the external id (on the
    /// email for a row without one). Given fields replace stored ones (the directory owner's
    /// write), except the external id, which is never rewritten; a `None` field leaves the
    /// stored one as it is, a name or surname `Some("")` clears it.
    ///
    /// # Errors
    /// `EmailTaken` when the row's email belongs to another end user of the company (a row with
    /// an external id never takes over another user's email); nothing is written.
    async fn upsert_end_user(
        &self,
        t: &TenantId,
        user: &EndUserInput,
    ) -> Result<EndUser, StoreError>;

    /// Deletes a company, asset or project from the directory; false when it was not there.
    /// Its values and activity stay as stored.
    async fn delete_object(
        &self,
        t: &TenantId,
        kind: Target,
        external_id: &str,
    ) -> Result<bool, StoreError>;

    /// Deletes an end user (by its service id) with what finds it by external id and email;
    /// false when it was not there. Its values and activity stay as stored.
    async fn delete_end_user(&self, t: &TenantId, id: &str) -> Result<bool, StoreError>;

    /// Fills only the fields that are empty on the stored user; never overwrites.
    async fn fill_end_user(
        &self,
        t: &TenantId,
        id: &str,
        email: Option<&str>,
        name: Option<&str>,
        surname: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Writes of metric values and activity: a chunk's replace, and the purges.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// Atomically replaces every value and activity that `mapping` wrote on the window's days
    /// with the given ones (a day absent from the new set ends up with no value).
    ///
    /// # Errors
    /// `StaleGeneration` if the tenant's integration is not at `generation` (nothing written).
    async fn replace_chunk(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        values: &[MetricValue],
        activities: &[Activity],
    ) -> Result<(), StoreError>;

    /// [`DataStore::replace_chunk`] with records produced on demand; the same contract. The
    /// default collects them and calls `replace_chunk`; the embedded store writes as it reads.
    ///
    /// # Errors
    /// As `replace_chunk`.
    async fn replace_chunk_from(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        records: &dyn ChunkRecords,
    ) -> Result<(), StoreError> {
        let (values, activities) = collect_records(records)?;
        self.replace_chunk(t, generation, mapping, window, &values, &activities)
            .await
    }

    /// Deletes the values and activity no mapping keeps (`Generations::keeps`): every
    /// generation not live, and a rebuilt mapping's values of generations it neither writes nor
    /// shows; returns how many. Resumable: what is deleted stays deleted, and a call again
    /// deletes what is left.
    async fn purge_generations(&self, t: &TenantId, live: &Generations) -> Result<u64, StoreError>;

    /// Deletes every value and activity a mapping wrote in a generation not in `keep` (every
    /// generation when `keep` is empty); returns how many.
    async fn delete_mapping_data(
        &self,
        t: &TenantId,
        mapping: &MappingId,
        keep: &[u64],
    ) -> Result<u64, StoreError>;
}

/// Reads of metric values and activity: series, an object's metrics, recent activity, the
/// export.
#[async_trait]
pub trait ReadStore: Send + Sync {
    async fn read_series(
        &self,
        t: &TenantId,
        object: &ObjectRef,
        metric: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    async fn list_metrics(
        &self,
        t: &TenantId,
        object: &ObjectRef,
    ) -> Result<Vec<MetricInfo>, StoreError>;

    /// Activity on or after `from`, newest first, at most `limit` records.
    async fn recent_activity(
        &self,
        t: &TenantId,
        of: &ActivityOf,
        from: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError>;

    /// Every value and activity record of a tenant (all tenants when `None`), sorted.
    async fn export(&self, t: Option<&TenantId>) -> Result<Vec<ExportRow>, StoreError>;
}

/// What a mapping's chunks found no directory object for, per day and reason.
#[async_trait]
pub trait UnmatchedStore: Send + Sync {
    /// Replaces what `mapping` recorded as unmatched on the window's days at `generation` with
    /// `entries` (each on a day of the window; a day without entries ends up with none), and
    /// drops the mapping's entries of older generations. Idempotent.
    async fn replace_unmatched(
        &self,
        t: &TenantId,
        mapping: &MappingId,
        generation: u64,
        window: Window,
        entries: &[UnmatchedEntry],
    ) -> Result<(), StoreError>;

    /// Every entry `mapping` recorded at `generation`, sorted by reason, identity (the sum of
    /// the identities past the bound last) and day.
    async fn unmatched_of(
        &self,
        t: &TenantId,
        mapping: &MappingId,
        generation: u64,
    ) -> Result<Vec<UnmatchedEntry>, StoreError>;

    /// Deletes every entry of `mapping` (its deletion).
    async fn delete_unmatched(&self, t: &TenantId, mapping: &MappingId) -> Result<(), StoreError>;
}

/// The request budgets of Pendo subscriptions ([`crate::domain::budget`]), shared by every
/// worker that calls one subscription, by an opaque subscription id (never the integration key
/// itself). The adapters read and compare-and-set a versioned budget; the rules are the
/// provided methods, written once here.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// The subscription's budget and its version (`(None, 0)` when none is stored).
    async fn read_budget(&self, subscription: &str) -> Result<(Option<Budget>, u64), StoreError>;

    /// Stores `budget` as version `version + 1` if the stored version is still `version` (0:
    /// none stored).
    ///
    /// # Errors
    /// `Conflict` when another worker wrote it first (nothing written).
    async fn write_budget(
        &self,
        subscription: &str,
        budget: &Budget,
        version: u64,
    ) -> Result<(), StoreError>;

    /// Takes a token and a lease for a call starting at `now_ms`, or says how long to wait (a
    /// wait writes nothing: the refill is computed again on the next take).
    ///
    /// # Errors
    /// `Conflict` after [`optimistic::BUDGET_ATTEMPTS`] lost races; the store's own errors.
    async fn take_budget(
        &self,
        subscription: &str,
        s: &BudgetSettings,
        now_ms: i64,
    ) -> Result<Take, StoreError> {
        optimistic::update_budget(self, subscription, s, now_ms, "taking from it", |b| match b
            .take(s, now_ms)
        {
            (_, take @ Take::Wait { .. }) => (None, take),
            (next, take) => (Some(next), take),
        })
        .await
    }

    /// Settles the call that holds the lease `lease_until_ms` with Pendo's answer.
    ///
    /// # Errors
    /// As [`BudgetStore::take_budget`].
    async fn settle_budget(
        &self,
        subscription: &str,
        s: &BudgetSettings,
        now_ms: i64,
        lease_until_ms: i64,
        answer: Answer,
    ) -> Result<(), StoreError> {
        optimistic::update_budget(self, subscription, s, now_ms, "settling a call", |b| {
            (Some(b.settle(s, now_ms, lease_until_ms, answer)), ())
        })
        .await
    }
}

/// The whole store port: every role's trait. `Arc<dyn Store>` is what the ports bundle holds.
pub trait Store:
    ConfigStore
    + RunStore
    + DirectoryStore
    + DataStore
    + ReadStore
    + UnmatchedStore
    + BudgetStore
    + Send
    + Sync
{
}

impl<S> Store for S where
    S: ConfigStore
        + RunStore
        + DirectoryStore
        + DataStore
        + ReadStore
        + UnmatchedStore
        + BudgetStore
        + Send
        + Sync
{
}

/// Every role's trait, for a caller of the store's methods: `use crate::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        BudgetStore, ConfigStore, DataStore, DirectoryStore, ReadStore, RunStore, Store,
        UnmatchedStore,
    };
}
