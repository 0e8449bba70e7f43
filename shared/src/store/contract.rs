//! The store contract: one suite every adapter runs (embedded now; DynamoDB later). Each test
//! is one sentence of the port's `# Errors`/behaviour docs made executable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{ActivityOf, Store, StoreError};
use crate::domain::mapping::LastError;
use crate::domain::Window;
use crate::domain::*;
use chrono::{NaiveDate, TimeZone, Utc};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap_or_else(|_| unreachable!())
}

fn value(obj: &str, metric: &str, day: &str, v: f64) -> MetricValue {
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

async fn integration(s: &dyn Store, t: &TenantId) -> Integration {
    let i = Integration::new(t.clone());
    assert_eq!(s.put_integration(&i).await.ok(), Some(1));
    s.get_integration(t).await.ok().flatten().unwrap_or(i)
}

/// Runs every contract test against `store` (which must start empty).
pub async fn run_all(store: &dyn Store) {
    integration_writes_are_optimistic(store).await;
    cursor_only_moves_forward_within_its_generation(store).await;
    replace_chunk_replaces_exactly_the_window(store).await;
    stale_generations_write_nothing_and_are_purged(store).await;
    end_users_are_created_once_and_never_overwritten(store).await;
    directory_upserts_match_on_external_id_and_never_take_an_email(store).await;
    tenants_never_see_each_other(store).await;
    runs_record_chunk_outcomes(store).await;
    run_counters_and_flags_are_exact(store).await;
    separators_in_ids_never_confuse_keys(store).await;
    imports_are_written_with_a_version_and_listed_newest_first(store).await;
    unmatched_entries_are_replaced_per_day_and_generation(store).await;
    super::contract_status::run_all(store).await;
    super::contract_reads::run_all(store).await;
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
    assert_eq!(s.put_integration(&i).await.ok(), Some(2));
    assert!(s.list_tenants().await.unwrap_or_default().contains(&t));
}

pub async fn cursor_only_moves_forward_within_its_generation(s: &dyn Store) {
    let t = tenant("c-cursor");
    let m = MappingId::parse("m1").unwrap_or_else(|_| unreachable!());
    let run = RunId::parse("r1").unwrap_or_else(|_| unreachable!());
    s.reset_mapping_state(&t, &m, 1).await.ok();
    assert!(s
        .advance_cursor(&t, &m, 1, d("2026-11-10"), Some(&run))
        .await
        .is_ok());
    assert!(s
        .advance_cursor(&t, &m, 1, d("2026-11-05"), Some(&run))
        .await
        .is_ok());
    let st = s.get_mapping_state(&t, &m).await.ok().flatten();
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
    .ok();
    let st = s.get_mapping_state(&t, &m).await.ok().flatten();
    assert_eq!(
        st.and_then(|x| x.last_error).map(|e| e.message),
        Some("boom".to_string())
    );
    s.reset_mapping_state(&t, &m, 2).await.ok();
    let st = s.get_mapping_state(&t, &m).await.ok().flatten();
    assert_eq!(
        st.map(|x| (x.generation, x.last_synced_day)),
        Some((2, None))
    );
}

pub async fn replace_chunk_replaces_exactly_the_window(s: &dyn Store) {
    let t = tenant("c-replace");
    let i = integration(s, &t).await;
    let m = MappingId::parse("m1").unwrap_or_else(|_| unreachable!());
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
        .ok();
    s.replace_chunk(&t, i.generation, &m, w, &first, &[])
        .await
        .ok();
    let obj = ObjectRef {
        kind: Target::Company,
        id: "acme".into(),
    };
    let series = s
        .read_series(&t, &obj, "Clicks", d("2026-10-01"), d("2026-12-01"))
        .await
        .unwrap_or_default();
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
    .ok();
    s.replace_chunk(
        &t,
        i.generation,
        &m,
        w,
        &[value("acme", "Clicks", "2026-11-02", 5.0)],
        &[],
    )
    .await
    .ok();
    let series = s
        .read_series(&t, &obj, "Clicks", d("2026-10-01"), d("2026-12-01"))
        .await
        .unwrap_or_default();
    let got: Vec<(NaiveDate, f64)> = series.iter().map(|p| (p.day, p.value)).collect();
    assert_eq!(got, vec![(d("2026-11-02"), 5.0), (d("2026-11-04"), 4.0)]);
    let metrics = s.list_metrics(&t, &obj).await.unwrap_or_default();
    assert_eq!(metrics.len(), 1);
    assert_eq!(s.delete_mapping_data(&t, &m).await.ok(), Some(2));
}

pub async fn stale_generations_write_nothing_and_are_purged(s: &dyn Store) {
    let t = tenant("c-gen");
    let mut i = integration(s, &t).await;
    let m = MappingId::parse("m1").unwrap_or_else(|_| unreachable!());
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-01"),
    };
    s.replace_chunk(
        &t,
        1,
        &m,
        w,
        &[value("acme", "Clicks", "2026-11-01", 1.0)],
        &[],
    )
    .await
    .ok();
    i.generation = 2;
    s.put_integration(&i).await.ok();
    // Old values are invisible once the generation moves on, and a late old write fails.
    assert!(s.export(Some(&t)).await.unwrap_or_default().is_empty());
    assert!(matches!(
        s.replace_chunk(
            &t,
            1,
            &m,
            w,
            &[value("acme", "Clicks", "2026-11-01", 9.0)],
            &[]
        )
        .await,
        Err(StoreError::StaleGeneration(1))
    ));
    assert_eq!(s.purge_below_generation(&t, 2).await.ok(), Some(1));
    s.replace_chunk(
        &t,
        2,
        &m,
        w,
        &[value("acme", "Clicks", "2026-11-01", 3.0)],
        &[],
    )
    .await
    .ok();
    let rows = s.export(Some(&t)).await.unwrap_or_default();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, 3.0);
}

