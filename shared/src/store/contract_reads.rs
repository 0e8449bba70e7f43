//! The store contract, continued: reads of activity, series and metrics after chunk replaces,
//! and the directory stamp. Run against every adapter by `store_contract_tests!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{ActivityOf, Store};
use crate::domain::Window;
use crate::domain::*;
use chrono::NaiveDate;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn mapping(s: &str) -> MappingId {
    MappingId::parse(s).unwrap()
}

fn act(user: &str, company: &str, m: &str, day: &str, events: f64, passive: bool) -> Activity {
    Activity {
        end_user_id: user.into(),
        company_id: company.into(),
        mapping_id: mapping(m),
        label: format!("{m} label"),
        day: d(day),
        events,
        minutes: events / 2.0,
        passive,
    }
}

fn window(from: &str, to: &str) -> Window {
    Window {
        from: d(from),
        to: d(to),
    }
}

/// `recent_activity`: an end user's or a company's records on or after `from`, newest day
/// first, then by end user and mapping, at most `limit`; passive records included; a replace
/// changes only its mapping's days; records of an older generation are never read.
pub async fn activity_reads_are_newest_first_per_end_user_and_company(s: &dyn Store) {
    let t = tenant("c-activity");
    let mut i = Integration::new(t.clone());
    s.put_integration(&i).await.unwrap();
    i.version = 1;
    let g = i.generation;
    let m1 = [
        act("u1", "acme", "m1", "2026-11-01", 1.0, false),
        act("u2", "acme", "m1", "2026-11-01", 2.0, false),
        act("u1", "acme", "m1", "2026-11-03", 3.0, false),
        act("u3", "globex", "m1", "2026-11-03", 4.0, false),
    ];
    let m2 = [
        act("u1", "acme", "m2", "2026-11-02", 5.0, true),
        act("u2", "acme", "m2", "2026-11-03", 6.0, true),
    ];
    s.replace_chunk(
        &t,
        g,
        &mapping("m1"),
        window("2026-11-01", "2026-11-03"),
        &[],
        &m1,
    )
    .await
    .unwrap();
    s.replace_chunk(
        &t,
        g,
        &mapping("m2"),
        window("2026-11-01", "2026-11-03"),
        &[],
        &m2,
    )
    .await
    .unwrap();
    let t = &t;
    let read = |of: ActivityOf, from: &str, limit: usize| {
        let from = d(from);
        async move { s.recent_activity(t, &of, from, limit).await.unwrap() }
    };
    let user = |id: &str| ActivityOf::EndUser(id.into());
    let company = |id: &str| ActivityOf::Company(id.into());
    assert_eq!(
        read(user("u1"), "2026-01-01", 10).await,
        vec![m1[2].clone(), m2[0].clone(), m1[0].clone()]
    );
    assert_eq!(
        read(company("acme"), "2026-01-01", 10).await,
        vec![
            m1[2].clone(),
            m2[1].clone(),
            m2[0].clone(),
            m1[0].clone(),
            m1[1].clone()
        ]
    );
    // `from` and `limit` (which may cut a day).
    assert_eq!(
        read(company("acme"), "2026-11-02", 10).await,
        vec![m1[2].clone(), m2[1].clone(), m2[0].clone()]
    );
    assert_eq!(
        read(company("acme"), "2026-01-01", 1).await,
        vec![m1[2].clone()]
    );
    assert_eq!(
        read(company("globex"), "2026-01-01", 10).await,
        vec![m1[3].clone()]
    );
    assert!(read(user("nobody"), "2026-01-01", 10).await.is_empty());
    assert!(read(company("nobody"), "2026-01-01", 10).await.is_empty());
    // A replace of m1's 2026-11-03 alone: m1's other day and m2's records stay.
    let again = act("u1", "acme", "m1", "2026-11-03", 7.0, false);
    s.replace_chunk(
        t,
        g,
        &mapping("m1"),
        window("2026-11-03", "2026-11-03"),
        &[],
        std::slice::from_ref(&again),
    )
    .await
    .unwrap();
    assert_eq!(
        read(company("acme"), "2026-01-01", 10).await,
        vec![
            again,
            m2[1].clone(),
            m2[0].clone(),
            m1[0].clone(),
            m1[1].clone()
        ]
    );
    assert!(read(company("globex"), "2026-01-01", 10).await.is_empty());
    // A new generation: nothing of the older one is read.
    i.generation = g + 1;
    s.put_integration(&i).await.unwrap();
    assert!(read(user("u1"), "2026-01-01", 10).await.is_empty());
    assert!(read(company("acme"), "2026-01-01", 10).await.is_empty());
    let fresh = act("u1", "acme", "m2", "2026-11-02", 8.0, true);
    s.replace_chunk(
        t,
        g + 1,
        &mapping("m2"),
        window("2026-11-02", "2026-11-02"),
        &[],
        std::slice::from_ref(&fresh),
    )
    .await
    .unwrap();
    assert_eq!(read(company("acme"), "2026-01-01", 10).await, vec![fresh]);
}

