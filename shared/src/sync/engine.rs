//! The chunk worker: one fetch message → Pendo call(s) → identities → values → one atomic
//! replace → cursor. Retry-vs-give-up is decided here, once; the queue glue only acts on it.
//! (The Re-sync all worker is `sync::resync`.)

use super::directory_cache::{DirectoryCache, Shape};
use super::identity::{Directory, IdentityRules};
use super::persist::again;
use super::plan;
use super::processed::{ProcessError, Processed};
use super::transform::{ChunkAccumulator, TransformSpec};
use super::waves;
use crate::domain::mapping::LastError;
use crate::domain::Window;
use crate::domain::{
    ChunkOutcome, ChunkRecord, ChunkStats, ChunkStatus, ConnectionStatus, Integration, Mapping,
    MappingKind, RunFlag, RunProgress, Target,
};
use crate::pendo::pipelines::{event_request, EventSource};
use crate::pendo::PendoError;
use crate::ports::Ports;
use crate::queue::messages::FetchMessage;
use crate::store::{optimistic, StoreError};
use std::sync::Arc;

/// Largest number of times a memory-limited window is halved before giving up.
const MAX_SPLIT_DEPTH: u32 = 6;

pub async fn process_fetch(
    ports: &Ports,
    directories: &DirectoryCache,
    msg: &FetchMessage,
    final_attempt: bool,
) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
    // Count the delivery and take the chunk; a chunk already over, or held by another delivery
    // of its message, makes this one a duplicate.
    let now = ports.clock.now();
    let lease = now + chrono::Duration::minutes(crate::domain::CHUNK_LEASE_MINUTES);
    let delivery = uuid::Uuid::new_v4().simple().to_string();
    let chunk = match store
        .begin_chunk(t, &msg.run_id, msg.chunk_index, &delivery, now, lease)
        .await
    {
        Ok(start) => Some(start),
        // A run record can be gone (purged history): the chunk still runs, unrecorded.
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(start) = chunk.as_ref().filter(|s| !s.taken) {
        let c = &start.chunk;
        if c.status.is_final() {
            let progress = store.run_progress(t, &msg.run_id, &c.mapping_id).await?;
            follow_up(ports, msg, c, &progress).await?;
            tracing::info!(tenant = %t, run = %msg.run_id, chunk = msg.chunk_index, "duplicate delivery of a finished chunk acknowledged");
        } else {
            tracing::info!(tenant = %t, run = %msg.run_id, chunk = msg.chunk_index, "another delivery of this chunk is at work; this duplicate is acknowledged");
        }
        return Ok(Processed::Duplicate);
    }
    let chunk = chunk.map(|s| s.chunk);
    let result = run_chunk(ports, directories, msg, chunk.as_ref(), final_attempt).await;
    if let Err(e @ ProcessError::Permanent(cause)) = &result {
        if e.is_aws_refusal() {
            // Refused outside the fetch (recording the outcome, queueing the deferred chunks):
            // the smallest write left shows it on the mapping — the AWS message names the
            // function's role, the action and the resource. The chunk itself stays taken and
            // its run reads `interrupted` once the lease ends.
            let message = crate::error::chain(cause.as_ref());
            note_error(ports, msg, &message).await;
        }
    }
    if let (Err(e @ ProcessError::Retryable(_)), Some(_)) = (&result, &chunk) {
        // Let the redelivery take the chunk at once (and show the retry on it).
        store
            .retry_chunk(
                t,
                &msg.run_id,
                msg.chunk_index,
                &delivery,
                &format!("retrying: {}", e.message()),
                ports.clock.now(),
            )
            .await
            .ok();
    }
    result
}

