//! The store contract, mapping sentences: a mapping is written, read, listed in creation order
//! and deleted with its state, values and activity. Run against every adapter by
//! `store_contract_tests!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contract::{d, integration, tenant, value};
use super::Store;
use crate::domain::Window;
use crate::domain::*;
use chrono::{TimeZone, Utc};

fn mapping(t: &TenantId, id: &str, metric: &str, created_minute: u32) -> Mapping {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 1, created_minute, 0)
        .single()
        .expect("a valid time");
    Mapping {
        tenant: t.clone(),
        id: MappingId::parse(id).unwrap(),
        source: MappingKind::Feature {
            feature_id: "feat-1".into(),
            minutes_metric: None,
        },
        target: Target::Company,
        metric_name: metric.into(),
        passive: false,
        multi_app: false,
        auto_create_users: false,
        segment_id: None,
        enabled: true,
        rebuild_required: false,
        created_at: at,
        updated_at: at,
    }
}

/// `put_mapping` writes (and rewrites) a mapping, `get_mapping` reads it back as written,
/// `list_mappings` lists a tenant's mappings oldest first (then by id), `delete_mapping`
/// deletes the mapping and its state, returning whether it existed, and leaves its values and
/// activity to `delete_mapping_data` (a purge the worker does); another mapping's data and
/// another tenant's mapping of the same id stay.
pub async fn mappings_are_listed_oldest_first_and_deleted_with_their_state_and_data(s: &dyn Store) {
    let t = tenant("c-mappings");
    let other = tenant("c-mappings-other");
    let i = integration(s, &t).await;
    let late = mapping(&t, "m#late", "Clicks", 30);
    let early = mapping(&t, "m/early", "Views", 10);
    let same_time = mapping(&t, "m#a", "Saves", 30);
    for m in [&late, &early, &same_time] {
        s.put_mapping(m).await.unwrap();
    }
    let elsewhere = mapping(&other, "m#late", "Clicks", 0);
    s.put_mapping(&elsewhere).await.unwrap();
    assert_eq!(
        s.get_mapping(&t, &late.id).await.unwrap(),
        Some(late.clone())
    );
    assert_eq!(
        s.get_mapping(&t, &MappingId::parse("m-none").unwrap())
            .await
            .unwrap(),
        None
    );
    let ids = |ms: Vec<Mapping>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_mappings(&t).await.unwrap()),
        vec![early.id.clone(), same_time.id.clone(), late.id.clone()]
    );
    // A rewrite replaces the stored mapping.
    let renamed = Mapping {
        metric_name: "Clicks 2".into(),
        ..late.clone()
    };
    s.put_mapping(&renamed).await.unwrap();
    assert_eq!(s.get_mapping(&t, &late.id).await.unwrap(), Some(renamed));
    assert_eq!(s.list_mappings(&t).await.unwrap().len(), 3);

    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-02"),
    };
    let act = Activity {
        end_user_id: "acme|x:u1".into(),
        company_id: "acme".into(),
        mapping_id: late.id.clone(),
        label: "Clicks".into(),
        day: d("2026-11-01"),
        events: 2.0,
        minutes: 0.0,
        passive: false,
    };
    s.reset_mapping_state(&t, &late.id, i.generation)
        .await
        .unwrap();
    s.replace_chunk(
        &t,
        i.generation,
        &late.id,
        w,
        &[value("acme", "Clicks", "2026-11-01", 1.0)],
        std::slice::from_ref(&act),
    )
    .await
    .unwrap();
    s.replace_chunk(
        &t,
        i.generation,
        &early.id,
        w,
        &[value("acme", "Views", "2026-11-02", 4.0)],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s.export(Some(&t)).await.unwrap().len(), 3);

    assert!(s.delete_mapping(&t, &late.id).await.unwrap());
    assert_eq!(
        s.export(Some(&t)).await.unwrap().len(),
        3,
        "data purged apart"
    );
    assert_eq!(s.delete_mapping_data(&t, &late.id, &[]).await.unwrap(), 2);
    assert_eq!(s.get_mapping(&t, &late.id).await.unwrap(), None);
    assert_eq!(s.get_mapping_state(&t, &late.id).await.unwrap(), None);
    assert_eq!(
        ids(s.list_mappings(&t).await.unwrap()),
        vec![early.id.clone(), same_time.id.clone()]
    );
    let rows = s.export(Some(&t)).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.metric.as_str(), r.value))
            .collect::<Vec<_>>(),
        vec![("Views", 4.0)]
    );
    assert!(
        !s.delete_mapping(&t, &late.id).await.unwrap(),
        "gone already"
    );
    assert_eq!(
        s.get_mapping(&other, &late.id).await.unwrap(),
        Some(elsewhere)
    );
}