/// `read_series` gives a metric's points of every app by day, then app; `list_metrics` the
/// object's metrics (and apps) by name with a value of the current generation; an end user's
/// metric of the same name is its own.
pub async fn series_and_metrics_read_every_app_of_the_current_generation(s: &dyn Store) {
    let t = tenant("c-series");
    let mut i = Integration::new(t.clone());
    s.put_integration(&i).await.unwrap();
    i.version = 1;
    let g = i.generation;
    let v = |kind: Target, obj: &str, metric: &str, app: &str, day: &str, value: f64| MetricValue {
        object: ObjectRef {
            kind,
            id: obj.into(),
        },
        metric: metric.into(),
        app: app.into(),
        day: d(day),
        value,
    };
    let c = Target::Company;
    let values = [
        v(c, "acme", "Clicks", "-323", "2026-11-02", 1.0),
        v(c, "acme", "Clicks", "", "2026-11-02", 2.0),
        v(c, "acme", "Clicks", "", "2026-11-01", 3.0),
        v(c, "acme", "Adoption", "", "2026-11-03", 4.0),
        v(c, "globex", "Clicks", "", "2026-11-01", 5.0),
        v(Target::EndUser, "acme", "Clicks", "", "2026-11-01", 6.0),
    ];
    s.replace_chunk(
        &t,
        g,
        &mapping("m1"),
        window("2026-11-01", "2026-11-03"),
        &values,
        &[],
    )
    .await
    .unwrap();
    let acme = ObjectRef {
        kind: c,
        id: "acme".into(),
    };
    let points: Vec<(NaiveDate, String, f64)> = s
        .read_series(&t, &acme, "Clicks", d("2026-11-01"), d("2026-11-30"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.day, p.app, p.value))
        .collect();
    assert_eq!(
        points,
        vec![
            (d("2026-11-01"), String::new(), 3.0),
            (d("2026-11-02"), String::new(), 2.0),
            (d("2026-11-02"), "-323".into(), 1.0),
        ]
    );
    let only_second: Vec<f64> = s
        .read_series(&t, &acme, "Clicks", d("2026-11-02"), d("2026-11-02"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.value)
        .collect();
    assert_eq!(only_second, vec![2.0, 1.0]);
    let names = |m: Vec<crate::store::MetricInfo>| -> Vec<(String, String)> {
        m.into_iter().map(|m| (m.metric, m.app)).collect()
    };
    assert_eq!(
        names(s.list_metrics(&t, &acme).await.unwrap()),
        vec![
            ("Adoption".into(), String::new()),
            ("Clicks".into(), String::new()),
            ("Clicks".into(), "-323".into()),
        ]
    );
    let user = ObjectRef {
        kind: Target::EndUser,
        id: "acme".into(),
    };
    assert_eq!(
        names(s.list_metrics(&t, &user).await.unwrap()),
        vec![("Clicks".into(), String::new())]
    );
    i.generation = g + 1;
    s.put_integration(&i).await.unwrap();
    assert!(s.list_metrics(&t, &acme).await.unwrap().is_empty());
    assert!(s
        .read_series(&t, &acme, "Clicks", d("2026-11-01"), d("2026-11-30"))
        .await
        .unwrap()
        .is_empty());
}

/// `directory_stamp`: with an adapter that keeps one, every directory write that changes
/// something gives a new stamp; one that changes nothing may keep it. Without one, always
/// `None`.
pub async fn the_directory_stamp_changes_with_every_directory_write(s: &dyn Store) {
    let t = tenant("c-stamp");
    let Some(mut last) = s.directory_stamp(&t).await.unwrap() else {
        let other = tenant("c-stamp-none");
        assert_eq!(s.directory_stamp(&other).await.unwrap(), None);
        return;
    };
    let mut changed = |now: Option<u64>, what: &str| {
        let now = now.unwrap();
        assert_ne!(now, last, "{what} changed the directory: a new stamp");
        last = now;
    };
    let company = DirectoryObject {
        external_id: "acme".into(),
        name: Some("Acme".into()),
        company_id: None,
    };
    s.upsert_objects(&t, Target::Company, &[company])
        .await
        .unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "upsert_objects");
    let user = EndUserInput {
        company_id: "acme".into(),
        external_id: Some("v1".into()),
        email: None,
        name: None,
        surname: None,
    };
    let stored = s.upsert_end_user(&t, &user).await.unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "upsert_end_user");
    let other = EndUserInput {
        external_id: Some("v2".into()),
        ..user.clone()
    };
    assert!(s.create_end_user_if_absent(&t, &other).await.unwrap().1);
    changed(s.directory_stamp(&t).await.unwrap(), "a created end user");
    s.fill_end_user(&t, &stored.id, None, Some("Ann"), None)
        .await
        .unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "a filled name");
    assert!(s.delete_end_user(&t, &stored.id).await.unwrap());
    changed(s.directory_stamp(&t).await.unwrap(), "a deleted end user");
    let project = DirectoryObject {
        external_id: "p1".into(),
        name: None,
        company_id: Some("acme".into()),
    };
    s.upsert_objects(&t, Target::Project, &[project])
        .await
        .unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "a project");
    assert!(s.delete_object(&t, Target::Project, "p1").await.unwrap());
    changed(s.directory_stamp(&t).await.unwrap(), "a deleted project");
    // Another tenant's writes are not this one's.
    let before = s.directory_stamp(&t).await.unwrap();
    s.upsert_end_user(&tenant("c-stamp-other"), &user)
        .await
        .unwrap();
    assert_eq!(s.directory_stamp(&t).await.unwrap(), before);
}
