//! The reliability suite (DESIGN §5): slow and cut Pendo answers, a key revoked mid-run, every
//! queue message twice and out of order, a fetch dropped mid-chunk and redelivered, Re-sync all
//! racing a daily run (and twice in a row), and concurrent creation of one end user. Each
//! scenario ends by comparing the exported state with a fault-free run of the same scenario, and
//! prints the number of faults it injected (`cargo test … -- --nocapture` shows them).

use super::faults::{every, scenario};
use crate::helpers::*;
use async_trait::async_trait;
use pendo_sim::{FaultKind, FaultRule};
use pendo_sync::domain::*;
use pendo_sync::queue::embedded::EmbeddedQueue;
use pendo_sync::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, QueueMessage, ResyncMessage, RunMessage,
};
use pendo_sync::queue::{Queue, QueueError};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use pendo_sync::sync::processed::Processed;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AGG: &str = "/api/v1/aggregation";

/// The export of the fault-free run of `scenario` followed by a Re-sync all.
async fn fault_free() -> Vec<ExportRow> {
    let clean = Stack::start().await;
    scenario(&clean).await;
    clean.resync().await;
    export(&clean).await
}

/// Faults fired by the simulator's rules so far, by kind.
fn fired(s: &Stack) -> Vec<(FaultKind, u64)> {
    s.sim
        .control()
        .faults()
        .iter()
        .map(|f| (f.rule.kind, f.fired))
        .collect()
}

fn total(f: &[(FaultKind, u64)]) -> u64 {
    f.iter().map(|(_, n)| n).sum()
}

/// Receives and processes one message by hand (as one worker would), acknowledging it.
async fn step(s: &Stack) -> Processed {
    let d = s.queue.receive().unwrap().expect("a queued message");
    let out = s.app.process_message(&d.body, false).await.unwrap();
    s.queue.ack(&d).unwrap();
    out
}

/// The export with activity records naming their mapping by metric name instead of by its
/// random id, so that two stacks compare.
pub(super) async fn export(s: &Stack) -> Vec<ExportRow> {
    let names: std::collections::BTreeMap<String, String> = s
        .store
        .list_mappings(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id.as_str().to_string(), m.metric_name))
        .collect();
    let mut rows = s.export().await;
    for r in &mut rows {
        if r.record == "activity" {
            if let Some(n) = names.get(&r.metric) {
                r.metric = format!("activity of {n}");
            }
        }
    }
    pendo_sync::store::sort_export(&mut rows);
    rows
}

/// The export of the generation a Re-sync all is building (shown for one read, then hidden
/// again): what it wrote so far.
pub(super) async fn building(s: &Stack) -> Vec<ExportRow> {
    let mut i = s.store.get_integration(&s.tenant).await.unwrap().unwrap();
    let shown = i.published;
    i.published = Some(i.generation);
    i.version = s.store.put_integration(&i).await.unwrap();
    let rows = export(s).await;
    i.published = shown;
    s.store.put_integration(&i).await.unwrap();
    rows
}

/// Equal exports, or a short account of the first differences.
pub(super) fn assert_same(got: &[ExportRow], want: &[ExportRow]) {
    if got == want {
        return;
    }
    let g: BTreeSet<String> = got.iter().map(|r| format!("{r:?}")).collect();
    let w: BTreeSet<String> = want.iter().map(|r| format!("{r:?}")).collect();
    let extra: Vec<_> = g.difference(&w).take(5).collect();
    let missing: Vec<_> = w.difference(&g).take(5).collect();
    panic!(
        "{} rows, want {}; extra {extra:#?}; missing {missing:#?}",
        got.len(),
        want.len()
    );
}

async fn last_run(s: &Stack) -> SyncRun {
    s.store.list_runs(&s.tenant, 1).await.unwrap()[0].clone()
}

#[tokio::test]
async fn slow_responses_beyond_the_client_timeout_join_the_transient_mix() {
    let want = fault_free().await;
    let s = Stack::build(
        sim_config(),
        StackOptions {
            request_timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        },
    )
    .await;
    scenario(&s).await;
    let c = s.sim.control();
    c.add_fault(FaultRule {
        delay_ms: Some(2500),
        ..every(FaultKind::Delay, 4)
    })
    .unwrap();
    c.add_fault(FaultRule {
        retry_after_secs: Some(1),
        ..FaultRule::times(AGG, FaultKind::Status429RetryAfter, 1)
    })
    .unwrap();
    c.add_fault(FaultRule::times(AGG, FaultKind::Status429, 1))
        .unwrap();
    c.add_fault(every(FaultKind::TruncateMidJson, 3)).unwrap();
    c.add_fault(every(FaultKind::Status502, 5)).unwrap();
    c.add_fault(every(FaultKind::DropMidBody, 7)).unwrap();
    c.add_fault(every(FaultKind::Status500, 11)).unwrap();
    c.add_fault(every(FaultKind::Status503, 13)).unwrap();
    s.resync().await;
    let f = fired(&s);
    eprintln!(
        "transient mix with slow responses: faults injected {f:?}, total {}",
        total(&f)
    );
    assert!(f.iter().all(|(_, n)| *n >= 1), "every kind fired: {f:?}");
    let run = last_run(&s).await;
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Done));
    assert_same(&export(&s).await, &want);
}

