//! The store contract: one suite every adapter runs. Each function is one sentence of the
//! port's `# Errors`/behaviour docs made executable, on a store of its own; the sentences are
//! here and in `contract_*.rs`, and [`store_contract_tests!`](crate::store_contract_tests)
//! makes each one a test of an adapter (the embedded one in `store/embedded`, DynamoDB's in
//! `tests/e2e/tests/it/aws_local.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{ActivityOf, Store, StoreError};
use crate::domain::mapping::LastError;
use crate::domain::Window;
use crate::domain::*;
use chrono::{NaiveDate, TimeZone, Utc};

/// One `#[tokio::test]` per sentence of the store contract, each on a fresh store made by
/// `$make` (an expression evaluated inside the async test, so it may `.await`; a store that
/// cannot be made must panic saying why). Invoke it inside a module of its own:
/// `mod contract { pendo_sync::store_contract_tests!(make_store().await); }`.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@each $make;
            contract::integration_writes_are_optimistic,
            contract::cursor_only_moves_forward_within_its_generation,
            contract::replace_chunk_replaces_exactly_the_window,
            contract::stale_generations_write_nothing_and_are_purged,
            contract::a_rebuilt_mapping_writes_and_shows_a_generation_of_its_own,
            contract::tenants_never_see_each_other,
            contract::separators_in_ids_never_confuse_keys,
            contract::imports_are_written_with_a_version_and_listed_newest_first,
            contract::unmatched_entries_are_replaced_per_day_and_generation,
            contract_mappings::mappings_are_listed_oldest_first_and_deleted_with_their_state_and_data,
            contract_records::replace_chunk_from_writes_what_replace_chunk_would,
            contract_directory::end_users_are_created_once_and_never_overwritten,
            contract_directory::directory_upserts_match_on_external_id_and_never_take_an_email,
            contract_directory::a_directory_write_keeps_what_it_leaves_out_and_clears_what_it_blanks,
            contract_runs::runs_record_chunk_outcomes,
            contract_runs::run_counters_and_flags_are_exact,
            contract_runs::a_run_is_created_once,
            contract_status::a_mapping_records_its_last_run_and_its_last_successful_run,
            contract_status::each_outcome_adds_to_its_mappings_counters_exactly_once,
            contract_reads::activity_reads_are_newest_first_per_end_user_and_company,
            contract_reads::series_and_metrics_read_every_app_of_the_current_generation,
            contract_reads::the_directory_stamp_changes_with_every_directory_write,
            contract_budget::a_budget_grants_its_burst_then_waits_without_writing,
            contract_budget::concurrent_takes_never_spend_one_token_twice,
            contract_budget::a_429_stops_that_subscription_only,
            contract_budget::a_budget_written_at_a_stale_version_is_a_conflict,
        );
    };
    (@each $make:expr; $($module:ident :: $sentence:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $sentence() {
                let store = $make;
                $crate::store::$module::$sentence(&store).await;
            }
        )*
    };
}

pub(crate) fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

pub(crate) fn value(obj: &str, metric: &str, day: &str, v: f64) -> MetricValue {
    MetricValue {
        object: ObjectRef {
            kind: Target::Company,
            id: obj.into(),
        },
        metric: metric.into(),
        app: String::new(),
        day: d(day),
        value: v,
    }
}

pub(crate) async fn integration(s: &dyn Store, t: &TenantId) -> Integration {
    let i = Integration::new(t.clone());
    assert_eq!(s.put_integration(&i).await.unwrap(), 1);
    s.get_integration(t)
        .await
        .unwrap()
        .expect("the integration just written")
}

