//! Re-sync all without a gap (`sync::publish`): while a Re-sync all builds the next generation,
//! every read shows the last complete one; when every chunk is done, all reads switch at once;
//! the old generation is purged afterwards. A re-sync whose chunks fail for good is never
//! shown, and can be discarded.

use super::shared_calls::eight_event_mappings;
use crate::helpers::*;
use pendo_sim::{FaultKind, FaultRule};
use pendo_sync::domain::*;
use pendo_sync::store::prelude::*;
use pendo_sync::store::ActivityOf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Everything a user reads of the tenant, one entry per read (each one call of the store or the
/// app, which reads one generation): the export, and for each of two companies and two end
/// users their metrics, each metric's series, their recent activity and system metrics.
type Reads = Vec<String>;

async fn read_all(s: &Stack, objects: &[(ObjectRef, Vec<String>)]) -> Reads {
    let (t, app) = (&s.tenant, &s.app);
    let last = d("2026-11-20");
    let from = last - chrono::Duration::days(60);
    let mut reads = vec![format!("{:?}", s.export().await)];
    for (o, metrics) in objects {
        // An object's metrics with each one's synced range (the charts' days of zeros).
        reads.push(format!("{:?}", app.object_metrics(t, o).await.unwrap()));
        for m in metrics {
            let series = app.object_series(t, o, m, from, last).await.unwrap();
            reads.push(format!("{series:?}"));
        }
        let of = match o.kind {
            Target::Company => ActivityOf::Company(o.id.clone()),
            _ => ActivityOf::EndUser(o.id.clone()),
        };
        let activity = s.store.recent_activity(t, &of, from, 50).await.unwrap();
        reads.push(format!("{activity:?}"));
        reads.push(format!("{:?}", app.system_metrics(t, o).await.unwrap()));
    }
    reads
}

/// The objects read (two companies and two end users with activity) and their metrics.
async fn sample(s: &Stack) -> Vec<(ObjectRef, Vec<String>)> {
    let mut out = Vec::new();
    for o in objects_to_read(&s.export().await) {
        let metrics = s.store.list_metrics(&s.tenant, &o).await.unwrap();
        out.push((o, metrics.into_iter().map(|m| m.metric).collect()));
    }
    out
}

/// Drains the queues through the workers while a reader polls every read; returns the polls.
async fn polls_while_draining(s: &Arc<Stack>, objects: &[(ObjectRef, Vec<String>)]) -> Vec<Reads> {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, stop, objects) = (s.clone(), stop.clone(), objects.to_vec());
        tokio::spawn(async move {
            let mut polls = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                polls.push(read_all(&s, &objects).await);
                tokio::task::yield_now().await;
            }
            polls
        })
    };
    s.drain().await;
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap()
}

/// A reader polling every read through a whole Re-sync all sees, at every poll, exactly the
/// old reads or exactly the new ones, and the new ones at the end; then the old generation is
/// purged. The new generation differs (more days), so a mix would show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_during_a_resync_all_sees_the_old_values_or_the_new_never_a_mix() {
    let s = Arc::new(Stack::start().await);
    eight_event_mappings(&s, 6).await;
    s.resync().await;
    let objects = sample(&s).await;
    assert_eq!(objects.len(), 4);
    let old = read_all(&s, &objects).await;
    s.ny_days(12).await;
    s.app.resync_all(&s.tenant).await.unwrap();
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!((i.generation, i.read_generation()), (3, 2));
    assert_eq!(read_all(&s, &objects).await, old);
    let polls = polls_while_draining(&s, &objects).await;
    let new = read_all(&s, &objects).await;
    assert_ne!(new[0], old[0]);
    let changed = (0..old.len()).filter(|&r| old[r] != new[r]).count();
    assert!(
        changed > old.len() / 2,
        "{changed} of {} reads changed",
        old.len()
    );
    let (wholly_old, wholly_new) = assert_old_then_new(&polls, &old, &new);
    assert!(wholly_old >= 1, "polls of the old values: {wholly_old}");
    eprintln!(
        "{} polls: {wholly_old} wholly old, {wholly_new} wholly new",
        polls.len()
    );
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!(
        (i.generation, i.read_generation(), i.purge_pending),
        (3, 3, false)
    );
    // The purge ran: nothing of generation 2 is left.
    assert_eq!(
        s.store
            .purge_generations(&s.tenant, &Generations::single(3))
            .await
            .unwrap(),
        0
    );
}