#[tokio::test]
async fn a_body_cut_on_every_attempt_is_never_taken_as_complete() {
    let want = fault_free().await;
    let s = Stack::start().await;
    scenario(&s).await;
    let c = s.sim.control();
    c.add_fault(every(FaultKind::TruncateMidJson, 1)).unwrap();
    s.resync().await;
    let run = last_run(&s).await;
    // 8 attempts per delivery (the fast retry policy) × 5 deliveries, all cut short, for each
    // of the run's calls (the three mappings share one a window).
    assert_eq!(calls_of(&run), 3);
    assert_eq!(c.calls(AGG), calls_of(&run) * 8 * 5);
    eprintln!("cut bodies: faults injected {}", total(&fired(&s)));
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Failed));
    assert!(s.export().await.is_empty(), "a cut body wrote values");
    for m in s.store.list_mappings(&s.tenant).await.unwrap() {
        let st = s.state(&m.id).await;
        assert_eq!(st.last_synced_day, None);
        let e = st.last_error.unwrap().message;
        assert!(e.contains("cut short"), "{e}");
    }
    c.clear_faults();
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    assert_same(&export(&s).await, &want);
}

#[tokio::test]
async fn a_key_revoked_mid_run_leaves_whole_chunks_only_and_a_sync_catches_up() {
    let want = fault_free().await;
    let s = Stack::start().await;
    scenario(&s).await;
    s.app.resync_all(&s.tenant).await.unwrap();
    assert!(matches!(step(&s).await, Processed::Done(_))); // the fan-out
                                                           // Two calls, each for the chunks of one window of every mapping.
    for _ in 0..2 {
        assert!(matches!(step(&s).await, Processed::Done(_)));
    }
    let mappings = s.sim.subscription().app_ids().len();
    let c = s.sim.control();
    let before = c.calls(AGG);
    c.revoke_key(KEY);
    s.drain().await;
    let after = c.calls(AGG) - before;
    eprintln!("revoked key: 403 answered {after} time(s)");
    // The first 403 disconnects the integration; later chunks fail without calling Pendo
    // (at most one more call was already in flight on the other worker).
    assert!(
        (1..=2).contains(&after),
        "{after} calls after the revocation"
    );
    let i = s.app.integration(&s.tenant).await.unwrap();
    match &i.status {
        ConnectionStatus::Disconnected { message } => {
            assert!(message.contains("HTTP 403"), "{message}");
            assert!(message.contains("reconnect"), "{message}");
        }
        other => panic!("still {other:?}"),
    }
    let run = last_run(&s).await;
    let done: Vec<&ChunkRecord> = run
        .chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Done)
        .collect();
    assert_eq!(done.len(), 2 * mappings);
    assert!(run
        .chunks
        .iter()
        .all(|c| matches!(c.status, ChunkStatus::Done | ChunkStatus::Failed)));
    // Nothing half-written: exactly the fault-free values of the two finished chunks.
    let names: std::collections::BTreeMap<MappingId, String> = s
        .store
        .list_mappings(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.metric_name))
        .collect();
    let in_done = |r: &ExportRow| {
        done.iter()
            .any(|c| names[&c.mapping_id] == r.metric && c.from <= r.day && r.day <= c.to)
    };
    let partial: Vec<ExportRow> = want.iter().filter(|r| in_done(r)).cloned().collect();
    assert!(!partial.is_empty());
    // The unfinished re-sync is not shown (the tenant had nothing before it).
    assert!(export(&s).await.is_empty());
    assert_same(&building(&s).await, &partial);
    // A sync while disconnected plans nothing.
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    assert_eq!(last_run(&s).await.id, run.id);

    c.set_key("new-key-1234", true);
    s.app
        .connect(&s.tenant, "new-key-1234", "app.pendo.io")
        .await
        .unwrap();
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    assert_same(&export(&s).await, &want);
}