pub async fn unmatched_entries_are_replaced_per_day_and_generation(s: &dyn Store) {
    let t = tenant("c-unmatched");
    let m = MappingId::parse("m#1/x").unwrap();
    let other = MappingId::parse("m-2").unwrap();
    let e = |reason, id: Option<&str>, day: &str, rows, value| UnmatchedEntry {
        reason,
        identity: id.map(str::to_string),
        day: d(day),
        rows,
        value,
    };
    use UnmatchedReason::{CompanyNotInDirectory as Company, NoCompanyId as NoId};
    let w = |from: &str, to: &str| Window {
        from: d(from),
        to: d(to),
    };
    let first = vec![
        e(Company, Some("acct#9"), "2026-11-01", 2, 5.0),
        e(Company, Some("acct#9"), "2026-11-03", 1, 1.5),
        e(Company, None, "2026-11-02", 7, 7.0),
        e(NoId, Some("v1"), "2026-11-02", 1, 0.0),
    ];
    s.replace_unmatched(&t, &m, 1, w("2026-11-01", "2026-11-07"), &first)
        .await
        .unwrap();
    s.replace_unmatched(&t, &other, 1, w("2026-11-01", "2026-11-07"), &first[..1])
        .await
        .unwrap();
    let mut want = first.clone();
    crate::domain::unmatched::sort_entries(&mut want);
    assert_eq!(s.unmatched_of(&t, &m, 1).await.unwrap(), want);
    // A re-fetch of 11-02..11-03 replaces those days only: 11-01 stays, 11-03 is gone.
    let again = vec![e(Company, Some("acct-7"), "2026-11-02", 3, 3.0)];
    s.replace_unmatched(&t, &m, 1, w("2026-11-02", "2026-11-03"), &again)
        .await
        .unwrap();
    assert_eq!(
        s.unmatched_of(&t, &m, 1).await.unwrap(),
        vec![
            e(Company, Some("acct#9"), "2026-11-01", 2, 5.0),
            e(Company, Some("acct-7"), "2026-11-02", 3, 3.0),
        ]
    );
    // The same replace twice leaves the same.
    s.replace_unmatched(&t, &m, 1, w("2026-11-02", "2026-11-03"), &again)
        .await
        .unwrap();
    assert_eq!(s.unmatched_of(&t, &m, 1).await.unwrap().len(), 2);
    // A newer generation starts empty and drops the older one's entries.
    s.replace_unmatched(&t, &m, 2, w("2026-11-05", "2026-11-05"), &[])
        .await
        .unwrap();
    assert!(s.unmatched_of(&t, &m, 2).await.unwrap().is_empty());
    assert!(s.unmatched_of(&t, &m, 1).await.unwrap().is_empty());
    assert_eq!(s.unmatched_of(&t, &other, 1).await.unwrap().len(), 1);
    assert!(s
        .unmatched_of(&tenant("c-unmatched-other"), &other, 1)
        .await
        .unwrap()
        .is_empty());
    s.delete_unmatched(&t, &other).await.unwrap();
    assert!(s.unmatched_of(&t, &other, 1).await.unwrap().is_empty());
}

