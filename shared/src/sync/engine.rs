//! The chunk worker: one fetch message → Pendo call(s) → identities → values → one atomic
//! replace → cursor. And the re-sync worker: purge older generations, reset cursors, fan out.
//! Retry-vs-give-up is decided here, once; the queue glue only acts on it.

use super::identity::{Directory, IdentityRules};
use super::messages::{FetchMessage, ResyncMessage};
use super::plan::{self, Window};
use super::transform::{ChunkAccumulator, TransformSpec};
use super::waves;
use crate::app::Ports;
use crate::domain::mapping::LastError;
use crate::domain::{
    ChunkOutcome, ChunkRecord, ChunkStats, ChunkStatus, ConnectionStatus, Integration, Mapping,
    MappingKind, RunKind, SyncRun, Target,
};
use crate::pendo::pipelines::{event_request, EventSource};
use crate::pendo::PendoError;
use crate::store::StoreError;

/// How a message ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    Done(ChunkStats),
    /// Dropped: an older generation, a deleted mapping, or a run already superseded.
    Superseded,
}

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Try again later (the queue redelivers).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will never succeed as it is; recorded on the mapping and dropped.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(m) => ProcessError::Permanent(m),
            other => ProcessError::Retryable(other.to_string()),
        }
    }
}

/// Largest number of times a memory-limited window is halved before giving up.
const MAX_SPLIT_DEPTH: u32 = 6;