/// A queue that delivers every message twice, in a shuffled order.
struct TwiceShuffled {
    inner: EmbeddedQueue,
    seed: Mutex<u64>,
    extra: Arc<AtomicU64>,
}

impl TwiceShuffled {
    fn push_all(&self, mut bodies: Vec<String>) -> Result<(), QueueError> {
        let mut seed = self.seed.lock().unwrap();
        // Fisher–Yates with a fixed-seed LCG: reproducible, and not the sent order.
        for i in (1..bodies.len()).rev() {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = ((*seed >> 33) % (i as u64 + 1)) as usize;
            bodies.swap(i, j);
        }
        self.inner.send_raw(&bodies)
    }
}

#[async_trait]
impl Queue for TwiceShuffled {
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError> {
        let bodies = messages
            .iter()
            .flat_map(|m| {
                let b = QueueMessage::Fetch(m.clone()).encode();
                [b.clone(), b]
            })
            .collect();
        self.extra
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.push_all(bodies)
    }

    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError> {
        let b = QueueMessage::Resync(message.clone()).encode();
        self.extra.fetch_add(1, Ordering::Relaxed);
        self.push_all(vec![b.clone(), b])
    }

    async fn send_import(&self, message: &ImportMessage) -> Result<(), QueueError> {
        let b = QueueMessage::Import(message.clone()).encode();
        self.extra.fetch_add(1, Ordering::Relaxed);
        self.push_all(vec![b.clone(), b])
    }

    async fn send_plans(&self, messages: &[PlanMessage]) -> Result<(), QueueError> {
        let bodies = messages
            .iter()
            .flat_map(|m| {
                let b = QueueMessage::Plan(m.clone()).encode();
                [b.clone(), b]
            })
            .collect();
        self.extra
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.push_all(bodies)
    }

    async fn send_run(&self, message: &RunMessage) -> Result<(), QueueError> {
        let b = QueueMessage::Run(message.clone()).encode();
        self.extra.fetch_add(1, Ordering::Relaxed);
        self.push_all(vec![b.clone(), b])
    }

    async fn send_purge(&self, message: &PurgeMessage) -> Result<(), QueueError> {
        let b = QueueMessage::Purge(message.clone()).encode();
        self.extra.fetch_add(1, Ordering::Relaxed);
        self.push_all(vec![b.clone(), b])
    }
}

/// `scenario` plus an end-user mapping that auto-creates users (so duplicates also race the
/// directory).
async fn scenario_with_users(s: &Stack) {
    scenario(s).await;
    s.emails_and_auto_detect().await;
    let f = s.feature(-323232);
    s.mapping(
        MappingKind::Feature {
            feature_id: f,
            minutes_metric: None,
        },
        Target::EndUser,
        "User clicks",
        |m| m.auto_create_users = true,
    )
    .await;
}

/// The directory without its random ids: (company, external id, email), sorted.
async fn users(s: &Stack) -> Vec<(String, Option<String>, Option<String>)> {
    let mut u: Vec<_> = s
        .store
        .list_end_users(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.company_id, u.external_id, u.email))
        .collect();
    u.sort();
    u
}

/// Activity records of the mappings named `Clicks …` (company mappings), which only exist for
/// users that the end-user mapping auto-created earlier in the same run.
fn company_mapping_activity(rows: &[ExportRow]) -> usize {
    rows.iter()
        .filter(|r| r.record == "activity" && r.metric.starts_with("activity of Clicks"))
        .count()
}