/// The work of a delivery that holds its chunk (or of a chunk whose run is gone).
async fn run_chunk(
    ports: &Ports,
    directories: &DirectoryCache,
    msg: &FetchMessage,
    chunk: Option<&ChunkRecord>,
    final_attempt: bool,
) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
    let Some(integration) = store.get_integration(t).await? else {
        return Ok(Processed::Superseded);
    };
    if integration.generation != msg.generation {
        tracing::info!(tenant = %t, mapping = %msg.mapping_id, "dropping a message of an older generation");
        finish(
            ports,
            msg,
            chunk,
            ChunkStatus::Superseded,
            &ChunkStats::default(),
            None,
        )
        .await;
        return Ok(Processed::Superseded);
    }
    let Some(mapping) = store.get_mapping(t, &msg.mapping_id).await? else {
        finish(
            ports,
            msg,
            chunk,
            ChunkStatus::Superseded,
            &ChunkStats::default(),
            None,
        )
        .await;
        return Ok(Processed::Superseded);
    };
    let Some(conn) = integration
        .connection
        .clone()
        .filter(|_| integration.is_active())
    else {
        let m = "the Pendo integration is not connected; reconnect it, then Sync now".to_string();
        fail(ports, msg, chunk, &m).await;
        return Err(ProcessError::Permanent(m.into()));
    };
    let window = Window {
        from: msg.from,
        to: msg.to,
    };
    let job = Job {
        ports,
        directories,
        integration: &integration,
        mapping: &mapping,
        conn: &conn,
        run: &msg.run_id,
    };
    let result = fetch_window(&job, window, 0).await;
    crate::stall::point("chunk-replaced").await;
    match result {
        Ok(stats) => {
            match chunk {
                Some(c) => {
                    let done = outcome(ports, ChunkStatus::Done, &stats, None);
                    record(ports, msg, c, &done).await?;
                }
                None => {
                    store
                        .advance_cursor(t, &msg.mapping_id, msg.generation, msg.to, None)
                        .await
                        .ok();
                }
            }
            tracing::info!(tenant = %t, mapping = %msg.mapping_id, from = %msg.from, to = %msg.to,
                rows = stats.rows_read, values = stats.values_written, users_created = stats.users_created, "chunk done");
            Ok(Processed::Done(stats))
        }
        Err(ChunkError::Stale) => {
            finish(
                ports,
                msg,
                chunk,
                ChunkStatus::Superseded,
                &ChunkStats::default(),
                None,
            )
            .await;
            Ok(Processed::Superseded)
        }
        Err(ChunkError::Pendo(PendoError::Unauthorized { status })) => {
            let message = format!(
                "Pendo refused the integration key (HTTP {status}) — it may have been revoked or lack write access; reconnect with a valid key"
            );
            disconnect(ports, &integration, &message).await;
            fail(ports, msg, chunk, &message).await;
            Err(ProcessError::Permanent(message.into()))
        }
        Err(ChunkError::Pendo(e)) if e.is_retryable() && !final_attempt => {
            note_error(ports, msg, &e.to_string()).await;
            Err(ProcessError::Retryable(e.into()))
        }
        Err(ChunkError::Pendo(e)) => {
            let m = e.to_string();
            fail(ports, msg, chunk, &m).await;
            Err(ProcessError::Permanent(m.into()))
        }
        Err(ChunkError::Invalid(m)) => {
            fail(ports, msg, chunk, &m).await;
            Err(ProcessError::Permanent(m.into()))
        }
        Err(ChunkError::Store(e)) => {
            // A refusal (access denied, a missing table) fails every delivery alike: recorded
            // now, and the message given up (`ProcessError::Permanent`).
            if final_attempt || e.is_refusal() {
                fail(ports, msg, chunk, &crate::error::chain(&e)).await;
            }
            Err(e.into())
        }
    }
}

/// What one chunk's fetch works with.
pub(super) struct Job<'a> {
    pub ports: &'a Ports,
    pub directories: &'a DirectoryCache,
    pub integration: &'a Integration,
    pub mapping: &'a Mapping,
    pub conn: &'a crate::domain::Connection,
    pub run: &'a crate::domain::RunId,
}

#[derive(Debug)]
pub(super) enum ChunkError {
    Pendo(PendoError),
    Store(StoreError),
    Stale,
    /// The mapping cannot be fetched as it is stored (an invalid pipeline or report, PES
    /// without accountId): never retried.
    Invalid(String),
}