pub async fn imports_are_written_with_a_version_and_listed_newest_first(s: &dyn Store) {
    let t = tenant("c-imports");
    let options = ImportOptions {
        companies: true,
        end_users: true,
        company_name_field: None,
        page_rows: 10,
    };
    let at = |m| Utc.with_ymd_and_hms(2026, 11, 1, 10, m, 0).unwrap();
    let first = DirectoryImport::new(t.clone(), options.clone(), at(0));
    let second = DirectoryImport::new(t.clone(), options, at(5));
    assert_eq!(s.put_import(&first).await.unwrap(), 1);
    assert_eq!(s.put_import(&second).await.unwrap(), 1);
    // A second writer from version 0 loses; so does one from an old version.
    assert!(matches!(
        s.put_import(&first).await,
        Err(StoreError::Conflict(_))
    ));
    let mut stored = s.get_import(&t, &first.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    stored.advance(10, Some("acct-0010".into()), at(1));
    assert_eq!(s.put_import(&stored).await.unwrap(), 2);
    assert!(matches!(
        s.put_import(&stored).await,
        Err(StoreError::Conflict(_))
    ));
    let read = s.get_import(&t, &first.id).await.unwrap().unwrap();
    assert_eq!(
        read,
        DirectoryImport {
            version: 2,
            ..stored
        }
    );
    let listed: Vec<ImportId> = s
        .list_imports(&t, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![second.id.clone(), first.id.clone()]);
    assert_eq!(s.list_imports(&t, 1).await.unwrap().len(), 1);
    let other = tenant("c-imports-other");
    assert!(s.get_import(&other, &first.id).await.unwrap().is_none());
    assert!(s.list_imports(&other, 10).await.unwrap().is_empty());
}

pub async fn integration_writes_are_optimistic(s: &dyn Store) {
    let t = tenant("c-opt");
    let i = integration(s, &t).await;
    assert_eq!(i.version, 1);
    // A writer holding version 0 loses.
    let stale = Integration {
        version: 0,
        ..i.clone()
    };
    assert!(matches!(
        s.put_integration(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.put_integration(&i).await.unwrap(), 2);
    assert!(s.list_tenants().await.unwrap().contains(&t));
}

pub async fn cursor_only_moves_forward_within_its_generation(s: &dyn Store) {
    let t = tenant("c-cursor");
    let m = MappingId::parse("m1").unwrap();
    let run = RunId::parse("r1").unwrap();
    s.reset_mapping_state(&t, &m, 1).await.unwrap();
    assert!(s
        .advance_cursor(&t, &m, 1, d("2026-11-10"), Some(&run))
        .await
        .is_ok());
    assert!(s
        .advance_cursor(&t, &m, 1, d("2026-11-05"), Some(&run))
        .await
        .is_ok());
    let st = s.get_mapping_state(&t, &m).await.unwrap();
    assert_eq!(
        st.as_ref().and_then(|x| x.last_synced_day),
        Some(d("2026-11-10"))
    );
    assert!(matches!(
        s.advance_cursor(&t, &m, 2, d("2026-11-12"), None).await,
        Err(StoreError::Conflict(_))
    ));
    s.set_mapping_error(
        &t,
        &m,
        Some(LastError {
            at: Utc::now(),
            message: "boom".into(),
        }),
    )
    .await
    .unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap();
    assert_eq!(
        st.and_then(|x| x.last_error).map(|e| e.message),
        Some("boom".to_string())
    );
    // The synced range's start is set within the generation only, and a reset clears it.
    s.set_synced_from(&t, &m, 1, d("2026-11-01")).await.unwrap();
    s.set_synced_from(&t, &m, 2, d("2026-10-01")).await.unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap();
    assert_eq!(st.and_then(|x| x.synced_from), Some(d("2026-11-01")));
    // A Re-sync all's reset keeps the shown generation's range beside the new cursor; a plain
    // reset forgets it.
    let shown = s.get_mapping_state(&t, &m).await.unwrap().unwrap().range();
    assert_eq!(
        (shown.generation, shown.from, shown.to),
        (1, Some(d("2026-11-01")), Some(d("2026-11-10")))
    );
    s.reset_mapping_state_keeping(&t, &m, 2, Some(shown))
        .await
        .unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap().unwrap();
    assert_eq!(
        (
            st.generation,
            st.last_synced_day,
            st.synced_from,
            st.previous
        ),
        (2, None, None, Some(shown))
    );
    assert_eq!((st.range_in(1), st.range_in(3)), (Some(shown), None));
    s.reset_mapping_state(&t, &m, 2).await.unwrap();
    let st = s.get_mapping_state(&t, &m).await.unwrap();
    assert_eq!(
        st.map(|x| (x.generation, x.last_synced_day, x.synced_from, x.previous)),
        Some((2, None, None, None))
    );
    // Nothing for a mapping without state.
    let other = MappingId::parse("m2").unwrap();
    s.set_synced_from(&t, &other, 1, d("2026-11-01"))
        .await
        .unwrap();
    assert_eq!(s.get_mapping_state(&t, &other).await.unwrap(), None);
}

pub async fn replace_chunk_replaces_exactly_the_window(s: &dyn Store) {
    let t = tenant("c-replace");
    let i = integration(s, &t).await;
    let m = MappingId::parse("m1").unwrap();
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-03"),
    };
    let first = [
        value("acme", "Clicks", "2026-11-01", 1.0),
        value("acme", "Clicks", "2026-11-02", 2.0),
    ];
    s.replace_chunk(&t, i.generation, &m, w, &first, &[])
        .await
        .unwrap();
    s.replace_chunk(&t, i.generation, &m, w, &first, &[])
        .await
        .unwrap();
    let obj = ObjectRef {
        kind: Target::Company,
        id: "acme".into(),
    };
    let series = s
        .read_series(&t, &obj, "Clicks", d("2026-10-01"), d("2026-12-01"))
        .await
        .unwrap();
    assert_eq!(
        series.iter().map(|p| p.value).collect::<Vec<_>>(),
        vec![1.0, 2.0],
        "twice = once"
    );
    // Re-running the window with one day gone leaves that day empty; outside the window untouched.
    let outside = Window {
        from: d("2026-11-04"),
        to: d("2026-11-04"),
    };
    s.replace_chunk(
        &t,
        i.generation,
        &m,
        outside,
        &[value("acme", "Clicks", "2026-11-04", 4.0)],
        &[],
    )
    .await
    .unwrap();
    s.replace_chunk(
        &t,
        i.generation,
        &m,
        w,
        &[value("acme", "Clicks", "2026-11-02", 5.0)],
        &[],
    )
    .await
    .unwrap();
    let series = s
        .read_series(&t, &obj, "Clicks", d("2026-10-01"), d("2026-12-01"))
        .await
        .unwrap();
    let got: Vec<(NaiveDate, f64)> = series.iter().map(|p| (p.day, p.value)).collect();
    assert_eq!(got, vec![(d("2026-11-02"), 5.0), (d("2026-11-04"), 4.0)]);
    let metrics = s.list_metrics(&t, &obj).await.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(s.delete_mapping_data(&t, &m, &[]).await.unwrap(), 2);
}

/// A Re-sync all writes the next generation while reads show the last complete one: its rows
/// are unseen until it is published, then every read shows them at once; the old generation,
/// and a discarded one, are purged.
pub async fn stale_generations_write_nothing_and_are_purged(s: &dyn Store) {
    let t = tenant("c-gen");
    let mut i = integration(s, &t).await;
    let m = MappingId::parse("m1").unwrap();
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-01"),
    };
    let obj = ObjectRef {
        kind: Target::Company,
        id: "acme".into(),
    };
    let write = |g: u64, v: f64| {
        let m = m.clone();
        async move {
            s.replace_chunk(
                &t_of("c-gen"),
                g,
                &m,
                w,
                &[value("acme", "Clicks", "2026-11-01", v)],
                &[],
            )
            .await
        }
    };
    let shown = || async {
        let rows = s.export(Some(&t_of("c-gen"))).await.unwrap();
        let series = s
            .read_series(
                &t_of("c-gen"),
                &obj,
                "Clicks",
                d("2026-11-01"),
                d("2026-11-01"),
            )
            .await
            .unwrap();
        let metrics = s.list_metrics(&t_of("c-gen"), &obj).await.unwrap();
        (
            rows.iter().map(|r| r.value).collect::<Vec<_>>(),
            series.iter().map(|p| p.value).collect::<Vec<_>>(),
            metrics.len(),
        )
    };
    write(1, 1.0).await.unwrap();
    i.begin_resync();
    i.version = s.put_integration(&i).await.unwrap();
    assert_eq!((i.generation, i.read_generation()), (2, 1));
    // The shown generation stays readable and frozen: runs write the new one only.
    assert!(matches!(
        write(1, 9.0).await,
        Err(StoreError::StaleGeneration(1))
    ));
    write(2, 3.0).await.unwrap();
    assert_eq!(shown().await, (vec![1.0], vec![1.0], 1));
    assert!(i.publish(2));
    i.version = s.put_integration(&i).await.unwrap();
    assert_eq!(shown().await, (vec![3.0], vec![3.0], 1));
    assert_eq!(s.purge_generations(&t, &i.generations()).await.unwrap(), 1);
    assert_eq!(s.purge_generations(&t, &i.generations()).await.unwrap(), 0);
    // A discarded re-sync's rows go with the next purge; the shown values are untouched.
    i.begin_resync();
    i.version = s.put_integration(&i).await.unwrap();
    write(3, 7.0).await.unwrap();
    assert!(i.discard_resync());
    i.version = s.put_integration(&i).await.unwrap();
    assert!(matches!(
        write(3, 8.0).await,
        Err(StoreError::StaleGeneration(3))
    ));
    assert_eq!(s.purge_generations(&t, &i.generations()).await.unwrap(), 1);
    assert_eq!(shown().await, (vec![3.0], vec![3.0], 1));
    write(2, 4.0).await.unwrap();
    assert_eq!(shown().await, (vec![4.0], vec![4.0], 1));
}

/// A mapping's rebuild writes a generation of its own (`Generations::writes`) while reads show
/// its old values beside the other mappings' (`shows`); once published, reads show its new
/// values and the other mappings' as before, and the purge deletes its old values only.
pub async fn a_rebuilt_mapping_writes_and_shows_a_generation_of_its_own(s: &dyn Store) {
    let t = tenant("c-own");
    let mut i = integration(s, &t).await;
    let (a, b) = (
        MappingId::parse("ma").unwrap(),
        MappingId::parse("mb").unwrap(),
    );
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-01"),
    };
    let obj = ObjectRef {
        kind: Target::Company,
        id: "acme".into(),
    };
    let write = |m: &MappingId, g: u64, metric: &'static str, v: f64| {
        let (m, t) = (m.clone(), t.clone());
        let act = Activity {
            end_user_id: "u1".into(),
            company_id: "acme".into(),
            mapping_id: m.clone(),
            label: metric.into(),
            day: d("2026-11-01"),
            events: v,
            minutes: 0.0,
            passive: false,
        };
        async move {
            s.replace_chunk(
                &t,
                g,
                &m,
                w,
                &[value("acme", metric, "2026-11-01", v)],
                &[act],
            )
            .await
        }
    };
    // What every read shows: (metric, value) of the export's values, each metric's series, the
    // object's metrics, and the activity of the end user and of its company (events).
    let shown = || async {
        let rows = s.export(Some(&t)).await.unwrap();
        let values: Vec<_> = rows
            .iter()
            .filter(|r| r.record == "value")
            .map(|r| (r.metric.clone(), r.value))
            .collect();
        let mut series = Vec::new();
        for metric in ["A", "A2", "B"] {
            let day = d("2026-11-01");
            for p in s.read_series(&t, &obj, metric, day, day).await.unwrap() {
                series.push((metric, p.value));
            }
        }
        let metrics: Vec<_> = s
            .list_metrics(&t, &obj)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.metric)
            .collect();
        let mut activity = Vec::new();
        for of in [
            ActivityOf::EndUser("u1".into()),
            ActivityOf::Company("acme".into()),
        ] {
            let mut got: Vec<_> = s
                .recent_activity(&t, &of, d("2026-10-01"), 10)
                .await
                .unwrap()
                .into_iter()
                .map(|a| (a.label, a.events))
                .collect();
            got.sort_by(|x, y| x.0.cmp(&y.0));
            activity.push(got);
        }
        (values, series, metrics, activity)
    };
    write(&a, 1, "A", 1.0).await.unwrap();
    write(&b, 1, "B", 2.0).await.unwrap();
    let old = shown().await;
    assert_eq!(old.0, vec![("A".to_string(), 1.0), ("B".to_string(), 2.0)]);
    assert_eq!(old.1, vec![("A", 1.0), ("B", 2.0)]);
    assert_eq!(old.2, vec!["A".to_string(), "B".to_string()]);
    let acts = vec![("A".to_string(), 1.0), ("B".to_string(), 2.0)];
    assert_eq!(old.3, vec![acts.clone(), acts]);
    assert_eq!(i.begin_rebuild(&a), Some(2));
    i.version = s.put_integration(&i).await.unwrap();
    // The rebuild (its metric renamed) writes generation 2; its generation-1 writes are stale,
    // the other mapping's are not.
    write(&a, 2, "A2", 5.0).await.unwrap();
    assert!(matches!(
        write(&a, 1, "A", 9.0).await,
        Err(StoreError::StaleGeneration(1))
    ));
    assert!(matches!(
        write(&b, 2, "B", 9.0).await,
        Err(StoreError::StaleGeneration(2))
    ));
    assert_eq!(
        shown().await,
        old,
        "the rebuild is not shown before it is published"
    );
    assert!(i.publish_rebuild(&a, 2));
    i.version = s.put_integration(&i).await.unwrap();
    let new = shown().await;
    assert_eq!(new.0, vec![("A2".to_string(), 5.0), ("B".to_string(), 2.0)]);
    assert_eq!(new.1, vec![("A2", 5.0), ("B", 2.0)]);
    assert_eq!(new.2, vec!["A2".to_string(), "B".to_string()]);
    let acts = vec![("A2".to_string(), 5.0), ("B".to_string(), 2.0)];
    assert_eq!(new.3, vec![acts.clone(), acts]);
    // The purge deletes the mapping's old value and activity record, nothing else.
    assert_eq!(s.purge_generations(&t, &i.generations()).await.unwrap(), 2);
    assert_eq!(s.purge_generations(&t, &i.generations()).await.unwrap(), 0);
    assert_eq!(shown().await, new);
    // The other mapping still writes generation 1, the rebuilt one generation 2.
    write(&b, 1, "B", 3.0).await.unwrap();
    write(&a, 2, "A2", 6.0).await.unwrap();
    assert_eq!(
        shown().await.0,
        vec![("A2".to_string(), 6.0), ("B".to_string(), 3.0)]
    );
}

