//! The chunk worker: one fetch message → Pendo call(s) → identities → values → one atomic
//! replace → cursor. Retry-vs-give-up is decided here, once; the queue glue only acts on it.
//! (The Re-sync all worker is `sync::resync`.)

use super::directory_cache::{DirectoryCache, Shape};
use super::identity::{Directory, IdentityRules};
use super::persist::again;
use super::plan;
use super::processed::{ProcessError, Processed};
use super::transform::{ChunkAccumulator, SharedSink, TransformSpec};
use super::waves;
use crate::domain::mapping::LastError;
use crate::domain::Window;
use crate::domain::{
    ChunkOutcome, ChunkRecord, ChunkStats, ChunkStatus, ConnectionStatus, Integration, Mapping,
    RunFlag, RunProgress, Target,
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
    // Count the delivery and take each chunk of the message (one, or the chunks of a shared
    // call); a chunk already over, or held by another delivery of its message, is a duplicate
    // here and is left out of the work.
    let now = ports.clock.now();
    let lease = now + chrono::Duration::minutes(crate::domain::CHUNK_LEASE_MINUTES);
    let delivery = uuid::Uuid::new_v4().simple().to_string();
    let mut held: Vec<Held> = Vec::new();
    for member in msg.members() {
        let chunk = match store
            .begin_chunk(t, &member.run_id, member.chunk_index, &delivery, now, lease)
            .await
        {
            Ok(start) => Some(start),
            // A run record can be gone (purged history): the chunk still runs, unrecorded.
            Err(StoreError::NotFound(_)) => None,
            Err(e) => {
                hand_back(ports, &held, &delivery, &e.to_string()).await;
                return Err(e.into());
            }
        };
        if let Some(start) = chunk.as_ref().filter(|s| !s.taken) {
            let c = &start.chunk;
            if c.status.is_final() {
                let progress = store.run_progress(t, &member.run_id, &c.mapping_id).await;
                let followed = match progress {
                    Ok(p) => follow_up(ports, &member, c, &p).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = followed {
                    hand_back(ports, &held, &delivery, &e.message()).await;
                    return Err(e);
                }
                tracing::info!(tenant = %t, run = %member.run_id, chunk = member.chunk_index, "duplicate delivery of a finished chunk acknowledged");
            } else {
                tracing::info!(tenant = %t, run = %member.run_id, chunk = member.chunk_index, "another delivery of this chunk is at work; this duplicate is acknowledged");
            }
            continue;
        }
        held.push(Held {
            msg: member,
            chunk: chunk.map(|s| s.chunk),
        });
    }
    if held.is_empty() {
        return Ok(Processed::Duplicate);
    }
    let results = match run_chunks(ports, directories, &held, final_attempt).await {
        Ok(results) => results,
        Err(e) => {
            if matches!(e, ProcessError::Retryable(_)) {
                hand_back(ports, &held, &delivery, &e.message()).await;
            }
            return Err(e);
        }
    };
    let mut retry = Vec::new();
    for (h, result) in held.iter().zip(&results) {
        if let Err(e @ ProcessError::Permanent(cause)) = result {
            if e.is_aws_refusal() {
                // Refused outside the fetch (recording the outcome, queueing the deferred
                // chunks): the smallest write left shows it on the mapping — the AWS message
                // names the function's role, the action and the resource. The chunk itself
                // stays taken and its run reads `interrupted` once the lease ends.
                let message = crate::error::chain(cause.as_ref());
                note_error(ports, &h.msg, &message).await;
            }
        }
        if let Err(e @ ProcessError::Retryable(_)) = result {
            retry.push((h, e.message()));
        }
    }
    for (h, message) in retry {
        hand_back(ports, std::slice::from_ref(h), &delivery, &message).await;
    }
    combine(results)
}

/// A chunk this delivery took (`chunk` is `None` when its run record is gone).
struct Held {
    msg: FetchMessage,
    chunk: Option<ChunkRecord>,
}

/// Lets the redelivery take these chunks at once (and shows the retry on them).
async fn hand_back(ports: &Ports, held: &[Held], delivery: &str, why: &str) {
    for h in held {
        if h.chunk.is_none() {
            continue;
        }
        ports
            .store
            .retry_chunk(
                &h.msg.tenant,
                &h.msg.run_id,
                h.msg.chunk_index,
                delivery,
                &format!("retrying: {why}"),
                ports.clock.now(),
            )
            .await
            .ok();
    }
}

/// How a message of several chunks ended: retried when any chunk must be (the redelivery
/// fetches only the chunks not over), else failed when any failed, else done.
fn combine(results: Vec<Result<Processed, ProcessError>>) -> Result<Processed, ProcessError> {
    let mut permanent = None;
    let mut done: Option<ChunkStats> = None;
    let mut superseded = false;
    for r in results {
        match r {
            Err(e @ ProcessError::Retryable(_)) => return Err(e),
            Err(e) => {
                permanent.get_or_insert(e);
            }
            Ok(Processed::Done(s)) => done.get_or_insert_with(ChunkStats::default).add(&s),
            Ok(Processed::Superseded) => superseded = true,
            Ok(Processed::Duplicate) => {}
        }
    }
    match (permanent, done) {
        (Some(e), _) => Err(e),
        (None, Some(stats)) => Ok(Processed::Done(stats)),
        (None, None) if superseded => Ok(Processed::Superseded),
        (None, None) => Ok(Processed::Duplicate),
    }
}

/// The work of a delivery on the chunks it holds: each chunk's outcome (an `Err` for the
/// whole message only when the integration cannot be read).
async fn run_chunks(
    ports: &Ports,
    directories: &DirectoryCache,
    held: &[Held],
    final_attempt: bool,
) -> Result<Vec<Result<Processed, ProcessError>>, ProcessError> {
    let store = &ports.store;
    let lead = &held[0].msg;
    let t = &lead.tenant;
    let all = |p: Processed| Ok(held.iter().map(|_| Ok(p.clone())).collect());
    let Some(integration) = store.get_integration(t).await? else {
        return all(Processed::Superseded);
    };
    // A chunk of a generation its mapping no longer writes (a Re-sync all or a rebuild since)
    // is dropped, alone when the others of its message are current.
    let gens = integration.generations();
    let stale = |h: &Held| gens.writes(&h.msg.mapping_id) != h.msg.generation;
    if held.iter().all(stale) {
        tracing::info!(tenant = %t, mapping = %lead.mapping_id, "dropping a message of an older generation");
        for h in held {
            supersede(ports, &h.msg, h.chunk.as_ref()).await;
        }
        return all(Processed::Superseded);
    }
    let mut mappings = Vec::with_capacity(held.len());
    for h in held {
        mappings.push(match stale(h) {
            true => None,
            false => store.get_mapping(t, &h.msg.mapping_id).await?,
        });
    }
    let Some(conn) = integration
        .connection
        .clone()
        .filter(|_| integration.is_active())
    else {
        let m = "the Pendo integration is not connected; reconnect it, then Sync now".to_string();
        let mut out = Vec::with_capacity(held.len());
        for (h, mapping) in held.iter().zip(&mappings) {
            if mapping.is_none() {
                supersede(ports, &h.msg, h.chunk.as_ref()).await;
                out.push(Ok(Processed::Superseded));
            } else {
                fail(ports, &h.msg, h.chunk.as_ref(), &m).await;
                out.push(Err(ProcessError::Permanent(m.clone().into())));
            }
        }
        return Ok(out);
    };
    let window = Window {
        from: lead.from,
        to: lead.to,
    };
    let job = |mapping| Job {
        ports,
        directories,
        integration: &integration,
        mapping,
        conn: &conn,
        run: &lead.run_id,
    };
    // The event chunks of one request (normally all of them) share a call; any other chunk
    // (a pipeline kind) is fetched alone.
    let mut results: Vec<Option<Result<ChunkStats, ChunkError>>> =
        held.iter().map(|_| None).collect();
    let mut calls: Vec<(_, Vec<usize>)> = Vec::new();
    for (i, mapping) in mappings.iter().enumerate() {
        let Some(mapping) = mapping else { continue };
        match super::share::request_key(mapping) {
            Some(key) => match calls.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => calls.push((key, vec![i])),
            },
            None => results[i] = Some(fetch_window(&job(mapping), window, 0).await),
        }
    }
    for (_, members) in calls {
        let jobs: Vec<Job<'_>> = members
            .iter()
            .filter_map(|&i| mappings[i].as_ref().map(job))
            .collect();
        match fetch_events(&jobs, window, 0).await {
            Ok(each) => {
                for (&i, r) in members.iter().zip(each) {
                    results[i] = Some(r);
                }
            }
            Err(e) => {
                for &i in &members {
                    results[i] = Some(Err(e.echo()));
                }
            }
        }
    }
    crate::stall::point("chunk-replaced").await;
    let mut out = Vec::with_capacity(held.len());
    for ((h, mapping), result) in held.iter().zip(&mappings).zip(results) {
        let processed = match (mapping, result) {
            (Some(_), Some(result)) => {
                conclude(
                    ports,
                    &h.msg,
                    h.chunk.as_ref(),
                    &integration,
                    result,
                    final_attempt,
                )
                .await
            }
            _ => {
                supersede(ports, &h.msg, h.chunk.as_ref()).await;
                Ok(Processed::Superseded)
            }
        };
        out.push(processed);
    }
    Ok(out)
}