/// A Re-sync all whose chunks all fail for good is never shown: the old reads stay, the run
/// shows failed, and a discard goes back to writing the shown generation and purges the
/// half-built one; the next daily run syncs into the shown values.
#[tokio::test]
async fn a_failed_resync_leaves_the_old_values_shown_and_can_be_discarded() {
    let s = Stack::start().await;
    eight_event_mappings(&s, 6).await;
    s.resync().await;
    let old = s.export().await;
    assert!(!old.is_empty());
    // Pendo answers every aggregation with a refusal no retry changes.
    s.sim
        .control()
        .add_fault(FaultRule {
            status: Some(400),
            message: Some("invalid pipeline".into()),
            ..FaultRule::times("/api/v1/aggregation", FaultKind::Status, 10_000)
        })
        .unwrap();
    let id = s.app.resync_all(&s.tenant).await.unwrap();
    s.drain().await;
    assert_eq!(s.export().await, old);
    let run = s.store.get_run(&s.tenant, &id).await.unwrap().unwrap();
    assert_eq!(run.kind, RunKind::ResyncAll);
    assert!(!run.chunks.is_empty());
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Failed));
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!((i.generation, i.read_generation()), (3, 2));
    s.sim.control().clear_faults();
    s.app.discard_resync(&s.tenant).await.unwrap();
    assert!(s.app.discard_resync(&s.tenant).await.is_err());
    s.drain().await;
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!(
        (i.generation, i.read_generation(), i.purge_pending),
        (2, 2, false)
    );
    assert_eq!(s.export().await, old);
    // The daily run writes the shown generation again, from each mapping's cursor as it was
    // before the re-sync (kept through it), not from scratch; the next re-sync takes a new
    // number.
    s.daily().await;
    assert_eq!(s.export().await, old);
    let runs = s.store.list_runs(&s.tenant, 10).await.unwrap();
    let daily = runs.iter().find(|r| r.kind == RunKind::Daily).unwrap();
    assert!(!daily.chunks.is_empty());
    for m in s.store.list_mappings(&s.tenant).await.unwrap() {
        let st = s.state(&m.id).await;
        let from = st.synced_from.unwrap();
        assert_eq!(st.generation, 2);
        assert!(
            daily
                .chunks
                .iter()
                .filter(|c| c.mapping_id == m.id)
                .all(|c| c.from > from),
            "{} synced from scratch again",
            m.metric_name
        );
    }
    s.resync().await;
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!((i.generation, i.read_generation()), (4, 4));
    assert_eq!(s.export().await, old);
}

/// `rows` with the values of metric `from` named `to`, in the export's order.
fn renamed(rows: &[ExportRow], from: &str, to: &str) -> Vec<ExportRow> {
    let mut out: Vec<ExportRow> = rows
        .iter()
        .cloned()
        .map(|mut r| {
            if r.record == "value" && r.metric == from {
                r.metric = to.into();
            }
            r
        })
        .collect();
    pendo_sync::store::sort_export(&mut out);
    out
}

/// One mapping's rebuild after an edit in place (its metric renamed) is read like a Re-sync
/// all: every poll shows the mapping's old values or its new ones, never a mix and never
/// empty; reads switch once, the mapping alone; then its old values are purged. The mapping
/// keeps its own generation through the daily runs (sharing their Pendo calls) until the next
/// Re-sync all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_during_a_mapping_rebuild_sees_its_old_values_or_the_new_never_a_mix() {
    let s = Arc::new(Stack::start().await);
    eight_event_mappings(&s, 12).await;
    s.resync().await;
    let objects = sample(&s).await;
    let before = s.export().await;
    let m = rename(&s.app, &s.tenant, "Clicks", "Clicks v2").await;
    assert_eq!(s.export().await, before, "an edit changes no value");
    // (An object's metrics name their mapping as it is now: read after the edit.)
    let old = read_all(&s, &objects).await;
    let run = s.app.rebuild_mapping(&s.tenant, &m.id).await.unwrap();
    assert_eq!(read_all(&s, &objects).await, old, "queued: nothing changed");
    // The reader races the workers: how many polls fall inside the rebuild varies (the AWS
    // test, `aws_gapless.rs`, polls between its two chunks deterministically).
    let polls = polls_while_draining(&s, &objects).await;
    let new = read_all(&s, &objects).await;
    let (wholly_old, wholly_new) = assert_old_then_new(&polls, &old, &new);
    eprintln!(
        "{} polls: {wholly_old} wholly old, {wholly_new} wholly new",
        polls.len()
    );
    // The same values under the new name, every other mapping's untouched.
    let after = s.export().await;
    assert_eq!(after, renamed(&before, "Clicks", "Clicks v2"));
    assert_ne!(after, before);
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!(
        (i.generation, i.read_generation(), i.purge_pending),
        (2, 2, false)
    );
    let own = OwnGeneration {
        written: 3,
        shown: Some(3),
    };
    assert_eq!(i.own.get(&m.id), Some(&own));
    let rebuild = s.store.get_run(&s.tenant, &run).await.unwrap().unwrap();
    assert_eq!((rebuild.generation, rebuild.generation_of(&m.id)), (2, 3));
    assert_eq!(s.state(&m.id).await.generation, 3);
    // The purge ran: nothing is left that no mapping shows or writes.
    assert_eq!(
        s.store
            .purge_generations(&s.tenant, &i.generations())
            .await
            .unwrap(),
        0
    );
    // The daily run writes the mapping's generation beside the others', in the same calls.
    let aggregations = || {
        let counters = s.sim.control().counters();
        counters.get("/api/v1/aggregation").copied().unwrap_or(0)
    };
    let calls = aggregations();
    s.daily().await;
    let daily = s.store.list_runs(&s.tenant, 10).await.unwrap();
    let daily = daily.iter().find(|r| r.kind == RunKind::Daily).unwrap();
    assert_eq!(daily.generation_of(&m.id), 3);
    assert!(daily
        .chunks
        .iter()
        .any(|c| c.mapping_id == m.id && c.share.is_some()));
    // One call per shared group or lone chunk, as without the rebuild.
    let groups: std::collections::BTreeSet<usize> = (0..daily.chunks.len())
        .map(|i| daily.chunks[i].share.unwrap_or(i))
        .collect();
    assert_eq!(aggregations() - calls, groups.len() as u64);
    assert_eq!(s.export().await, after);
    // A Re-sync all writes every mapping into its generation and ends the mapping's own.
    s.resync().await;
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!((i.generation, i.read_generation(), i.own.len()), (4, 4, 0));
    assert_eq!(s.export().await, after);
}