pub async fn end_users_are_created_once_and_never_overwritten(s: &dyn Store) {
    let t = tenant("c-users");
    let input = EndUserInput {
        company_id: "acme".into(),
        external_id: Some("v1".into()),
        email: Some("ann@acme.io".into()),
        name: Some("Ann".into()),
        surname: None,
    };
    let (u1, created1) = s
        .create_end_user_if_absent(&t, &input)
        .await
        .unwrap_or_else(|_| unreachable!());
    let (u2, created2) = s
        .create_end_user_if_absent(&t, &input)
        .await
        .unwrap_or_else(|_| unreachable!());
    assert!(created1 && !created2);
    assert_eq!(u1.id, u2.id);
    // Matched by email within the company too.
    let by_email = EndUserInput {
        external_id: None,
        ..input.clone()
    };
    let (u3, created3) = s
        .create_end_user_if_absent(&t, &by_email)
        .await
        .unwrap_or_else(|_| unreachable!());
    assert!(!created3);
    assert_eq!(u3.id, u1.id);
    // Same external id in another company is another user.
    let other = EndUserInput {
        company_id: "globex".into(),
        email: None,
        ..input.clone()
    };
    let (u4, created4) = s
        .create_end_user_if_absent(&t, &other)
        .await
        .unwrap_or_else(|_| unreachable!());
    assert!(created4);
    assert_ne!(u4.id, u1.id);
    s.fill_end_user(
        &t,
        &u1.id,
        Some("other@acme.io"),
        Some("Bob"),
        Some("Smith"),
    )
    .await
    .ok();
    let users = s.list_end_users(&t).await.unwrap_or_default();
    let ann = users.iter().find(|u| u.id == u1.id).cloned();
    assert_eq!(
        ann.as_ref().and_then(|u| u.name.clone()).as_deref(),
        Some("Ann")
    );
    assert_eq!(
        ann.as_ref().and_then(|u| u.email.clone()).as_deref(),
        Some("ann@acme.io")
    );
    assert_eq!(ann.and_then(|u| u.surname).as_deref(), Some("Smith"));
    assert_eq!(users.len(), 2);
}

