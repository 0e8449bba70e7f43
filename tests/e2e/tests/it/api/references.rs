//! Every Pendo object a mapping refers to is checked against Pendo on create and edit (a 400
//! naming the field for one Pendo does not list, a 502 when Pendo cannot be reached, nothing
//! stored either way), and an object that disappears later shows on its mapping: the run
//! leaves the mapping out and its status says why.

use super::*;
use pendo_sim::{FaultKind, FaultRule, ObjectKind};

async fn mappings(a: &Api) -> Value {
    a.call(ADMIN_A, Method::GET, "/v1/mappings", None).await.1
}

fn page(a: &Api) -> String {
    a.sim
        .subscription()
        .pages
        .iter()
        .find(|p| p.app_id == -323232)
        .unwrap()
        .id
        .clone()
}

#[tokio::test]
async fn references_pendo_does_not_list_are_refused_naming_their_field_and_nothing_is_stored() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let put = |id: &'static str, name: &'static str| {
        let a = &a;
        async move {
            a.call(
                ADMIN_A,
                Method::PUT,
                &format!("/v1/segments/{id}"),
                Some(json!({ "name": name })),
            )
            .await
        }
    };
    assert_eq!(put("seg-pro", "Pro").await.0, StatusCode::OK);
    // A segment Pendo does not list is refused when typed into the table (issue 32).
    let (s, e) = put("seg-nope", "Not in Pendo").await;
    assert_eq!(
        (s, &e["error"]["field"], &e["error"]["message"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("segmentId"),
            &json!("segment seg-nope is not among the subscription's segments")
        )
    );
    // One Pendo deleted after it was added: stored as it was then.
    let t = TenantId::parse("tenant-a").unwrap();
    let mut i = a.store.get_integration(&t).await.unwrap().unwrap();
    i.segments
        .push(pendo_sync::domain::apps::Segment::parse("seg-nope", "Not in Pendo").unwrap());
    a.store.put_integration(&i).await.unwrap();
    let (f, p) = (a.feature(), page(&a));
    let apps: Vec<String> = a
        .sim
        .subscription()
        .app_ids()
        .iter()
        .map(i64::to_string)
        .collect();
    let m = |source: Value| json!({"source": source, "target": "company", "metricName": "M"});
    let cases = [
        (
            m(json!({"kind": "feature", "featureId": "no-such-feature"})),
            "source.featureId",
            "feature no-such-feature is not among the subscription's features".to_string(),
        ),
        (
            m(json!({"kind": "page", "pageId": "no-such-page"})),
            "source.pageId",
            "page no-such-page is not among the subscription's pages".to_string(),
        ),
        (
            m(
                json!({"kind": "report", "reportId": "rpt-gone", "columns": [{"field": "numEvents", "metric": "E"}]}),
            ),
            "source.reportId",
            "report rpt-gone is not among the subscription's saved reports".to_string(),
        ),
        (
            m(json!({"kind": "pes", "appId": 4242, "components": ["score"]})),
            "source.appId",
            format!(
                "app 4242 is not an app of the subscription (its apps: {})",
                apps.join(", ")
            ),
        ),
        (
            json!({"source": {"kind": "page", "pageId": p}, "target": "company", "metricName": "M", "segmentId": "seg-nope"}),
            "segmentId",
            "segment seg-nope is not among the subscription's segments".to_string(),
        ),
    ];
    for (body, field, message) in &cases {
        let (s, e) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body.clone()))
            .await;
        assert_eq!(
            (s, &e["error"]),
            (
                StatusCode::BAD_REQUEST,
                &json!({"code": "invalid", "field": field, "message": message})
            ),
            "{body}"
        );
    }
    assert_eq!(mappings(&a).await, json!([]), "nothing stored");

    // Known references are accepted; each list was read once per request.
    let c = a.sim.control();
    c.reset_requests();
    let (s, created) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(
                json!({"source": {"kind": "feature", "featureId": f}, "target": "company",
                "metricName": "Clicks", "segmentId": "seg-pro"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(
        c.counters(),
        [("/api/v1/feature", 1), ("/api/v1/segment", 1)]
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect()
    );
    let (s, pes) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(m(
                json!({"kind": "pes", "appId": -323232, "components": ["score"]}),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{pes}");
    let id = created["id"].as_str().unwrap().to_string();
    let stored = a
        .call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
        .await
        .1;

    // An edit to a reference Pendo does not list is refused the same way; the mapping stays.
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::PUT,
            &format!("/v1/mappings/{id}"),
            Some(
                json!({"source": {"kind": "feature", "featureId": "no-such-feature"},
                "target": "company", "metricName": "Clicks", "segmentId": "seg-pro"}),
            ),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("source.featureId")),
        "{e}"
    );
    assert_eq!(
        a.call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
            .await
            .1,
        stored
    );

    // Pendo unreachable: 502 naming the field it could not check; nothing stored.
    c.add_fault(FaultRule::times("/api/v1/page", FaultKind::Status503, 1))
        .unwrap();
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(json!({"source": {"kind": "page", "pageId": p}, "target": "company", "metricName": "Views"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str(), e["error"]["field"].as_str()),
        (
            StatusCode::BAD_GATEWAY,
            Some("pendo_unreachable"),
            Some("source.pageId")
        ),
        "{e}"
    );
    assert_eq!(
        e["error"]["message"],
        "could not check source.pageId with Pendo (Pendo server error (HTTP 503)); nothing was saved: try again"
    );
    assert_eq!(mappings(&a).await.as_array().map(Vec::len), Some(2));

    // A feature deleted in Pendo after the mapping was made: an edit that keeps it (here, a
    // new metric name) is not refused for it, so the mapping can still be changed.
    c.delete_object(ObjectKind::Feature, &f);
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::PUT,
            &format!("/v1/mappings/{id}"),
            Some(
                json!({"source": {"kind": "feature", "featureId": f}, "target": "company",
                "metricName": "Clicks", "segmentId": "seg-pro", "enabled": false}),
            ),
        )
        .await;
    assert_eq!(
        (s, e["enabled"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{e}"
    );
}

#[tokio::test]
async fn a_feature_deleted_in_pendo_shows_on_its_mapping_and_the_run_leaves_it_out() {
    let a = &api().await;
    connected_with_every_company(a).await;
    let id = a.clicks_mapping().await;
    let sync = |id: String| async move { a.sync_now(&id).await };
    let first = sync(id.clone()).await;
    let state = |id: String| async move {
        a.call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
            .await
            .1["state"]
            .clone()
    };
    let st = state(id.clone()).await;
    assert_eq!(
        (
            st["lastRun"]["runId"].as_str(),
            st["lastRun"]["outcome"].as_str()
        ),
        (Some(first.as_str()), Some("succeeded"))
    );
    let before = a.export().await;
    assert!(!before.is_empty());

    // The feature is deleted in Pendo: the next run reads the feature list once, leaves the
    // mapping out (no aggregation for it, its values stay) and its status says why.
    let f = a.feature();
    let c = a.sim.control();
    c.delete_object(ObjectKind::Feature, &f);
    c.reset_requests();
    let second = sync(id.clone()).await;
    assert_eq!(
        c.counters(),
        [("/api/v1/feature".to_string(), 1)].into_iter().collect()
    );
    assert_eq!(a.export().await, before);
    let why = format!(
        "not synced: feature {f} is not among the subscription's features any more (deleted in Pendo?); edit the mapping to pick another one, or delete it"
    );
    let st = state(id.clone()).await;
    assert_eq!(st["lastRun"]["runId"].as_str(), Some(second.as_str()));
    assert_eq!(st["lastRun"]["outcome"], "failed");
    assert_eq!(st["lastRun"]["error"].as_str(), Some(why.as_str()));
    assert_eq!(
        (
            st["lastRun"]["chunks"].as_u64(),
            st["lastRun"]["kind"]["type"].as_str()
        ),
        (Some(0), Some("syncNow"))
    );
    assert_eq!(
        st["lastSuccessfulRun"]["runId"].as_str(),
        Some(first.as_str())
    );
    assert_eq!(st["lastError"]["message"].as_str(), Some(why.as_str()));
    assert_eq!(st["lastSyncedDay"], "2026-11-04", "the cursor stays");
    let run = a
        .call(ADMIN_A, Method::GET, &format!("/v1/runs/{second}"), None)
        .await
        .1;
    let left_out: serde_json::Map<String, Value> = [(id.clone(), Value::String(why.clone()))]
        .into_iter()
        .collect();
    assert_eq!(run["leftOut"], Value::Object(left_out));
    assert_eq!(
        (run["chunksTotal"].as_u64(), run["finished"].as_bool()),
        (Some(0), Some(true))
    );
    // Its rebuild is refused before anything is purged: the values could not come back.
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/rebuild"),
            None,
        )
        .await;
    assert_eq!(
        (s, &e["error"]),
        (
            StatusCode::CONFLICT,
            &json!({"code": "conflict", "field": null,
                "message": format!("mapping \"Clicks\" cannot be rebuilt, its values were kept: {why}")})
        )
    );
    a.drain().await;
    assert_eq!(a.export().await, before);
}

/// The page's app pickers (a PES mapping's app) offer Pendo's apps by name (issue 32,
/// defect 6): `GET /v1/discovery/apps` lists the `apps` source, one aggregation call.
#[tokio::test]
async fn pendos_apps_are_listed_with_their_names() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let c = a.sim.control();
    c.reset_requests();
    let (s, apps) = a
        .call(ADMIN_A, Method::GET, "/v1/discovery/apps", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{apps}");
    let mut want: Vec<Value> = a
        .sim
        .subscription()
        .apps
        .iter()
        .map(|p| json!({"id": p.id, "name": p.name, "platform": p.platform}))
        .collect();
    want.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
    assert_eq!(apps, json!(want));
    assert_eq!(
        c.counters(),
        [("/api/v1/aggregation".to_string(), 1)]
            .into_iter()
            .collect()
    );
}

/// Track types (issue 30): `GET /v1/discovery/track-types` lists Pendo's track types of every
/// app; a track mapping's `trackTypeId` is checked against that list on save (refused naming
/// the field, nothing stored), and a track type deleted in Pendo later leaves its mapping out
/// of the next run with the reason on its status, the list read once per run.
#[tokio::test]
async fn track_types_are_listed_checked_on_save_and_a_deleted_one_leaves_its_mapping_out() {
    let a = &api().await;
    let sub = connected_with_every_company(a).await;
    let mut want: Vec<Value> = sub
        .track_types
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "appId": t.app_id, "isCoreEvent": t.is_core_event}))
        .collect();
    want.sort_by(|x, y| {
        (x["name"].as_str(), x["id"].as_str()).cmp(&(y["name"].as_str(), y["id"].as_str()))
    });
    assert!(want.len() >= 3);
    let (s, listed) = a
        .call(ADMIN_A, Method::GET, "/v1/discovery/track-types", None)
        .await;
    assert_eq!((s, listed), (StatusCode::OK, Value::Array(want)));
    let t = sub
        .track_types
        .iter()
        .find(|t| t.app_id == -323232)
        .unwrap()
        .id
        .clone();
    let c = a.sim.control();
    let body = |id: &str| {
        json!({"source": {"kind": "track", "trackTypeId": id, "minutesMetric": "Export minutes"},
            "target": "company", "metricName": "Exports"})
    };
    c.reset_requests();
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(body("no-such-track")),
        )
        .await;
    assert_eq!(
        (s, &e["error"]),
        (
            StatusCode::BAD_REQUEST,
            &json!({"code": "invalid", "field": "source.trackTypeId",
                "message": "track type no-such-track is not among the subscription's track types"})
        )
    );
    assert_eq!(mappings(a).await, json!([]), "nothing stored");
    let (s, m) = a
        .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body(&t)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        (&m["source"], &m["metricNames"]),
        (
            &json!({"kind": "track", "trackTypeId": t, "minutesMetric": "Export minutes"}),
            &json!(["Exports", "Export minutes"])
        )
    );
    assert_eq!(
        c.counters(),
        [("/api/v1/tracktype".to_string(), 2)].into_iter().collect()
    );
    let id = m["id"].as_str().unwrap().to_string();
    synced(a, &id).await;
    assert!(a
        .export()
        .await
        .iter()
        .any(|r| r.metric == "Export minutes"));
    let gone = format!("track type {t} is not among the subscription's track types");
    deleted_leaves_it_out(
        a,
        &id,
        (ObjectKind::TrackType, &t),
        "/api/v1/tracktype",
        &gone,
    )
    .await;
}