fn t_of(name: &str) -> TenantId {
    tenant(name)
}

pub async fn tenants_never_see_each_other(s: &dyn Store) {
    let a = tenant("c-iso-a");
    let b = tenant("c-iso-b");
    let ia = integration(s, &a).await;
    let _ib = integration(s, &b).await;
    let m = MappingId::parse("shared-id").unwrap();
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-01"),
    };
    let act = Activity {
        end_user_id: "u".into(),
        company_id: "acme".into(),
        mapping_id: m.clone(),
        label: "Clicks".into(),
        day: d("2026-11-01"),
        events: 2.0,
        minutes: 1.0,
        passive: false,
    };
    s.replace_chunk(
        &a,
        ia.generation,
        &m,
        w,
        &[value("acme", "Clicks", "2026-11-01", 1.0)],
        &[act],
    )
    .await
    .unwrap();
    s.upsert_objects(
        &a,
        Target::Company,
        &[DirectoryObject {
            external_id: "acme".into(),
            name: None,
            company_id: None,
        }],
    )
    .await
    .unwrap();
    let obj = ObjectRef {
        kind: Target::Company,
        id: "acme".into(),
    };
    assert!(s
        .read_series(&b, &obj, "Clicks", d("2026-01-01"), d("2027-01-01"))
        .await
        .unwrap()
        .is_empty());
    assert!(s.list_metrics(&b, &obj).await.unwrap().is_empty());
    assert!(s.export(Some(&b)).await.unwrap().is_empty());
    assert!(s
        .list_objects(&b, Target::Company)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .recent_activity(&b, &ActivityOf::Company("acme".into()), d("2026-01-01"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.recent_activity(&a, &ActivityOf::Company("acme".into()), d("2026-01-01"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.export(Some(&a)).await.unwrap().len(), 2);
    // Deleting b's mapping of the same id leaves a's data.
    s.delete_mapping_data(&b, &m, &[]).await.unwrap();
    assert_eq!(s.export(Some(&a)).await.unwrap().len(), 2);
}

/// Ids and names holding the characters adapters use as key separators (`#`, `/`, `|`, `%`,
/// `:`, newlines) are stored as themselves and never land on another object's key.
pub async fn separators_in_ids_never_confuse_keys(s: &dyn Store) {
    let t = tenant("c-separators");
    let i = integration(s, &t).await;
    let m = MappingId::parse("m#1/x").unwrap();
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-01"),
    };
    // Pairs that a naive `object#metric` (or `/`, `|`) join would merge.
    let values = [
        value("a#b", "Clicks", "2026-11-01", 1.0),
        value("a", "b#Clicks", "2026-11-01", 2.0),
        value("a/b", "Clicks", "2026-11-01", 3.0),
        value("a", "b/Clicks", "2026-11-01", 4.0),
        value("a|b", "Clicks", "2026-11-01", 5.0),
        value("a%23b", "Clicks", "2026-11-01", 6.0),
        value("a\nb", "Clicks", "2026-11-01", 7.0),
    ];
    s.replace_chunk(&t, i.generation, &m, w, &values, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got: Vec<(String, String, f64)> = s
        .export(Some(&t))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.object_id, r.metric, r.value))
        .collect();
    got.sort_by(|a, b| a.2.total_cmp(&b.2));
    let want: Vec<(String, String, f64)> = values
        .iter()
        .map(|v| (v.object.id.clone(), v.metric.clone(), v.value))
        .collect();
    assert_eq!(got, want);
    // End users whose (company, identity) pairs join to the same text are two users.
    let pairs = [("acme", "v|x:1"), ("acme|x:v", "1"), ("acme%7Cx:v", "1")];
    let mut ids = std::collections::BTreeSet::new();
    for (company, ext) in pairs {
        let (u, created) = s
            .create_end_user_if_absent(
                &t,
                &EndUserInput {
                    company_id: company.into(),
                    external_id: Some(ext.into()),
                    email: None,
                    name: None,
                    surname: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{company} {ext}: {e}"));
        assert!(created, "{company} {ext} was taken for another user");
        assert_eq!(
            (u.company_id.as_str(), u.external_id.as_deref()),
            (company, Some(ext))
        );
        ids.insert(u.id);
    }
    assert_eq!(ids.len(), 3);
    assert_eq!(s.list_end_users(&t).await.unwrap().len(), 3);
}