pub async fn process_fetch(
    ports: &Ports,
    msg: &FetchMessage,
    final_attempt: bool,
) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
    let Some(integration) = store.get_integration(t).await? else {
        return Ok(Processed::Superseded);
    };
    if integration.generation != msg.generation {
        tracing::info!(tenant = %t, mapping = %msg.mapping_id, "dropping a message of an older generation");
        mark(
            ports,
            msg,
            ChunkStatus::Superseded,
            &ChunkStats::default(),
            None,
        )
        .await;
        return Ok(Processed::Superseded);
    }
    let Some(mapping) = store.get_mapping(t, &msg.mapping_id).await? else {
        mark(
            ports,
            msg,
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
        fail(ports, msg, &m).await;
        return Err(ProcessError::Permanent(m));
    };
    let window = Window {
        from: msg.from,
        to: msg.to,
    };
    let result = fetch_window(ports, &integration, &mapping, &conn, window, 0).await;
    match result {
        Ok(stats) => {
            let run = store
                .update_chunk(
                    t,
                    &msg.run_id,
                    msg.chunk_index,
                    &outcome(ports, ChunkStatus::Done, &stats, None),
                )
                .await;
            match run {
                Ok(run) => {
                    advance(ports, &run, msg).await?;
                    release_deferred(ports, &run)
                        .await
                        .map_err(|e| ProcessError::Retryable(e.to_string()))?;
                }
                // A run record can be gone (purged history); the cursor still moves.
                Err(StoreError::NotFound(_)) => {
                    store
                        .advance_cursor(t, &msg.mapping_id, msg.generation, msg.to, &msg.run_id)
                        .await
                        .ok();
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(tenant = %t, mapping = %msg.mapping_id, from = %msg.from, to = %msg.to,
                rows = stats.rows_read, values = stats.values_written, users_created = stats.users_created, "chunk done");
            Ok(Processed::Done(stats))
        }
        Err(ChunkError::Stale) => {
            mark(
                ports,
                msg,
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
            fail(ports, msg, &message).await;
            Err(ProcessError::Permanent(message))
        }
        Err(ChunkError::Pendo(e)) if e.is_retryable() && !final_attempt => {
            note_error(ports, msg, &e.to_string()).await;
            mark(
                ports,
                msg,
                ChunkStatus::Pending,
                &ChunkStats::default(),
                Some(format!("retrying: {e}")),
            )
            .await;
            Err(ProcessError::Retryable(e.to_string()))
        }
        Err(ChunkError::Pendo(e)) => {
            let m = e.to_string();
            fail(ports, msg, &m).await;
            Err(ProcessError::Permanent(m))
        }
        Err(ChunkError::Store(e)) => {
            if final_attempt {
                fail(ports, msg, &e.to_string()).await;
            }
            Err(e.into())
        }
    }
}

#[derive(Debug)]
pub(super) enum ChunkError {
    Pendo(PendoError),
    Store(StoreError),
    Stale,
}

/// Fetches and writes one window, halving it on "Query exceeded memory limit".
async fn fetch_window(
    ports: &Ports,
    integration: &Integration,
    mapping: &Mapping,
    conn: &crate::domain::Connection,
    window: Window,
    depth: u32,
) -> Result<ChunkStats, ChunkError> {
    match fetch_once(ports, integration, mapping, conn, window).await {
        Err(ChunkError::Pendo(PendoError::MemoryLimit)) if depth < MAX_SPLIT_DEPTH => {
            let Some((a, b)) = window.halves() else {
                return Err(ChunkError::Pendo(PendoError::MemoryLimit));
            };
            tracing::warn!(mapping = %mapping.id, days = window.days(), "memory limit: splitting the window");
            let mut stats = Box::pin(fetch_window(
                ports,
                integration,
                mapping,
                conn,
                a,
                depth + 1,
            ))
            .await?;
            stats.add(
                &Box::pin(fetch_window(
                    ports,
                    integration,
                    mapping,
                    conn,
                    b,
                    depth + 1,
                ))
                .await?,
            );
            Ok(stats)
        }
        other => other,
    }
}

/// The directory snapshot a chunk resolves against: companies always, assets or projects when
/// they are the target, end users when asked for.
pub(super) async fn load_directory(
    ports: &Ports,
    t: &crate::domain::TenantId,
    target: Target,
    with_users: bool,
) -> Result<Directory, StoreError> {
    let store = &ports.store;
    let only = |k: Target| async move {
        if target == k {
            store.list_objects(t, k).await
        } else {
            Ok(Vec::new())
        }
    };
    Ok(Directory::new(
        store.list_objects(t, Target::Company).await?,
        only(Target::Asset).await?,
        only(Target::Project).await?,
        if with_users {
            store.list_end_users(t).await?
        } else {
            Vec::new()
        },
    ))
}

async fn fetch_once(
    ports: &Ports,
    integration: &Integration,
    mapping: &Mapping,
    conn: &crate::domain::Connection,
    window: Window,
) -> Result<ChunkStats, ChunkError> {
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
            return super::pipeline_fetch::fetch_pipeline_day(
                ports,
                integration,
                mapping,
                conn,
                window,
            )
            .await
        }
    };
    let st = |e| ChunkError::Store(e);
    let dir = load_directory(ports, t, mapping.target, true)
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
    let inputs: Vec<_> = acc.pending_users().iter().map(|p| p.input()).collect();
    let (created_ids, users_created) = create_users(ports, t, &inputs).await.map_err(st)?;
    let prepared = acc.prepare(created_ids);
    match store
        .replace_chunk_from(t, integration.generation, &mapping.id, window, &prepared)
        .await
    {
        Err(StoreError::StaleGeneration(_)) => return Err(ChunkError::Stale),
        other => other.map_err(st)?,
    }
    for f in prepared.fills() {
        store
            .fill_end_user(
                t,
                &f.user_id,
                f.email.as_deref(),
                f.name.as_deref(),
                f.surname.as_deref(),
            )
            .await
            .map_err(st)?;
    }
    Ok(ChunkStats {
        rows_read: prepared.rows_read(),
        values_written: prepared.value_count(),
        activities_written: prepared.activity_count(),
        users_created,
        rows_skipped: prepared.rows_skipped(),
    })
}

/// Creates a chunk's new end users, each only if still absent (another chunk may have created
/// it meanwhile): their service ids in input order, and how many this call created.
pub(super) async fn create_users(
    ports: &Ports,
    t: &crate::domain::TenantId,
    inputs: &[crate::domain::EndUserInput],
) -> Result<(Vec<String>, u64), StoreError> {
    let mut ids = Vec::with_capacity(inputs.len());
    let mut created = 0;
    for input in inputs {
        let (user, new) = ports.store.create_end_user_if_absent(t, input).await?;
        created += u64::from(new);
        ids.push(user.id);
    }
    Ok((ids, created))
}

/// Moves the mapping's cursor to the end of the longest run of done chunks from the start of
/// this run's window for the mapping (chunks may finish out of order).
async fn advance(ports: &Ports, run: &SyncRun, msg: &FetchMessage) -> Result<(), ProcessError> {
    let mut mine: Vec<&ChunkRecord> = run
        .chunks
        .iter()
        .filter(|c| c.mapping_id == msg.mapping_id)
        .collect();
    mine.sort_by_key(|c| c.from);
    let mut reached = None;
    for c in mine {
        if c.status != ChunkStatus::Done {
            break;
        }
        reached = Some(c.to);
    }
    if let Some(to) = reached {
        match ports
            .store
            .advance_cursor(&msg.tenant, &msg.mapping_id, msg.generation, to, &run.id)
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
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

/// Records a chunk's outcome; once a failed chunk was the run's last creator, queues the
/// deferred chunks (see `waves`).
async fn mark(
    ports: &Ports,
    msg: &FetchMessage,
    status: ChunkStatus,
    stats: &ChunkStats,
    error: Option<String>,
) {
    let release = status == ChunkStatus::Failed;
    let r = ports
        .store
        .update_chunk(
            &msg.tenant,
            &msg.run_id,
            msg.chunk_index,
            &outcome(ports, status, stats, error),
        )
        .await;
    match r {
        Ok(run) if release => {
            if let Err(e) = release_deferred(ports, &run).await {
                tracing::warn!(tenant = %msg.tenant, run = %msg.run_id, error = %e,
                    "could not queue the deferred chunks; the next run catches them up");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(tenant = %msg.tenant, run = %msg.run_id, error = %e, "could not record chunk outcome");
        }
    }
}

/// Queues the run's deferred chunks when no other chunk is pending any more.
async fn release_deferred(ports: &Ports, run: &SyncRun) -> Result<(), crate::queue::QueueError> {
    let ready = waves::deferred_ready(run);
    if ready.is_empty() {
        return Ok(());
    }
    tracing::info!(tenant = %run.tenant, run = %run.id, chunks = ready.len(), "queueing the chunks that waited for new end users");
    ports.queue.send_fetch(&ready).await
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

async fn fail(ports: &Ports, msg: &FetchMessage, message: &str) {
    note_error(ports, msg, message).await;
    mark(
        ports,
        msg,
        ChunkStatus::Failed,
        &ChunkStats::default(),
        Some(message.to_string()),
    )
    .await;
}

/// Marks the integration disconnected (retrying a lost optimistic write a few times).
pub async fn disconnect(ports: &Ports, integration: &Integration, message: &str) {
    let mut current = integration.clone();
    for _ in 0..5 {
        current.status = ConnectionStatus::Disconnected {
            message: message.to_string(),
        };
        match ports.store.put_integration(&current).await {
            Err(StoreError::Conflict(_)) => {
                match ports.store.get_integration(&current.tenant).await {
                    Ok(Some(fresh)) => current = fresh,
                    _ => return,
                }
            }
            _ => return,
        }
    }
}

/// The fetch messages and chunk records of one mapping's window.
pub fn plan_mapping(
    mapping: &Mapping,
    window: Window,
    run: &mut SyncRun,
    out: &mut Vec<FetchMessage>,
) {
    for w in plan::chunks(window, mapping.source.max_chunk_days()) {
        let chunk = ChunkRecord::pending(mapping.id.clone(), w.from, w.to);
        out.push(waves::message_for(run, run.chunks.len(), &chunk));
        run.chunks.push(chunk);
    }
}

/// Re-sync all, worker side: purge every value of older generations, reset every cursor to
/// "never synced" for this generation, plan `days_to_sync` days for every enabled mapping.
pub async fn process_resync(ports: &Ports, msg: &ResyncMessage) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
    let Some(integration) = store.get_integration(t).await? else {
        return Ok(Processed::Superseded);
    };
    if integration.generation != msg.generation {
        return Ok(Processed::Superseded);
    }
    let purged = store.purge_below_generation(t, msg.generation).await?;
    let mappings = store.list_mappings(t).await?;
    let mut run = match store.get_run(t, &msg.run_id).await? {
        Some(r) => r,
        None => SyncRun {
            tenant: t.clone(),
            id: msg.run_id.clone(),
            kind: RunKind::ResyncAll,
            generation: msg.generation,
            started_at: ports.clock.now(),
            planned: false,
            chunks: Vec::new(),
        },
    };
    let mut messages = Vec::new();
    if run.planned {
        // Redelivered after planning: send the still-pending chunks again (idempotent).
        messages = waves::pending_now(&run);
    } else {
        let last = crate::time::last_complete_day(
            ports.clock.now(),
            integration.settings.timezone.map(|z| z.0),
        );
        for m in mappings.iter().filter(|m| m.enabled) {
            store.reset_mapping_state(t, &m.id, msg.generation).await?;
            if let Some(w) =
                plan::plan_window(None, last, integration.settings.days_to_sync.get(), 0)
            {
                plan_mapping(m, w, &mut run, &mut messages);
            }
        }
        let creating = mappings
            .iter()
            .filter(|m| waves::creates_users(&integration.settings, m))
            .map(|m| m.id.clone())
            .collect();
        messages = waves::defer_after_creators(&mut run, &creating, messages);
        run.planned = true;
        store.put_run(&run).await?;
    }
    ports
        .queue
        .send_fetch(&messages)
        .await
        .map_err(|e| ProcessError::Retryable(e.to_string()))?;
    tracing::info!(tenant = %t, generation = msg.generation, purged, chunks = messages.len(), "re-sync planned");
    Ok(Processed::Done(ChunkStats::default()))
}