/// Tenant A connected for a week, every account of the simulator a company: the simulator's
/// subscription.
async fn connected_with_every_company(a: &Api) -> &pendo_sim::Subscription {
    a.connect_for_a_week(ADMIN_A).await;
    let sub = a.sim.subscription();
    let ids: Vec<&str> = sub.accounts.iter().map(|c| c.id.as_str()).collect();
    a.companies(&ids).await;
    sub
}

/// Sync now of mapping `id`, run to the end: its state, checked to have succeeded up to the
/// week's last day.
async fn synced(a: &Api, id: &str) -> Value {
    a.sync_now(id).await;
    let path = format!("/v1/mappings/{id}");
    let st = a.call(ADMIN_A, Method::GET, &path, None).await.1["state"].clone();
    assert_eq!(
        (
            st["lastRun"]["outcome"].as_str(),
            st["lastSyncedDay"].as_str()
        ),
        (Some("succeeded"), Some("2026-11-04")),
        "{st}"
    );
    st
}

/// `object` deleted in Pendo, mapping `id` synced again: its run reads `list` once and leaves
/// the mapping out (its values kept), and the mapping's status says that `gone`.
async fn deleted_leaves_it_out(
    a: &Api,
    id: &str,
    (kind, object): (ObjectKind, &str),
    list: &str,
    gone: &str,
) {
    let before = a.export().await;
    let c = a.sim.control();
    c.delete_object(kind, object);
    c.reset_requests();
    a.sync_now(id).await;
    let path = format!("/v1/mappings/{id}");
    let st = a.call(ADMIN_A, Method::GET, &path, None).await.1["state"].clone();
    assert_eq!(c.counters(), [(list.to_string(), 1)].into_iter().collect());
    assert_eq!(a.export().await, before);
    let why = format!(
        "not synced: {gone} any more (deleted in Pendo?); edit the mapping to pick another one, or delete it"
    );
    assert_eq!(
        (
            st["lastRun"]["outcome"].as_str(),
            st["lastRun"]["error"].as_str()
        ),
        (Some("failed"), Some(why.as_str()))
    );
}