/// What a chunk's fetch came to, recorded on the chunk (and on its mapping when it failed).
async fn conclude(
    ports: &Ports,
    msg: &FetchMessage,
    chunk: Option<&ChunkRecord>,
    integration: &Integration,
    result: Result<ChunkStats, ChunkError>,
    final_attempt: bool,
) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
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
            supersede(ports, msg, chunk).await;
            Ok(Processed::Superseded)
        }
        Err(ChunkError::Pendo(PendoError::Unauthorized { status })) => {
            let message = format!(
                "Pendo refused the integration key (HTTP {status}) — it may have been revoked or lack write access; reconnect with a valid key"
            );
            disconnect(ports, integration, &message).await;
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

impl ChunkError {
    /// The same error for another chunk of a shared call (a store error's causes on one line).
    fn echo(&self) -> ChunkError {
        match self {
            Self::Pendo(e) => Self::Pendo(e.clone()),
            Self::Stale => Self::Stale,
            Self::Invalid(m) => Self::Invalid(m.clone()),
            Self::Store(e) => Self::Store(e.echo()),
        }
    }
}

/// Fetches and writes one window of a pipeline mapping, halving it on "Query exceeded memory
/// limit".
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
            store.list_end_users_unordered(t).await?
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
    super::pipeline_fetch::fetch_pipeline_day(job, window).await
}