pub async fn directory_upserts_match_on_external_id_and_never_take_an_email(s: &dyn Store) {
    let t = tenant("c-upsert");
    let row = |ext: Option<&str>, email: Option<&str>, name: Option<&str>| EndUserInput {
        company_id: "acme".into(),
        external_id: ext.map(Into::into),
        email: email.map(Into::into),
        name: name.map(Into::into),
        surname: None,
    };
    let ann = s
        .upsert_end_user(&t, &row(Some("v1"), Some("ann@acme.io"), Some("Ann")))
        .await
        .unwrap();
    let bob = s
        .upsert_end_user(&t, &row(Some("v2"), None, None))
        .await
        .unwrap();
    let only_email = s
        .upsert_end_user(&t, &row(None, Some("cy@acme.io"), None))
        .await
        .unwrap();
    let before = s.list_end_users(&t).await.unwrap();
    // A new external id with Ann's email: refused, naming Ann; nothing written.
    let e = s
        .upsert_end_user(&t, &row(Some("dupC"), Some("ann@acme.io"), None))
        .await
        .unwrap_err();
    let StoreError::EmailTaken(taken) = e else {
        panic!("{e}")
    };
    assert_eq!(
        taken,
        crate::store::EmailTaken {
            company: "acme".into(),
            email: "ann@acme.io".into(),
            holder_external_id: Some("v1".into()),
            holder_id: ann.id.clone(),
        }
    );
    // Bob asking for Ann's email, or for the email of a user known only by email: refused.
    let e = s
        .upsert_end_user(&t, &row(Some("v2"), Some("ann@acme.io"), Some("Bob")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::EmailTaken(x) if x.holder_id == ann.id),
        "{e}"
    );
    let e = s
        .upsert_end_user(&t, &row(Some("v2"), Some("cy@acme.io"), None))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "email cy@acme.io already belongs to end user {} (no external id) of company acme",
            only_email.id
        )
    );
    assert_eq!(s.list_end_users(&t).await.unwrap(), before);
    // Matched on external id: the given fields replace the stored ones, the id stays.
    let ann2 = s
        .upsert_end_user(&t, &row(Some("v1"), Some("ann@new.io"), Some("Anna")))
        .await
        .unwrap();
    assert_eq!(
        ann2,
        EndUser {
            email: Some("ann@new.io".into()),
            name: Some("Anna".into()),
            ..ann.clone()
        }
    );
    // Ann's old email is free again; a row without an external id matches on its email.
    let bob2 = s
        .upsert_end_user(&t, &row(Some("v2"), Some("ann@acme.io"), None))
        .await
        .unwrap();
    assert_eq!(bob2.id, bob.id);
    let cy = s
        .upsert_end_user(&t, &row(None, Some("cy@acme.io"), Some("Cy")))
        .await
        .unwrap();
    assert_eq!(
        (cy.id, cy.name.as_deref()),
        (only_email.id.clone(), Some("Cy"))
    );
    let mut users = s.list_end_users(&t).await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<(Option<&str>, Option<&str>)> = users
        .iter()
        .map(|u| (u.external_id.as_deref(), u.email.as_deref()))
        .collect();
    let mut want = vec![
        (ann.id.as_str(), (Some("v1"), Some("ann@new.io"))),
        (bob.id.as_str(), (Some("v2"), Some("ann@acme.io"))),
        (only_email.id.as_str(), (None, Some("cy@acme.io"))),
    ];
    want.sort();
    assert_eq!(got, want.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
    // The email moved with its lookup: a new user may not take Ann's new email either.
    let e = s
        .upsert_end_user(&t, &row(Some("v3"), Some("ann@new.io"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::EmailTaken(x) if x.holder_id == ann.id),
        "{e}"
    );
}

pub async fn tenants_never_see_each_other(s: &dyn Store) {
    let a = tenant("c-iso-a");
    let b = tenant("c-iso-b");
    let ia = integration(s, &a).await;
    let _ib = integration(s, &b).await;
    let m = MappingId::parse("shared-id").unwrap_or_else(|_| unreachable!());
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
    .ok();
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
    .ok();
    let obj = ObjectRef {
        kind: Target::Company,
        id: "acme".into(),
    };
    assert!(s
        .read_series(&b, &obj, "Clicks", d("2026-01-01"), d("2027-01-01"))
        .await
        .unwrap_or_default()
        .is_empty());
    assert!(s
        .list_metrics(&b, &obj)
        .await
        .unwrap_or_default()
        .is_empty());
    assert!(s.export(Some(&b)).await.unwrap_or_default().is_empty());
    assert!(s
        .list_objects(&b, Target::Company)
        .await
        .unwrap_or_default()
        .is_empty());
    assert!(s
        .recent_activity(&b, &ActivityOf::Company("acme".into()), d("2026-01-01"), 10)
        .await
        .unwrap_or_default()
        .is_empty());
    assert_eq!(
        s.recent_activity(&a, &ActivityOf::Company("acme".into()), d("2026-01-01"), 10)
            .await
            .unwrap_or_default()
            .len(),
        1
    );
    assert_eq!(s.export(Some(&a)).await.unwrap_or_default().len(), 2);
    // Deleting b's mapping of the same id leaves a's data.
    s.delete_mapping_data(&b, &m).await.ok();
    assert_eq!(s.export(Some(&a)).await.unwrap_or_default().len(), 2);
}

pub async fn runs_record_chunk_outcomes(s: &dyn Store) {
    let t = tenant("c-runs");
    let m = MappingId::parse("m1").unwrap_or_else(|e| panic!("{e}"));
    let mut run = SyncRun::new(
        t.clone(),
        RunId::parse("r1").unwrap_or_else(|_| unreachable!()),
        RunKind::Daily,
        1,
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
            .single()
            .unwrap_or_default(),
    );
    run.planned = true;
    run.chunks = vec![ChunkRecord {
        deferred: true,
        ..ChunkRecord::pending(m.clone(), d("2026-11-01"), d("2026-11-07"))
    }];
    s.put_run(&run).await.ok();
    let stats = ChunkStats {
        rows_read: 5,
        ..Default::default()
    };
    let at = |m: u32| {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, m, 0)
            .single()
            .unwrap_or_default()
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
            .unwrap_or_default()
            .unwrap_or_else(|| unreachable!())
    };
    let r = get().await;
    assert!(r.chunks[0].deferred, "the chunk's order is kept");
    assert_eq!(r.state(at(30)), RunState::Running);
    assert_eq!(
        r.state(at(0) + chrono::Duration::hours(2)),
        RunState::Interrupted
    );
    // A delivery is counted (attempts, time), takes the chunk until its lease ends, and the
    // chunk comes back as stored.
    let start = |from: u32, until: u32| s.begin_chunk(&t, &run.id, 0, at(from), at(until));
    let c = start(4, 19).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(c.taken);
    assert_eq!(
        (c.chunk.status, c.chunk.attempts, c.chunk.updated_at),
        (ChunkStatus::Pending, 1, Some(at(4)))
    );
    assert_eq!(c.chunk.leased_until, Some(at(19)));
    // Another delivery meanwhile is counted but does not take it.
    let c = start(4, 19).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.taken);
    assert_eq!((c.chunk.attempts, c.chunk.leased_until), (2, Some(at(19))));
    // A retry is recorded (error, retries, time) and the chunk stays pending.
    s.retry_chunk(&t, &run.id, 0, "retrying: 503", at(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
        r.state(at(0) + chrono::Duration::hours(5)),
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
        s.begin_chunk(&t, &run.id, 9, at(9), at(24)).await,
        Err(StoreError::NotFound(_))
    ));
    // A lease that ended lets the next delivery take the chunk over (its holder died).
    let mut other = run.clone();
    other.id = RunId::parse("r1b").unwrap_or_else(|e| panic!("{e}"));
    other.chunks[0] = ChunkRecord::pending(m.clone(), d("2026-11-01"), d("2026-11-07"));
    s.put_run(&other).await.ok();
    let first = s
        .begin_chunk(&t, &other.id, 0, at(0), at(15))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = s
        .begin_chunk(&t, &other.id, 0, at(14), at(29))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let over = s
        .begin_chunk(&t, &other.id, 0, at(15), at(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.taken, held.taken, over.taken), (true, false, true));
    assert_eq!(over.chunk.leased_until, Some(at(30)));
    assert!(matches!(
        s.finish_chunk(&t, &run.id, 9, &outcome(ChunkStatus::Done, &stats, None, 9))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.list_runs(&t, 10).await.unwrap_or_default().len(), 2);
}