/// Guides (issue 30): `GET /v1/discovery/guides` lists Pendo's guides of every app with their
/// steps and polls; a guide mapping's `guideId` is checked on save (refused naming the field,
/// nothing stored), and so is a completions metric, which only a guide of several steps has;
/// a guide deleted in Pendo leaves its mapping out of the next run, the list read once per run.
#[tokio::test]
async fn guides_are_listed_checked_on_save_and_a_deleted_one_leaves_its_mapping_out() {
    let a = &api().await;
    let sub = connected_with_every_company(a).await;
    let mut want: Vec<Value> = sub
        .guides
        .iter()
        .map(|g| {
            let polls: Vec<Value> = g
                .polls
                .iter()
                .map(|p| json!({"id": p.id, "type": p.kind.as_str(), "question": p.question}))
                .collect();
            json!({"id": g.id, "name": g.name, "appId": g.app_id, "state": "public",
                "steps": g.steps.len(), "polls": polls})
        })
        .collect();
    want.sort_by(|x, y| {
        (x["name"].as_str(), x["id"].as_str()).cmp(&(y["name"].as_str(), y["id"].as_str()))
    });
    assert!(want.len() >= 4);
    let (s, listed) = a
        .call(ADMIN_A, Method::GET, "/v1/discovery/guides", None)
        .await;
    assert_eq!((s, listed), (StatusCode::OK, Value::Array(want)));
    let pick = |several: bool| {
        sub.guides
            .iter()
            .find(|g| g.app_id == -323232 && (g.steps.len() > 1) == several)
            .unwrap()
            .id
            .clone()
    };
    let (tour, single) = (pick(true), pick(false));
    let c = a.sim.control();
    let body = |id: &str| {
        json!({"source": {"kind": "guide", "guideId": id, "completedMetric": "Tour completed"},
            "target": "company", "metricName": "Tour seen"})
    };
    c.reset_requests();
    for (id, field, message) in [
        (
            "no-such-guide",
            "source.guideId",
            "guide no-such-guide is not among the subscription's guides".to_string(),
        ),
        (
            single.as_str(),
            "source.completedMetric",
            format!("guide {single} has a single step: it is completed when seen, which the guide's metric counts already"),
        ),
    ] {
        let (s, e) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body(id)))
            .await;
        assert_eq!(
            (s, &e["error"]),
            (
                StatusCode::BAD_REQUEST,
                &json!({"code": "invalid", "field": field, "message": message})
            )
        );
    }
    assert_eq!(mappings(a).await, json!([]), "nothing stored");
    let (s, m) = a
        .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body(&tour)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        (&m["source"], &m["metricNames"]),
        (
            &json!({"kind": "guide", "guideId": tour, "advancedMetric": null,
                "dismissedMetric": null, "completedMetric": "Tour completed"}),
            &json!(["Tour seen", "Tour completed"])
        )
    );
    assert_eq!(
        c.counters(),
        [("/api/v1/guide".to_string(), 3)].into_iter().collect()
    );
    let id = m["id"].as_str().unwrap().to_string();
    c.reset_requests();
    synced(a, &id).await;
    // The guide listed once at planning; one call per day of the week.
    assert_eq!(
        c.counters(),
        [
            ("/api/v1/guide".to_string(), 1),
            ("/api/v1/aggregation".to_string(), 7)
        ]
        .into_iter()
        .collect()
    );
    assert!(a
        .export()
        .await
        .iter()
        .any(|r| r.metric == "Tour completed"));
    let gone = format!("guide {tour} is not among the subscription's guides");
    deleted_leaves_it_out(a, &id, (ObjectKind::Guide, &tour), "/api/v1/guide", &gone).await;
}