/// A rebuild with a chunk that failed for good is never shown, though its other chunk wrote
/// values: every read shows the mapping's old values, nothing purged; the next daily run fills
/// what failed from the rebuild's cursor and publishes it.
#[tokio::test]
async fn a_half_built_rebuild_keeps_the_old_values_until_a_later_run_completes_it() {
    let s = Stack::start().await;
    // Twelve days: two chunks of the rebuilt mapping.
    eight_event_mappings(&s, 12).await;
    s.resync().await;
    let objects = sample(&s).await;
    let before = s.export().await;
    let m = rename(&s.app, &s.tenant, "Clicks", "Clicks v2").await;
    let old = read_all(&s, &objects).await;
    // Pendo refuses the rebuild's first call for good; the second one answers.
    s.sim
        .control()
        .add_fault(FaultRule {
            status: Some(400),
            message: Some("invalid pipeline".into()),
            ..FaultRule::times("/api/v1/aggregation", FaultKind::Status, 1)
        })
        .unwrap();
    let run = s.app.rebuild_mapping(&s.tenant, &m.id).await.unwrap();
    s.drain().await;
    let half = s.store.get_run(&s.tenant, &run).await.unwrap().unwrap();
    let status = |st: ChunkStatus| half.chunks.iter().filter(|c| c.status == st).count();
    assert_eq!(
        (status(ChunkStatus::Done), status(ChunkStatus::Failed)),
        (1, 1)
    );
    let written: u64 = half.chunks.iter().map(|c| c.stats.values_written).sum();
    assert!(written > 0, "the done chunk wrote values");
    assert_eq!(s.export().await, before);
    assert_eq!(read_all(&s, &objects).await, old);
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    let own = OwnGeneration {
        written: 3,
        shown: None,
    };
    assert_eq!(i.own.get(&m.id), Some(&own));
    s.daily().await;
    assert_eq!(s.export().await, renamed(&before, "Clicks", "Clicks v2"));
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!(
        (i.own.get(&m.id).and_then(|o| o.shown), i.purge_pending),
        (Some(3), false)
    );
    // Deleted, the mapping's values go, and so does its own generation.
    s.app.delete_mapping(&s.tenant, &m.id).await.unwrap();
    s.drain().await;
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert!(i.own.is_empty());
    let left = s.export().await;
    assert!(left
        .iter()
        .all(|r| r.metric != "Clicks v2" && r.metric != m.id.as_str()));
    assert_eq!(
        left.len(),
        before.len()
            - before
                .iter()
                .filter(|r| r.metric == "Clicks" || r.metric == m.id.as_str())
                .count()
    );
}

/// A rebuild asked while a Re-sync all is pending is refused (the re-sync rebuilds the mapping
/// already), with nothing changed.
#[tokio::test]
async fn a_rebuild_during_a_pending_resync_all_is_refused() {
    let s = Stack::start().await;
    eight_event_mappings(&s, 3).await;
    s.resync().await;
    let m = rename(&s.app, &s.tenant, "Clicks", "Clicks v2").await;
    s.app.resync_all(&s.tenant).await.unwrap();
    let e = s.app.rebuild_mapping(&s.tenant, &m.id).await.unwrap_err();
    assert!(e.to_string().contains("Re-sync all in progress"), "{e}");
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert!(i.own.is_empty());
    s.drain().await;
    let i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    assert_eq!((i.generation, i.read_generation()), (3, 3));
    assert!(
        !s.app
            .mapping(&s.tenant, &m.id)
            .await
            .unwrap()
            .rebuild_required
    );
}