#[tokio::test]
async fn every_message_twice_and_out_of_order_reaches_the_same_state() {
    let clean = Stack::start().await;
    scenario_with_users(&clean).await;
    clean.resync().await;
    let (want, want_users) = (export(&clean).await, users(&clean).await);
    assert!(!want_users.is_empty());
    // The company mappings were created first, so their chunks are queued first: they still
    // credit activity to the users the end-user mapping creates, because they wait for it.
    assert!(company_mapping_activity(&want) > 0);

    let extra = Arc::new(AtomicU64::new(0));
    let counter = extra.clone();
    let s = Stack::build(
        sim_config(),
        StackOptions {
            wrap_queue: Some(Box::new(move |q| {
                Arc::new(TwiceShuffled {
                    inner: q,
                    seed: Mutex::new(7),
                    extra: counter,
                })
            })),
            ..Default::default()
        },
    )
    .await;
    scenario_with_users(&s).await;
    let calls = |s: &Stack| s.sim.control().calls(AGG);
    let before = calls(&s);
    s.resync().await;
    assert_eq!(users(&s).await, want_users);
    assert_same(&export(&s).await, &want);
    // Every message arrived twice, yet each message (a chunk, or the chunks sharing a call)
    // called Pendo once, was sent once (the deferred ones by one release) and each chunk
    // counted both of its deliveries.
    let run = last_run(&s).await;
    assert!(run.chunks.iter().any(|c| c.deferred), "the run defers");
    assert_eq!(calls(&s) - before, calls_of(&run));
    // Messages: the Re-sync all's, one per call, the purge of the generation it replaced.
    assert_eq!(
        extra.load(Ordering::Relaxed),
        calls_of(&run) + 2,
        "one duplicate per message sent"
    );
    assert!(
        run.chunks.iter().all(|c| c.attempts == 2 && c.retries == 0),
        "{:?}",
        run.chunks
    );
    assert!(run.chunks.iter().all(|c| c.status == ChunkStatus::Done));
    // A daily run on top, its messages also doubled and shuffled, changes nothing.
    let before = calls(&s);
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    let today = RunId::daily(s.app.now().date_naive());
    let daily = s.app.run(&s.tenant, &today).await.unwrap();
    assert_eq!(calls(&s) - before, calls_of(&daily));
    assert!(daily.chunks.iter().all(|c| c.attempts == 2));
    eprintln!(
        "duplicated and shuffled: {} extra deliveries",
        extra.load(Ordering::Relaxed)
    );
    assert_eq!(users(&s).await, want_users);
    assert_same(&export(&s).await, &want);
}

#[tokio::test]
async fn a_fetch_dropped_mid_chunk_then_redelivered_converges() {
    // A Lambda timeout: the handler's future is dropped while Pendo is still answering.
    let want = fault_free().await;
    let s = Stack::start().await;
    scenario(&s).await;
    s.app.resync_all(&s.tenant).await.unwrap();
    step(&s).await; // the fan-out
    let c = s.sim.control();
    c.add_fault(FaultRule {
        delay_ms: Some(1500),
        ..FaultRule::times(AGG, FaultKind::Delay, 1)
    })
    .unwrap();
    let d = s.queue.receive().unwrap().unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        s.app.process_message(&d.body, false),
    )
    .await;
    assert!(r.is_err(), "the chunk finished before the timeout");
    assert_eq!(c.calls(AGG), 1);
    assert!(s.export().await.is_empty(), "a dropped chunk wrote values");
    // The queue redelivers after the visibility timeout, by when the dropped delivery's hold on
    // the chunk has ended.
    s.clock
        .set(s.now() + chrono::Duration::minutes(CHUNK_LEASE_MINUTES + 1));
    s.queue.nack(&d).unwrap();
    s.drain().await;
    eprintln!("dropped mid-chunk: faults injected {}", total(&fired(&s)));
    assert_same(&export(&s).await, &want);
}