/// The chunks of one window of Feature, Page or Track mappings of one request
/// (`share::request_key`)
/// fetched by one call, each mapping's rows written as its own chunk: each chunk's outcome,
/// or the error of the call. On "Query exceeded memory limit" the window is halved, and a
/// single day's call is split into two calls of half the mappings each.
async fn fetch_events(
    jobs: &[Job<'_>],
    window: Window,
    depth: u32,
) -> Result<Vec<Result<ChunkStats, ChunkError>>, ChunkError> {
    match fetch_events_once(jobs, window).await {
        Err(ChunkError::Pendo(PendoError::MemoryLimit)) if depth < MAX_SPLIT_DEPTH => {
            if let Some((a, b)) = window.halves() {
                tracing::warn!(mapping = %jobs[0].mapping.id, mappings = jobs.len(), days = window.days(), "memory limit: splitting the window");
                let first = Box::pin(fetch_events(jobs, a, depth + 1)).await?;
                let second = Box::pin(fetch_events(jobs, b, depth + 1)).await?;
                Ok(first
                    .into_iter()
                    .zip(second)
                    .map(|pair| match pair {
                        (Ok(mut s), Ok(t)) => {
                            s.add(&t);
                            Ok(s)
                        }
                        (Err(e), _) | (_, Err(e)) => Err(e),
                    })
                    .collect())
            } else if jobs.len() > 1 {
                tracing::warn!(mapping = %jobs[0].mapping.id, mappings = jobs.len(), "memory limit: splitting the shared call");
                let (left, right) = jobs.split_at(jobs.len() / 2);
                let mut out = Box::pin(fetch_events(left, window, depth + 1)).await?;
                out.extend(Box::pin(fetch_events(right, window, depth + 1)).await?);
                Ok(out)
            } else {
                Err(ChunkError::Pendo(PendoError::MemoryLimit))
            }
        }
        other => other,
    }
}

async fn fetch_events_once(
    jobs: &[Job<'_>],
    window: Window,
) -> Result<Vec<Result<ChunkStats, ChunkError>>, ChunkError> {
    let lead = &jobs[0];
    let Job {
        ports,
        integration,
        conn,
        ..
    } = *lead;
    let settings = &integration.settings;
    let tz = settings.timezone.map(|z| z.0);
    let st = |e| ChunkError::Store(e);
    let mut source = EventSource::Feature;
    let mut ids: Vec<&str> = Vec::with_capacity(jobs.len());
    let mut specs = Vec::with_capacity(jobs.len());
    let mut dirs: Vec<(Target, Arc<Directory>)> = Vec::new();
    for job in jobs {
        let mapping = job.mapping;
        let Some(item) = mapping.source.event_item() else {
            return Err(ChunkError::Invalid(format!(
                "mapping {} is not a Feature, Page or Track mapping",
                mapping.id
            )));
        };
        source = item.source;
        if !ids.contains(&item.id) {
            ids.push(item.id);
        }
        if !dirs.iter().any(|(t, _)| *t == mapping.target) {
            let dir = load_directory(job, mapping.target, true)
                .await
                .map_err(st)?;
            dirs.push((mapping.target, dir));
        }
        specs.push((item.id, event_spec(job, window, item.minutes_metric)));
    }
    let request_id = match jobs.len() {
        1 => format!("{}-{}", lead.mapping.id, window.from),
        n => format!("{}+{}-{}", lead.mapping.id, n - 1, window.from),
    };
    let request = event_request(
        source,
        &ids,
        window,
        tz,
        lead.mapping.segment_id.as_deref(),
        &settings.field_mappings,
        &request_id,
    );
    let dir_of = |t: Target| {
        dirs.iter()
            .find(|(k, _)| *k == t)
            .map(|(_, d)| d.as_ref())
            .ok_or(ChunkError::Invalid(format!("no directory for {t:?}")))
    };
    let mut accumulators = Vec::with_capacity(specs.len());
    for (id, spec) in specs {
        let dir = dir_of(spec.target)?;
        accumulators.push((id.to_string(), ChunkAccumulator::new(spec, dir)));
    }
    let accumulators = if ids.len() == 1 {
        // One id: the mapping's own request, whose rows carry no id column.
        let mut sink = SameRows(accumulators.into_iter().map(|(_, a)| a).collect());
        ports
            .pendo
            .aggregate(conn, &request, &mut sink)
            .await
            .map_err(ChunkError::Pendo)?;
        sink.0
    } else {
        let mut sink = SharedSink::new(accumulators);
        let answer = ports.pendo.aggregate(conn, &request, &mut sink).await;
        if sink.over_budget {
            // More rows than this process keeps for one call: split it as Pendo's memory
            // limit would be.
            return Err(ChunkError::Pendo(PendoError::MemoryLimit));
        }
        answer.map_err(ChunkError::Pendo)?;
        if sink.stray > 0 {
            tracing::warn!(mapping = %lead.mapping.id, rows = sink.stray, "rows of a shared call for none of its ids were dropped");
        }
        sink.into_accumulators()
    };
    crate::stall::point("chunk-fetched").await;
    let mut out = Vec::with_capacity(jobs.len());
    for (k, (job, acc)) in jobs.iter().zip(accumulators).enumerate() {
        if k > 0 && crate::deadline::left() == Some(std::time::Duration::ZERO) {
            // The invocation's time for calls is over: the chunks not yet written go back to
            // the queue (their redelivery fetches only them) rather than outlive the deadline.
            out.push(Err(ChunkError::Pendo(PendoError::Timeout)));
            continue;
        }
        out.push(write_events(job, window, acc).await);
    }
    Ok(out)
}

/// What a Feature, Page or Track mapping turns rows into, for one window.
fn event_spec(job: &Job<'_>, window: Window, minutes_metric: Option<&str>) -> TransformSpec {
    let (mapping, integration) = (job.mapping, job.integration);
    let settings = &integration.settings;
    TransformSpec {
        mapping_id: mapping.id.clone(),
        target: mapping.target,
        metric: mapping.metric_name.clone(),
        minutes_metric: minutes_metric.map(str::to_string),
        multi_app: mapping.multi_app,
        passive: mapping.passive,
        auto_create: mapping.auto_create_users,
        rules: IdentityRules {
            email_mapped: settings.field_mappings.email.is_some(),
            may_create: settings.auto_detect_end_users && mapping.auto_create_users,
        },
        tz: settings.timezone.map(|z| z.0),
        window,
        apps: integration.apps.clone(),
    }
}

/// The same rows to every accumulator (several mappings of one page or feature).
struct SameRows<'d>(Vec<ChunkAccumulator<'d>>);

impl crate::pendo::RowSink for SameRows<'_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), crate::pendo::RowError> {
        self.0.iter_mut().try_for_each(|a| a.row(raw))
    }
    fn row_prefix(&mut self, rest: &[u8]) -> Option<Result<usize, crate::pendo::RowError>> {
        match self.0.as_mut_slice() {
            [one] => one.row_prefix(rest),
            _ => None,
        }
    }
    fn reset(&mut self) {
        self.0.iter_mut().for_each(crate::pendo::RowSink::reset);
    }
}

