//! Sync now deletes nothing; Re-sync all leaves exactly `days_to_sync` days; running a window
//! twice changes nothing; a new day is added by the daily run.

use crate::helpers::*;
use chrono::Duration;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::{MappingKind, Target};

async fn stack_with_mapping(days: i64) -> (Stack, pendo_sync::domain::Mapping) {
    let s = Stack::start().await;
    s.settings(SettingsUpdate {
        days_to_sync: Some(days),
        timezone: Some("America/New_York".into()),
        ..Default::default()
    })
    .await;
    s.add_companies(&[]).await;
    let f = s.feature(-323232);
    let m = s
        .mapping(
            MappingKind::Feature {
                feature_id: f,
                minutes_metric: Some("Minutes".into()),
            },
            Target::Company,
            "Clicks",
            |_| {},
        )
        .await;
    (s, m)
}

#[tokio::test]
async fn running_the_same_windows_again_changes_nothing() {
    let (s, m) = stack_with_mapping(14).await;
    s.resync().await;
    let first = s.export().await;
    assert!(!first.is_empty());
    // Sync now, the daily schedule, and a rebuild of the same days: identical state.
    s.app.sync_now(&s.tenant, &m.id).await.unwrap();
    s.drain().await;
    assert_eq!(s.export().await, first);
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    assert_eq!(s.export().await, first);
    s.app.rebuild_mapping(&s.tenant, &m.id).await.unwrap();
    s.drain().await;
    assert_eq!(s.export().await, first);
}

#[tokio::test]
async fn sync_now_deletes_nothing_and_adds_the_new_day() {
    let (s, m) = stack_with_mapping(10).await;
    s.resync().await;
    let before = s.values().await;
    // A day later (both clocks), Sync now adds Nov 5 and keeps every older value.
    let later = s.now() + Duration::days(1);
    s.clock.set(later);
    s.sim.control().set_now(later);
    s.app.sync_now(&s.tenant, &m.id).await.unwrap();
    s.drain().await;
    let after = s.values().await;
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k:?} lost or changed");
    }
    assert!(after.keys().any(|k| k.3 == d("2026-11-05")));
    assert!(after.len() > before.len());
    let st = s.state(&m.id).await;
    assert_eq!(st.last_synced_day, Some(d("2026-11-05")));
}

#[tokio::test]
async fn resync_all_leaves_exactly_days_to_sync_days() {
    let (s, _) = stack_with_mapping(20).await;
    s.resync().await;
    let days =
        |v: &std::collections::BTreeMap<(String, String, String, chrono::NaiveDate), f64>| {
            v.keys()
                .map(|k| k.3)
                .collect::<std::collections::BTreeSet<_>>()
        };
    assert_eq!(
        days(&s.values().await).iter().next().copied(),
        Some(d("2026-10-16"))
    );
    s.app
        .update_settings(
            &s.tenant,
            &SettingsUpdate {
                days_to_sync: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Values were made under the old setting: a re-sync is asked (before any sync it is not:
    // api.rs).
    assert!(s.app.integration(&s.tenant).await.unwrap().resync_required);
    s.resync().await;
    assert!(!s.app.integration(&s.tenant).await.unwrap().resync_required);
    let got = days(&s.values().await);
    let want: std::collections::BTreeSet<_> = (0..5)
        .map(|i| d("2026-10-31") + Duration::days(i))
        .collect();
    assert_eq!(got, want);
    // Nothing of the older generation is left anywhere in the store.
    let rows = s.export().await;
    assert!(rows.iter().all(|r| r.day >= d("2026-10-31")));
}

#[tokio::test]
async fn resync_all_rebuilds_an_edited_mapping_and_clears_its_rebuild_flag() {
    let (s, m) = stack_with_mapping(3).await;
    s.resync().await;
    let mut input = pendo_sync::domain::MappingInput {
        source: m.source.clone(),
        target: m.target,
        metric_name: "Renamed clicks".into(),
        passive: m.passive,
        multi_app: m.multi_app,
        auto_create_users: m.auto_create_users,
        segment_id: m.segment_id.clone(),
        enabled: m.enabled,
    };
    let edited = s
        .app
        .update_mapping(&s.tenant, &m.id, &input)
        .await
        .unwrap();
    assert!(edited.rebuild_required);
    // The daily run leaves the edited mapping out until its rebuild: its values stay as made.
    let before = s.export().await;
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    let today = pendo_sync::domain::RunId::daily(s.app.now().date_naive());
    let daily = s.app.run(&s.tenant, &today).await.unwrap();
    assert!(daily.chunks.iter().all(|c| c.mapping_id != m.id));
    assert_eq!(s.export().await, before);
    s.resync().await;
    let after = s.app.mapping(&s.tenant, &m.id).await.unwrap();
    assert!(!after.rebuild_required, "Re-sync all rebuilt it");
    let metrics: std::collections::BTreeSet<String> = s
        .values()
        .await
        .into_keys()
        .map(|(_, metric, _, _)| metric)
        .collect();
    assert!(metrics.contains("Renamed clicks"), "{metrics:?}");
    assert!(!metrics.contains("Clicks"), "{metrics:?}");
    // An edit after that marks it again.
    input.metric_name = "Clicks again".into();
    let edited = s
        .app
        .update_mapping(&s.tenant, &m.id, &input)
        .await
        .unwrap();
    assert!(edited.rebuild_required);
}

/// API Gateway gives a request 29 s, and a request cut off there must have changed nothing
/// half-way: a rebuild's request only checks the mapping's references with Pendo (each call
/// bounded) and queues the run; the purge and the planning happen in the worker.
#[tokio::test]
async fn a_rebuild_request_purges_nothing_and_answers_while_pendo_is_slow() {
    use pendo_sim::{FaultKind, FaultRule};
    let (s, m) = stack_with_mapping(7).await;
    s.resync().await;
    let before = s.export().await;
    assert!(!before.is_empty());
    // Pendo's lists answer after 60 s.
    let c = s.sim.control();
    c.add_fault(FaultRule {
        delay_ms: Some(60_000),
        ..FaultRule::times("/api/v1/feature", FaultKind::Delay, 100)
    })
    .unwrap();
    let started = std::time::Instant::now();
    let run = s.app.rebuild_mapping(&s.tenant, &m.id).await.unwrap();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(12), "{took:?}");
    assert_eq!(s.export().await, before, "nothing purged by the request");
    let queued = s.app.run(&s.tenant, &run).await.unwrap();
    assert!(!queued.planned && queued.chunks.is_empty(), "{queued:?}");
    let status = s.app.mapping_status(&m).await.unwrap().unwrap();
    assert_eq!(status.last_run.unwrap().run_id, run.to_string());
    // The worker purges and re-fetches: the same values, the run done.
    c.clear_faults();
    s.drain().await;
    assert_eq!(s.export().await, before);
    let done = s.app.run(&s.tenant, &run).await.unwrap();
    assert!(done.planned && !done.chunks.is_empty());
    assert!(done
        .chunks
        .iter()
        .all(|c| c.status == pendo_sync::domain::ChunkStatus::Done));
    assert!(
        !s.app
            .mapping(&s.tenant, &m.id)
            .await
            .unwrap()
            .rebuild_required
    );
}