/// Fetches and writes one window, halving it on "Query exceeded memory limit".
async fn fetch_window(job: &Job<'_>, window: Window, depth: u32) -> Result<ChunkStats, ChunkError> {
    match fetch_once(job, window).await {
        Err(ChunkError::Pendo(PendoError::MemoryLimit)) if depth < MAX_SPLIT_DEPTH => {
            let Some((a, b)) = window.halves() else {
                return Err(ChunkError::Pendo(PendoError::MemoryLimit));
            };
            tracing::warn!(mapping = %job.mapping.id, days = window.days(), "memory limit: splitting the window");
            let mut stats = Box::pin(fetch_window(job, a, depth + 1)).await?;
            stats.add(&Box::pin(fetch_window(job, b, depth + 1)).await?);
            Ok(stats)
        }
        other => other,
    }
}

/// The directory snapshot a chunk resolves against: companies always, assets or projects when
/// they are the target, end users when asked for. Reused from `directories` while the store's
/// directory stamp is unchanged; a snapshot is kept only when the stamp was the same before and
/// after reading it (no directory write in between). One chunk of the process reads at a time.
pub(super) async fn load_directory(
    job: &Job<'_>,
    target: Target,
    with_users: bool,
) -> Result<Arc<Directory>, StoreError> {
    let store = &job.ports.store;
    let t = &job.integration.tenant;
    let shape = Shape::of(target, with_users);
    let stamp = store.directory_stamp(t).await?;
    if let Some(dir) = stamp.and_then(|s| job.directories.get(t, shape, s)) {
        return Ok(dir);
    }
    let _reading = job.directories.reading().await;
    let stamp = store.directory_stamp(t).await?;
    if let Some(dir) = stamp.and_then(|s| job.directories.get(t, shape, s)) {
        return Ok(dir);
    }
    let only = |k: Target| async move {
        if shape.objects == Some(k) {
            store.list_objects(t, k).await
        } else {
            Ok(Vec::new())
        }
    };
    let dir = Arc::new(Directory::new(
        store.list_objects(t, Target::Company).await?,
        only(Target::Asset).await?,
        only(Target::Project).await?,
        if with_users {
            store.list_end_users(t).await?
        } else {
            Vec::new()
        },
    ));
    if let Some(s) = stamp {
        if store.directory_stamp(t).await? == Some(s) {
            job.directories.put(t, shape, s, dir.clone());
        }
    }
    Ok(dir)
}

async fn fetch_once(job: &Job<'_>, window: Window) -> Result<ChunkStats, ChunkError> {
    let Job {
        ports,
        integration,
        mapping,
        conn,
        ..
    } = *job;
    let t = &integration.tenant;
    let store = &ports.store;
    let settings = &integration.settings;
    let tz = settings.timezone.map(|z| z.0);
    let (source, id, minutes_metric) = match &mapping.source {
        MappingKind::Feature {
            feature_id,
            minutes_metric,
        } => (EventSource::Feature, feature_id, minutes_metric),
        MappingKind::Page {
            page_id,
            minutes_metric,
        } => (EventSource::Page, page_id, minutes_metric),
        MappingKind::Aggregation { .. } | MappingKind::Report { .. } | MappingKind::Pes { .. } => {
            return super::pipeline_fetch::fetch_pipeline_day(job, window).await
        }
    };
    let st = |e| ChunkError::Store(e);
    let dir = load_directory(job, mapping.target, true)
        .await
        .map_err(st)?;
    let request_id = format!("{}-{}", mapping.id, window.from);
    let request = event_request(
        source,
        id,
        window,
        tz,
        mapping.segment_id.as_deref(),
        &settings.field_mappings,
        &request_id,
    );
    let spec = TransformSpec {
        mapping_id: mapping.id.clone(),
        target: mapping.target,
        metric: mapping.metric_name.clone(),
        minutes_metric: minutes_metric.clone(),
        multi_app: mapping.multi_app,
        passive: mapping.passive,
        auto_create: mapping.auto_create_users,
        rules: IdentityRules {
            email_mapped: settings.field_mappings.email.is_some(),
            may_create: settings.auto_detect_end_users && mapping.auto_create_users,
        },
        tz,
        window,
        apps: integration.apps.clone(),
    };
    let mut acc = ChunkAccumulator::new(spec, &dir);
    ports
        .pendo
        .aggregate(conn, &request, &mut acc)
        .await
        .map_err(ChunkError::Pendo)?;
    crate::stall::point("chunk-fetched").await;
    let inputs: Vec<_> = acc.pending_users().iter().map(|p| p.input()).collect();
    let (created_ids, users_created) = create_users(ports, t, &inputs).await.map_err(st)?;
    let prepared = acc.prepare(created_ids);
    let gen = integration.generation;
    match again("replace the chunk's values", || {
        store.replace_chunk_from(t, gen, &mapping.id, window, &prepared)
    })
    .await
    {
        Err(StoreError::StaleGeneration(_)) => return Err(ChunkError::Stale),
        other => other.map_err(st)?,
    }
    for f in prepared.fills() {
        again("fill an end user", || {
            store.fill_end_user(
                t,
                &f.user_id,
                f.email.as_deref(),
                f.name.as_deref(),
                f.surname.as_deref(),
            )
        })
        .await
        .map_err(st)?;
    }
    // What no object took, replacing what the mapping recorded on these days (as the values).
    let unmatched = prepared.unmatched();
    again("replace the unmatched rows", || {
        store.replace_unmatched(t, &mapping.id, gen, window, &unmatched)
    })
    .await
    .map_err(st)?;
    Ok(ChunkStats {
        rows_read: prepared.rows_read(),
        values_written: prepared.value_count(),
        activities_written: prepared.activity_count(),
        users_created,
        rows_skipped: prepared.rows_skipped(),
        skipped: prepared.skipped().clone(),
    })
}

