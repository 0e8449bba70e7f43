//! The store contract, continued: what a mapping's status is read from. Each test is a
//! sentence of the port's docs (`set_last_run`, `advance_cursor`'s success, `mapping_run`, and
//! `finish_chunk` keeping each mapping's counters), run against every adapter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::Store;
use crate::domain::mapping::LastError;
use crate::domain::*;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 2, minute, 0).unwrap()
}

/// `set_last_run` points at the latest planned run; `advance_cursor` with a success records
/// that run and clears the last error; without one, both stay.
pub async fn a_mapping_records_its_last_run_and_its_last_successful_run(s: &dyn Store) {
    let t = TenantId::parse("c-status").unwrap();
    let m = MappingId::parse("m1").unwrap();
    let (r1, r2) = (RunId::parse("r1").unwrap(), RunId::parse("r2").unwrap());
    // Nothing to annotate before the mapping has a state.
    s.set_last_run(&t, &m, &r1).await.unwrap();
    assert_eq!(s.get_mapping_state(&t, &m).await.unwrap(), None);
    s.reset_mapping_state(&t, &m, 1).await.unwrap();
    s.set_last_run(&t, &m, &r1).await.unwrap();
    s.advance_cursor(&t, &m, 1, d("2026-11-10"), Some(&r1))
        .await
        .unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap().unwrap();
    assert_eq!(
        (st.last_run.clone(), st.last_successful_run.clone()),
        (Some(r1.clone()), Some(r1.clone()))
    );
    // The next run fails part-way: it is the last run, the last success stays, and so does
    // its error; the cursor moves to the end of its done chunks.
    s.set_last_run(&t, &m, &r2).await.unwrap();
    let boom = LastError {
        at: at(3),
        message: "boom".into(),
    };
    s.set_mapping_error(&t, &m, Some(boom.clone()))
        .await
        .unwrap();
    s.advance_cursor(&t, &m, 1, d("2026-11-12"), None)
        .await
        .unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap().unwrap();
    assert_eq!(
        st,
        MappingState {
            generation: 1,
            last_synced_day: Some(d("2026-11-12")),
            synced_from: None,
            last_run: Some(r2.clone()),
            last_successful_run: Some(r1.clone()),
            last_error: Some(boom),
            previous: None,
        }
    );
    // A success that moves nothing (the cursor is ahead) still records the run and clears
    // the error.
    s.advance_cursor(&t, &m, 1, d("2026-11-11"), Some(&r2))
        .await
        .unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap().unwrap();
    assert_eq!(
        (
            st.last_synced_day,
            st.last_successful_run,
            st.last_error.is_none()
        ),
        (Some(d("2026-11-12")), Some(r2.clone()), true)
    );
}

fn stats(rows: u64, skipped: SkippedRows) -> ChunkStats {
    ChunkStats {
        rows_read: rows,
        values_written: rows * 2,
        activities_written: rows,
        users_created: 1,
        rows_skipped: skipped.total(),
        skipped,
    }
}

/// `finish_chunk` adds each final outcome to its mapping's counters once (a duplicate outcome
/// adds nothing); `mapping_run` reads them with the run's header, whatever the run's size.
pub async fn each_outcome_adds_to_its_mappings_counters_exactly_once(s: &dyn Store) {
    let t = TenantId::parse("c-status-runs").unwrap();
    let (a, b, gone) = (
        MappingId::parse("a").unwrap(),
        MappingId::parse("b").unwrap(),
        MappingId::parse("gone").unwrap(),
    );
    let mut run = SyncRun::new(
        t.clone(),
        RunId::parse("r1").unwrap(),
        RunKind::SyncNow {
            mapping_id: a.clone(),
        },
        1,
        at(0),
    );
    run.planned = true;
    run.chunks = vec![
        ChunkRecord::pending(a.clone(), d("2026-11-01"), d("2026-11-07")),
        ChunkRecord::pending(b.clone(), d("2026-11-01"), d("2026-11-07")),
        ChunkRecord::pending(a.clone(), d("2026-11-08"), d("2026-11-14")),
        ChunkRecord::pending(a.clone(), d("2026-11-15"), d("2026-11-16")),
    ];
    run.left_out
        .insert(gone.clone(), "feature f9 is gone".into());
    s.put_run(&run).await.unwrap();
    let read = |m: MappingId| {
        let run_id = run.id.clone();
        let t = t.clone();
        async move { s.mapping_run(&t, &run_id, &m).await.unwrap().unwrap() }
    };
    let fresh = read(a.clone()).await;
    let header = SyncRun {
        chunks: Vec::new(),
        ..run.clone()
    };
    assert_eq!(
        fresh,
        MappingRun {
            run: header.clone(),
            counters: MappingRunCounters {
                chunks: 3,
                open: 3,
                ..Default::default()
            }
        }
    );
    let outcome = |status, st: ChunkStats, error: Option<&str>, minute| ChunkOutcome {
        status,
        stats: st,
        error: error.map(str::to_string),
        at: at(minute),
    };
    let w = SkippedRows {
        not_in_directory: 2,
        end_user_unmatched: 1,
        ..Default::default()
    };
    let done = outcome(ChunkStatus::Done, stats(10, w.clone()), None, 4);
    s.finish_chunk(&t, &run.id, 0, &done).await.unwrap();
    // Its duplicate adds nothing.
    let p = s.finish_chunk(&t, &run.id, 0, &done).await.unwrap();
    assert!(!p.applied);
    let failed = outcome(
        ChunkStatus::Failed,
        ChunkStats::default(),
        Some("Pendo refused"),
        7,
    );
    s.finish_chunk(&t, &run.id, 2, &failed).await.unwrap();
    s.finish_chunk(
        &t,
        &run.id,
        1,
        &outcome(ChunkStatus::Done, stats(5, SkippedRows::default()), None, 6),
    )
    .await
    .unwrap();
    let got = read(a.clone()).await;
    assert_eq!(
        got.counters,
        MappingRunCounters {
            chunks: 3,
            open: 1,
            failed: 1,
            not_done: 1,
            stats: stats(10, w.clone()),
            error: Some("Pendo refused".into()),
            last_at: Some(at(7)),
        }
    );
    assert_eq!(got.run, header);
    s.finish_chunk(
        &t,
        &run.id,
        3,
        &outcome(ChunkStatus::Superseded, ChunkStats::default(), None, 9),
    )
    .await
    .unwrap();
    let got = read(a.clone()).await;
    assert_eq!(
        (
            got.counters.open,
            got.counters.not_done,
            got.counters.last_at
        ),
        (0, 2, Some(at(9)))
    );
    assert_eq!(got.counters.error.as_deref(), Some("Pendo refused"));
    let other = read(b.clone()).await.counters;
    assert_eq!(
        (other.chunks, other.open, other.stats.rows_read, other.error),
        (1, 0, 5, None)
    );
    // A mapping the run left out has no counters; the header says why.
    let left = read(gone.clone()).await;
    assert_eq!(left.counters, MappingRunCounters::default());
    assert_eq!(
        left.run.left_out.get(&gone).map(String::as_str),
        Some("feature f9 is gone")
    );
    assert_eq!(
        s.mapping_run(&t, &RunId::parse("nope").unwrap(), &a)
            .await
            .unwrap(),
        None
    );
    // Another tenant reads nothing of it.
    let other_tenant = TenantId::parse("c-status-other").unwrap();
    assert_eq!(
        s.mapping_run(&other_tenant, &run.id, &a).await.unwrap(),
        None
    );
}