/// Raw rows of older generations still stored (values and activity), read from the file.
fn older_generation_rows(dir: &std::path::Path, t: &TenantId) -> i64 {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite" || e == "db"))
        .expect("the store file");
    let c = rusqlite::Connection::open(file).unwrap();
    let g: i64 = c
        .query_row(
            "SELECT generation FROM integrations WHERE tenant = ?1",
            [t.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    ["metric_values", "activities"]
        .iter()
        .map(|table| {
            c.query_row(
                &format!("SELECT count(*) FROM {table} WHERE tenant = ?1 AND generation <> ?2"),
                rusqlite::params![t.as_str(), g],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
        .sum()
}

#[tokio::test]
async fn resync_all_during_a_daily_run_and_twice_in_a_row_keeps_only_the_newest_generation() {
    let clean = Stack::start().await;
    scenario_with_users(&clean).await;
    clean.resync().await;
    let want = export(&clean).await;
    assert!(company_mapping_activity(&want) > 0);

    let dir = tempfile::tempdir().unwrap();
    let s = Stack::build(
        sim_config(),
        StackOptions {
            store_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .await;
    scenario_with_users(&s).await;
    s.resync().await;
    let g = s.app.integration(&s.tenant).await.unwrap().generation;
    // A daily run whose first chunk is in flight (Pendo slow) when Re-sync all is pressed twice.
    s.app.run_schedule().await.unwrap();
    // The tenant's planning message: the daily run's chunks are queued.
    assert!(matches!(step(&s).await, Processed::Done(_)));
    let c = s.sim.control();
    c.add_fault(FaultRule {
        delay_ms: Some(800),
        ..FaultRule::times(AGG, FaultKind::Delay, 1)
    })
    .unwrap();
    let before = c.calls(AGG);
    let msg = s.queue.receive().unwrap().unwrap();
    let app = s.app.clone();
    let body = msg.body.clone();
    let in_flight = tokio::spawn(async move { app.process_message(&body, false).await });
    while c.calls(AGG) == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.app.resync_all(&s.tenant).await.unwrap();
    s.app.resync_all(&s.tenant).await.unwrap();
    // Its write lands after the generation moved on: refused, the chunk superseded.
    assert_eq!(in_flight.await.unwrap().unwrap(), Processed::Superseded);
    s.queue.ack(&msg).unwrap();
    // One more daily-run message, processed between the two re-syncs' fan-outs.
    assert_eq!(step(&s).await, Processed::Superseded);
    s.drain().await;
    eprintln!(
        "re-sync racing a daily run: faults injected {}",
        total(&fired(&s))
    );

    let i = s.app.integration(&s.tenant).await.unwrap();
    assert_eq!(i.generation, g + 2);
    assert_eq!(older_generation_rows(dir.path(), &s.tenant), 0);
    let mappings = s.store.list_mappings(&s.tenant).await.unwrap();
    assert_eq!(mappings.len(), 4);
    for m in &mappings {
        let st = s.state(&m.id).await;
        assert_eq!(
            (st.generation, st.last_synced_day),
            (g + 2, Some(d("2026-11-04"))),
            "{}",
            m.metric_name
        );
    }
    let metrics: BTreeSet<String> = s
        .export()
        .await
        .into_iter()
        .filter(|r| r.record == "value")
        .map(|r| r.metric)
        .collect();
    assert_eq!(metrics.len(), 4, "{metrics:?}");
    assert_same(&export(&s).await, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_store_handles_creating_the_same_end_user_at_once_make_exactly_one() {
    // Two handles on one file: what two local processes (serve and sync) would be.
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(EmbeddedStore::open_dir(dir.path()).unwrap());
    let b = Arc::new(EmbeddedStore::open_dir(dir.path()).unwrap());
    let t = TenantId::parse("acme-cs").unwrap();
    let input = EndUserInput {
        company_id: "acct-1".into(),
        external_id: Some("visitor-1".into()),
        email: Some("v1@example.com".into()),
        name: None,
        surname: None,
    };
    for round in 0..5 {
        let mut input = input.clone();
        input.external_id = Some(format!("visitor-{round}"));
        input.email = Some(format!("v{round}@example.com"));
        let mut tasks = Vec::new();
        for k in 0..8 {
            let store: Arc<dyn Store> = if k % 2 == 0 { a.clone() } else { b.clone() };
            let (t, input) = (t.clone(), input.clone());
            tasks.push(tokio::spawn(async move {
                store.create_end_user_if_absent(&t, &input).await
            }));
        }
        let mut created = 0;
        let mut ids = BTreeSet::new();
        for task in tasks {
            let (u, c) = task.await.unwrap().unwrap();
            created += usize::from(c);
            ids.insert(u.id);
        }
        assert_eq!((created, ids.len()), (1, 1), "round {round}");
    }
    assert_eq!(a.list_end_users(&t).await.unwrap().len(), 5);
}

#[tokio::test]
async fn two_chunks_creating_the_same_new_end_users_at_once_make_one_each() {
    // Two end-user mappings on the same feature: their chunks see the same new visitors and
    // run concurrently (two workers).
    async fn setup(s: &Stack) {
        s.ny_days(7).await;
        s.add_companies(&[]).await;
        s.emails_and_auto_detect().await;
        let f = s.feature(-323232);
        for name in ["Clicks A", "Clicks B"] {
            s.mapping(
                MappingKind::Feature {
                    feature_id: f.clone(),
                    minutes_metric: None,
                },
                Target::EndUser,
                name,
                |m| m.auto_create_users = true,
            )
            .await;
        }
    }
    let clean = Stack::start().await;
    setup(&clean).await;
    clean.app.resync_all(&clean.tenant).await.unwrap();
    pendo_sync::worker::drain(
        clean.app.clone(),
        clean.queue.clone(),
        1,
        Default::default(),
    )
    .await;
    let want_users = users(&clean).await;
    let s = Stack::start().await;
    setup(&s).await;
    s.resync().await;
    let got = users(&s).await;
    assert!(!got.is_empty());
    let distinct: BTreeSet<_> = got.iter().map(|(c, e, _)| (c, e)).collect();
    assert_eq!(distinct.len(), got.len(), "a user was created twice");
    assert_eq!(got, want_users);
    assert_same(&export(&s).await, &export(&clean).await);
}
