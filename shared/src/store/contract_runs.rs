//! The store contract, run sentences: chunks' leases and outcomes, the run's counters and
//! flags. Run against every adapter by `store_contract_tests!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contract::{d, tenant};
use super::{Store, StoreError};
use crate::domain::*;
use chrono::{TimeZone, Utc};

pub async fn runs_record_chunk_outcomes(s: &dyn Store) {
    let t = tenant("c-runs");
    let m = MappingId::parse("m1").unwrap_or_else(|e| panic!("{e}"));
    let mut run = SyncRun::new(
        t.clone(),
        RunId::parse("r1").unwrap(),
        RunKind::Daily,
        1,
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
            .single()
            .unwrap(),
    );
    run.planned = true;
    run.chunks = vec![ChunkRecord {
        deferred: true,
        share: Some(0),
        ..ChunkRecord::pending(m.clone(), d("2026-11-01"), d("2026-11-07"))
    }];
    s.put_run(&run).await.unwrap();
    let stats = ChunkStats {
        rows_read: 5,
        ..Default::default()
    };
    let at = |m: u32| {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, m, 0)
            .single()
            .unwrap()
    };
    let outcome = |status, stats: &ChunkStats, error: Option<&str>, minute| ChunkOutcome {
        status,
        stats: stats.clone(),
        error: error.map(str::to_string),
        at: at(minute),
    };
    let get = || async {
        s.get_run(&t, &run.id)
            .await
            .unwrap()
            .unwrap_or_else(|| unreachable!())
    };
    let r = get().await;
    assert!(r.chunks[0].deferred, "the chunk's order is kept");
    assert_eq!(r.chunks[0].share, Some(0), "and the call it shares");
    let g = r.generation;
    assert_eq!(r.state(at(30), g), RunState::Running);
    assert_eq!(
        r.state(at(0) + chrono::Duration::hours(2), g),
        RunState::Interrupted
    );
    // A Re-sync all moved the tenant to the next generation: over at once, superseded.
    assert_eq!(r.state(at(30), g + 1), RunState::Superseded);
    // A delivery is counted (attempts, time), takes the chunk until its lease ends, and the
    // chunk comes back as stored.
    let deliveries = std::sync::atomic::AtomicU32::new(0);
    let start = |from: u32, until: u32| {
        let n = deliveries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (s, t, run) = (s, t.clone(), run.id.clone());
        async move {
            s.begin_chunk(&t, &run, 0, &format!("delivery-{n}"), at(from), at(until))
                .await
        }
    };
    let c = start(4, 19).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(c.taken);
    assert_eq!(
        (c.chunk.status, c.chunk.attempts, c.chunk.updated_at),
        (ChunkStatus::Pending, 1, Some(at(4)))
    );
    assert_eq!(c.chunk.leased_until, Some(at(19)));
    // The same delivery's call again (DynamoDB: the write applied, its answer lost, the SDK
    // sent it again) is its own: counted once, still taken.
    let again = s
        .begin_chunk(&t, &run.id, 0, "delivery-0", at(4), at(19))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.taken, "a delivery's resent take is still its own");
    assert_eq!(again.chunk.attempts, 1);
    // Another delivery meanwhile is counted but does not take it; its call again counts
    // nothing more.
    let c = start(4, 19).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.taken);
    assert_eq!((c.chunk.attempts, c.chunk.leased_until), (2, Some(at(19))));
    let again = s
        .begin_chunk(&t, &run.id, 0, "delivery-1", at(4), at(19))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.taken, again.chunk.attempts), (false, 2));
    // A delivery that does not hold the chunk records no retry.
    s.retry_chunk(&t, &run.id, 0, "delivery-1", "retrying: 503", at(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(get().await.chunks[0].retries, 0);
    // The holder's retry is recorded (error, retries, time), once however often it is sent,
    // and the chunk stays pending.
    for _ in 0..2 {
        s.retry_chunk(&t, &run.id, 0, "delivery-0", "retrying: 503", at(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let r = get().await;
    assert_eq!(r.chunks[0].status, ChunkStatus::Pending);
    assert_eq!(r.chunks[0].error.as_deref(), Some("retrying: 503"));
    assert_eq!((r.chunks[0].attempts, r.chunks[0].retries), (2, 1));
    assert_eq!(r.chunks[0].updated_at, Some(at(5)));
    assert_eq!(r.chunks[0].leased_until, None, "a retry ends the lease");
    assert_eq!(r.last_progress(), at(5));
    // So the redelivery takes it at once.
    assert!(start(6, 21).await.is_ok_and(|c| c.taken));
    let p = s
        .finish_chunk(&t, &run.id, 0, &outcome(ChunkStatus::Done, &stats, None, 7))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.applied);
    assert_eq!(
        (p.total, p.open, p.mapping_open, p.mapping_not_done),
        (1, 0, 0, 0)
    );
    assert_eq!(p.mapping_end, Some(d("2026-11-07")));
    let r = get().await;
    assert!(r.is_finished());
    assert_eq!(
        r.state(at(0) + chrono::Duration::hours(5), r.generation),
        RunState::Finished
    );
    // Every chunk was done before the next generation: it stays a finished run.
    assert_eq!(
        r.state(at(0) + chrono::Duration::hours(5), r.generation + 1),
        RunState::Finished
    );
    assert_eq!(r.chunks[0].error, None);
    assert_eq!(r.chunks[0].leased_until, None);
    // A redelivered chunk that fails afterwards does not undo "done" nor count again.
    let c = start(9, 24).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.taken);
    assert_eq!(
        c.chunk.status,
        ChunkStatus::Done,
        "a duplicate sees the chunk over"
    );
    let p = s
        .finish_chunk(
            &t,
            &run.id,
            0,
            &outcome(ChunkStatus::Failed, &ChunkStats::default(), Some("x"), 9),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.applied);
    assert_eq!((p.open, p.mapping_not_done), (0, 0));
    let r = get().await;
    assert_eq!(r.chunks[0].status, ChunkStatus::Done);
    assert_eq!(r.chunks[0].attempts, 4);
    assert_eq!(r.chunks[0].updated_at, Some(at(9)));
    assert!(r.chunks[0].deferred);
    assert_eq!(r.totals().rows_read, 5);
    assert!(matches!(
        s.begin_chunk(&t, &run.id, 9, "delivery-x", at(9), at(24))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // A lease that ended lets the next delivery take the chunk over (its holder died).
    let mut other = run.clone();
    other.id = RunId::parse("r1b").unwrap_or_else(|e| panic!("{e}"));
    other.chunks[0] = ChunkRecord::pending(m.clone(), d("2026-11-01"), d("2026-11-07"));
    s.put_run(&other).await.unwrap();
    let first = s
        .begin_chunk(&t, &other.id, 0, "o-0", at(0), at(15))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = s
        .begin_chunk(&t, &other.id, 0, "o-1", at(14), at(29))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let over = s
        .begin_chunk(&t, &other.id, 0, "o-2", at(15), at(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.taken, held.taken, over.taken), (true, false, true));
    assert_eq!(over.chunk.leased_until, Some(at(30)));
    assert!(matches!(
        s.finish_chunk(&t, &run.id, 9, &outcome(ChunkStatus::Done, &stats, None, 9))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.list_runs(&t, 10).await.unwrap().len(), 2);
}

/// A run's counters follow every outcome exactly (open, open creating chunks, per mapping), the
/// release is taken by one chunk only (and again by that chunk's redelivery), the queued flag
/// and the planning sources are kept.
pub async fn run_counters_and_flags_are_exact(s: &dyn Store) {
    let t = tenant("c-run-counters");
    let (a, b) = (
        MappingId::parse("users").unwrap(),
        MappingId::parse("company").unwrap(),
    );
    let mut run = SyncRun::new(
        t.clone(),
        RunId::parse("r2").unwrap(),
        RunKind::ResyncAll,
        4,
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
            .single()
            .unwrap(),
    );
    run.planned = true;
    for (m, from, to, deferred) in [
        (&a, "2026-11-01", "2026-11-07", false),
        (&a, "2026-11-08", "2026-11-10", false),
        (&b, "2026-11-01", "2026-11-07", true),
        (&b, "2026-11-08", "2026-11-10", true),
    ] {
        run.chunks.push(ChunkRecord {
            deferred,
            ..ChunkRecord::pending(m.clone(), d(from), d(to))
        });
    }
    run.sources.insert(
        b.clone(),
        serde_json::json!({"id": "rep-1", "name": "Weekly"}),
    );
    s.put_run(&run).await.unwrap_or_else(|e| panic!("{e}"));
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 1, 0, 0)
        .single()
        .unwrap();
    let done = |st: ChunkStatus| ChunkOutcome {
        status: st,
        stats: ChunkStats::default(),
        error: None,
        at,
    };
    let p = s
        .run_progress(&t, &run.id, &b)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            p.total,
            p.open,
            p.creators_open,
            p.deferred,
            p.mapping_open,
            p.queued
        ),
        (4, 4, 2, 2, 2, false)
    );
    assert_eq!(p.release, Release::Waiting);
    assert_eq!(p.mapping_end, Some(d("2026-11-10")));
    let p = s
        .finish_chunk(&t, &run.id, 1, &done(ChunkStatus::Done))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (p.applied, p.open, p.creators_open, p.mapping_open),
        (true, 3, 1, 1)
    );
    let p = s
        .finish_chunk(&t, &run.id, 0, &done(ChunkStatus::Failed))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            p.applied,
            p.open,
            p.creators_open,
            p.mapping_open,
            p.mapping_not_done
        ),
        (true, 2, 0, 0, 1)
    );
    // The release: chunk 0 takes it, chunk 1 cannot, chunk 0's redelivery can again.
    let claim = |by| s.set_run_flag(&t, &run.id, RunFlag::ClaimRelease { by });
    assert!(claim(0).await.unwrap());
    assert!(!claim(1).await.unwrap_or(true));
    assert!(claim(0).await.unwrap());
    assert!(s
        .set_run_flag(&t, &run.id, RunFlag::Released)
        .await
        .unwrap());
    assert!(
        !claim(0).await.unwrap_or(true),
        "released: nobody claims again"
    );
    // The planning hold: one delivery holds it until it ends; the holder's claim sent again
    // (DynamoDB: applied, the answer lost) is still its own; another delivery meanwhile is
    // refused; after the end (or once ended), anyone takes it.
    let at = |m: i64| run.started_at + chrono::Duration::minutes(m);
    let plan = |by: u128, now: i64| {
        s.set_run_flag(
            &t,
            &run.id,
            RunFlag::ClaimPlanning {
                at: at(now),
                until: at(now + 30),
                by,
            },
        )
    };
    assert!(plan(1, 0).await.unwrap());
    assert!(plan(1, 0).await.unwrap(), "the holder's claim again");
    assert!(!plan(2, 5).await.unwrap(), "another delivery meanwhile");
    assert!(plan(2, 31).await.unwrap(), "after the hold ended");
    assert!(s
        .set_run_flag(&t, &run.id, RunFlag::EndPlanning)
        .await
        .unwrap());
    assert!(plan(3, 32).await.unwrap(), "an ended hold");
    assert!(s.set_run_flag(&t, &run.id, RunFlag::Queued).await.unwrap());
    let p = s
        .finish_chunk(&t, &run.id, 2, &done(ChunkStatus::Superseded))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            p.open,
            p.creators_open,
            p.mapping_open,
            p.mapping_not_done,
            p.queued
        ),
        (1, 0, 1, 1, true)
    );
    assert_eq!(p.release, Release::Released);
    let p = s
        .finish_chunk(&t, &run.id, 3, &done(ChunkStatus::Done))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((p.open, p.mapping_open), (0, 0));
    let r = s
        .get_run(&t, &run.id)
        .await
        .unwrap()
        .expect("the run just written");
    assert!(r.is_finished());
    assert!(r.queued);
    assert_eq!(r.release, Release::Released);
    assert_eq!(
        s.run_source(&t, &run.id, &b).await.unwrap(),
        Some(serde_json::json!({"id": "rep-1", "name": "Weekly"}))
    );
    assert_eq!(s.run_source(&t, &run.id, &a).await.unwrap(), None);
    assert!(matches!(
        s.set_run_flag(
            &t,
            &RunId::parse("nope").unwrap(),
            RunFlag::ClaimRelease { by: 0 }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn a_run_is_created_once(s: &dyn Store) {
    let t = tenant("c-create");
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 2, 0, 0)
        .single()
        .unwrap();
    let daily = RunId::daily(d("2026-11-20"));
    let run = SyncRun::new(t.clone(), daily.clone(), RunKind::Daily, 1, at);
    assert!(s.create_run(&run).await.unwrap());
    // Planned meanwhile: a second creation changes nothing.
    let mut planned = run.clone();
    planned.planned = true;
    planned.chunks = vec![ChunkRecord::pending(
        MappingId::parse("m1").unwrap(),
        d("2026-11-17"),
        d("2026-11-19"),
    )];
    s.put_run(&planned).await.unwrap();
    assert!(!s.create_run(&run).await.unwrap());
    let stored = s.get_run(&t, &daily).await.unwrap().unwrap();
    assert!(stored.planned);
    assert_eq!(stored.chunks.len(), 1);
    assert_eq!(s.list_runs(&t, 10).await.unwrap().len(), 1);
    // A run with chunks is never "created".
    let other = SyncRun {
        id: RunId::daily(d("2026-11-21")),
        ..planned
    };
    assert!(matches!(
        s.create_run(&other).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.get_run(&t, &other.id).await.unwrap().is_none());
}