/// Creates a chunk's new end users, each only if still absent (another chunk may have created
/// it meanwhile): their service ids in input order, and how many this call created. Each
/// creation is tried again on its own when the store is unavailable (`persist`), so a retry
/// never re-counts the users created before it as found.
pub(super) async fn create_users(
    ports: &Ports,
    t: &crate::domain::TenantId,
    inputs: &[crate::domain::EndUserInput],
) -> Result<(Vec<String>, u64), StoreError> {
    let mut ids = Vec::with_capacity(inputs.len());
    let mut created = 0;
    for input in inputs {
        let (user, new) = again("create an end user", || {
            ports.store.create_end_user_if_absent(t, input)
        })
        .await?;
        created += u64::from(new);
        ids.push(user.id);
    }
    Ok((ids, created))
}

/// What follows a chunk's outcome, decided from the run's counters (constant cost) and safe to
/// repeat (a duplicate delivery repeats it, which finishes what a crash left undone): once the
/// mapping's chunks of this run are all over, its cursor moves; once the run's last creating
/// chunk is over, the deferred chunks are queued by whoever wins the release.
async fn follow_up(
    ports: &Ports,
    msg: &FetchMessage,
    chunk: &ChunkRecord,
    progress: &RunProgress,
) -> Result<(), ProcessError> {
    if progress.mapping_open == 0 {
        advance(ports, msg, progress).await?;
    }
    if waves::may_release(chunk, progress) {
        release_deferred(ports, msg).await?;
    }
    Ok(())
}