/// A run's counters follow every outcome exactly (open, open creating chunks, per mapping), the
/// release is taken by one chunk only (and again by that chunk's redelivery), the queued flag
/// and the planning sources are kept.
pub async fn run_counters_and_flags_are_exact(s: &dyn Store) {
    let t = tenant("c-run-counters");
    let (a, b) = (
        MappingId::parse("users").unwrap_or_else(|_| unreachable!()),
        MappingId::parse("company").unwrap_or_else(|_| unreachable!()),
    );
    let mut run = SyncRun::new(
        t.clone(),
        RunId::parse("r2").unwrap_or_else(|_| unreachable!()),
        RunKind::ResyncAll,
        4,
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
            .single()
            .unwrap_or_default(),
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
        .unwrap_or_default();
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
    assert!(claim(0).await.unwrap_or_default());
    assert!(!claim(1).await.unwrap_or(true));
    assert!(claim(0).await.unwrap_or_default());
    assert!(s
        .set_run_flag(&t, &run.id, RunFlag::Released)
        .await
        .unwrap_or_default());
    assert!(
        !claim(0).await.unwrap_or(true),
        "released: nobody claims again"
    );
    assert!(s
        .set_run_flag(&t, &run.id, RunFlag::Queued)
        .await
        .unwrap_or_default());
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
        .ok()
        .flatten()
        .unwrap_or_else(|| unreachable!());
    assert!(r.is_finished());
    assert!(r.queued);
    assert_eq!(r.release, Release::Released);
    assert_eq!(
        s.run_source(&t, &run.id, &b).await.ok().flatten(),
        Some(serde_json::json!({"id": "rep-1", "name": "Weekly"}))
    );
    assert_eq!(s.run_source(&t, &run.id, &a).await.ok().flatten(), None);
    assert!(matches!(
        s.set_run_flag(
            &t,
            &RunId::parse("nope").unwrap_or_else(|_| unreachable!()),
            RunFlag::ClaimRelease { by: 0 }
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Ids and names holding the characters adapters use as key separators (`#`, `/`, `|`, `%`,
/// `:`, newlines) are stored as themselves and never land on another object's key.
pub async fn separators_in_ids_never_confuse_keys(s: &dyn Store) {
    let t = tenant("c-separators");
    let i = integration(s, &t).await;
    let m = MappingId::parse("m#1/x").unwrap_or_else(|_| unreachable!());
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
        .unwrap_or_default()
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
    assert_eq!(s.list_end_users(&t).await.unwrap_or_default().len(), 3);
}