/// Polls (issue 30): a poll mapping's poll is checked against its guide's polls on save, and
/// its options against the poll's type (a trailing window only for the NPS of companies, a
/// mean only for another poll), each refused naming its field with nothing stored.
#[tokio::test]
async fn a_poll_mapping_is_checked_against_its_guides_polls_and_its_polls_type() {
    let a = &api().await;
    a.connect_for_a_week(ADMIN_A).await;
    let body = |target: &str, source: Value| json!({"source": source, "target": target, "metricName": "NPS"});
    let nps = |extra: Value| {
        let mut s =
            json!({"kind": "poll", "guideId": "guide-nps-survey", "pollId": "poll-nps-rating"});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };
    let refused = [
        (
            body(
                "company",
                json!({"kind": "poll", "guideId": "guide-nps-survey", "pollId": "poll-x"}),
            ),
            "source.pollId",
            "poll poll-x of guide guide-nps-survey is not among the guide's polls",
        ),
        (
            body("company", nps(json!({"meanMetric": "Mean"}))),
            "source.meanMetric",
            "an NPS poll has no mean: its metric is the NPS (on end users, their rating)",
        ),
        (
            body("endUser", nps(json!({"windowDays": 30}))),
            "source.windowDays",
            "only the NPS of companies, assets or projects has a trailing window (this poll is NPSRating, on end users)",
        ),
        (
            body(
                "company",
                json!({"kind": "poll", "guideId": "guide-quick-feedback",
                    "pollId": "poll-quick-feedback", "windowDays": 30}),
            ),
            "source.windowDays",
            "only the NPS of companies, assets or projects has a trailing window (this poll is PositiveNegative, on companies)",
        ),
        (
            body("company", nps(json!({"windowDays": 0}))),
            "source.windowDays",
            "must be 1 to 366 days",
        ),
    ];
    for (b, field, message) in refused {
        let (s, e) = a.call(ADMIN_A, Method::POST, "/v1/mappings", Some(b)).await;
        assert_eq!(
            (s, &e["error"]),
            (
                StatusCode::BAD_REQUEST,
                &json!({"code": "invalid", "field": field, "message": message})
            )
        );
    }
    assert_eq!(mappings(a).await, json!([]), "nothing stored");
    let (s, m) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(body(
                "company",
                nps(json!({"windowDays": 30, "responsesMetric": "NPS responses"})),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["metricNames"], json!(["NPS", "NPS responses"]));
}