/// Moves the mapping's cursor to the end of its window in this run (recording the run as its
/// last successful one), or, when some of its chunks failed, to the end of the longest run of
/// done chunks from the window's start.
async fn advance(
    ports: &Ports,
    msg: &FetchMessage,
    progress: &RunProgress,
) -> Result<(), ProcessError> {
    let reached = if progress.mapping_not_done == 0 {
        progress.mapping_end
    } else {
        match ports.store.get_run(&msg.tenant, &msg.run_id).await? {
            Some(run) => plan::done_prefix_end(&run, &msg.mapping_id),
            None => None,
        }
    };
    let succeeded = (progress.mapping_not_done == 0).then_some(&msg.run_id);
    if let Some(to) = reached {
        match ports
            .store
            .advance_cursor(&msg.tenant, &msg.mapping_id, msg.generation, to, succeeded)
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Queues the run's deferred chunks once: the release is claimed in the store (only the chunk
/// that closed the last creating chunk can take it; its own redelivery takes it again and sends
/// again, so a crash between the claim and the send loses nothing), then marked done.
async fn release_deferred(ports: &Ports, msg: &FetchMessage) -> Result<(), ProcessError> {
    let (t, run_id) = (&msg.tenant, &msg.run_id);
    let by = u32::try_from(msg.chunk_index).unwrap_or(u32::MAX);
    if !ports
        .store
        .set_run_flag(t, run_id, RunFlag::ClaimRelease { by })
        .await?
    {
        return Ok(());
    }
    let Some(run) = ports.store.get_run(t, run_id).await? else {
        return Ok(());
    };
    let ready = waves::deferred_pending(&run);
    crate::stall::point("release-claimed").await;
    tracing::info!(tenant = %t, run = %run_id, chunks = ready.len(), "queueing the chunks that waited for new end users");
    ports.queue.send_fetch(&ready).await?;
    ports
        .store
        .set_run_flag(t, run_id, RunFlag::Released)
        .await?;
    Ok(())
}

fn outcome(
    ports: &Ports,
    status: ChunkStatus,
    stats: &ChunkStats,
    error: Option<String>,
) -> ChunkOutcome {
    ChunkOutcome {
        status,
        stats: stats.clone(),
        error,
        at: ports.clock.now(),
    }
}

/// Records a chunk's outcome, then what follows it (`follow_up`), each tried again inside the
/// invocation while the store or the queue is unavailable.
async fn record(
    ports: &Ports,
    msg: &FetchMessage,
    chunk: &ChunkRecord,
    over: &ChunkOutcome,
) -> Result<(), ProcessError> {
    let progress = again("record the chunk's outcome", || {
        ports
            .store
            .finish_chunk(&msg.tenant, &msg.run_id, msg.chunk_index, over)
    })
    .await?;
    again("follow the chunk's outcome", || {
        follow_up(ports, msg, chunk, &progress)
    })
    .await
}

/// Records a chunk's final outcome and what follows it (best effort: a failure here is logged;
/// the run then reads `interrupted` after an hour and the next run catches up).
async fn finish(
    ports: &Ports,
    msg: &FetchMessage,
    chunk: Option<&ChunkRecord>,
    status: ChunkStatus,
    stats: &ChunkStats,
    error: Option<String>,
) {
    let Some(chunk) = chunk else { return };
    let over = outcome(ports, status, stats, error);
    if let Err(e) = record(ports, msg, chunk, &over).await {
        tracing::warn!(tenant = %msg.tenant, run = %msg.run_id, error = %crate::error::Chain(&e), "could not record the chunk's outcome");
    }
}

async fn note_error(ports: &Ports, msg: &FetchMessage, message: &str) {
    let at = ports.clock.now();
    let e = LastError {
        at,
        message: message.to_string(),
    };
    ports
        .store
        .set_mapping_error(&msg.tenant, &msg.mapping_id, Some(e))
        .await
        .ok();
}

async fn fail(ports: &Ports, msg: &FetchMessage, chunk: Option<&ChunkRecord>, message: &str) {
    note_error(ports, msg, message).await;
    finish(
        ports,
        msg,
        chunk,
        ChunkStatus::Failed,
        &ChunkStats::default(),
        Some(message.to_string()),
    )
    .await;
}

/// Marks the integration disconnected (retrying a lost optimistic write a few times).
pub async fn disconnect(ports: &Ports, integration: &Integration, message: &str) {
    let t = &integration.tenant;
    let start = |stored: Option<Integration>| {
        stored.ok_or_else(|| StoreError::NotFound(format!("the integration of {t}")))
    };
    let disconnected = |i: &mut Integration| {
        i.status = ConnectionStatus::Disconnected {
            message: message.to_string(),
        };
        Ok::<(), StoreError>(())
    };
    if let Err(e) = optimistic::update_integration(&*ports.store, t, start, disconnected).await {
        tracing::warn!(tenant = %t, error.message = %e, "could not record the disconnection");
    }
}