/// Writes one mapping's chunk from its accumulated rows: new end users, values and activity
/// (one atomic replace), fills, and the rows no object took.
async fn write_events(
    job: &Job<'_>,
    window: Window,
    acc: ChunkAccumulator<'_>,
) -> Result<ChunkStats, ChunkError> {
    let (ports, mapping) = (job.ports, job.mapping);
    let t = &job.integration.tenant;
    let store = &ports.store;
    let st = |e| ChunkError::Store(e);
    let inputs: Vec<_> = acc.pending_users().iter().map(|p| p.input()).collect();
    let (created_ids, users_created) = create_users(ports, t, &inputs).await.map_err(st)?;
    let prepared = acc.prepare(created_ids);
    let gen = job.integration.generations().writes(&mapping.id);
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
/// chunk is over, the deferred chunks are queued by whoever wins the release; once every chunk
/// of the run is over, a Re-sync all whose chunks are all done is published.
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
    if progress.open == 0 {
        super::publish::conclude(ports, &msg.tenant, &msg.run_id).await?;
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

/// Records a chunk as superseded (an older generation, a deleted mapping, a stale write).
async fn supersede(ports: &Ports, msg: &FetchMessage, chunk: Option<&ChunkRecord>) {
    let stats = ChunkStats::default();
    finish(ports, msg, chunk, ChunkStatus::Superseded, &stats, None).await;
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
