//! Directory upserts that never rewrite another end user, per-row errors in the product's words,
//! the routes that need a Pendo connection, and error fields as JSON paths of the request body.

use super::*;

async fn end_users(a: &Api, token: &str, items: Value) -> Value {
    let (s, r) = a
        .call(
            token,
            Method::PUT,
            "/v1/directory/end-users",
            Some(json!({ "items": items })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

async fn listed(a: &Api) -> Vec<(String, Option<String>, Option<String>)> {
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().map(str::to_string);
            (s("id").unwrap(), s("externalId"), s("email"))
        })
        .collect()
}

#[tokio::test]
async fn a_directory_upsert_never_rewrites_another_end_user() {
    let a = api().await;
    a.companies(&["acct-0001", "acct-0002"]).await;
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0001", "externalId": "v00001", "email": "ann@x.io"}]),
    )
    .await;
    assert_eq!(r, json!({"accepted": 1, "errors": []}));
    let before = listed(&a).await;
    assert_eq!(
        before,
        vec![(
            "acct-0001|x:v00001".to_string(),
            Some("v00001".to_string()),
            Some("ann@x.io".to_string())
        )]
    );
    // Another external id with v00001's email (any case): refused, naming both; nothing changes.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0001", "externalId": "dupC", "email": "Ann@X.io"}]),
    )
    .await;
    assert_eq!(
        r,
        json!({"accepted": 0, "errors": [{"index": 0, "field": "email",
            "message": "email ann@x.io already belongs to end user v00001 of company acct-0001, not to end user dupC; nothing was changed"}]})
    );
    assert_eq!(listed(&a).await, before);
    // The same email in another company is another user's.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0002", "externalId": "dupC", "email": "ann@x.io"}]),
    )
    .await;
    assert_eq!(r["accepted"], 1);
    // Matched on the external id: its fields are replaced, its id stays.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0001", "externalId": "v00001", "email": "ann@new.io", "name": "Ann"}]),
    )
    .await;
    assert_eq!(r, json!({"accepted": 1, "errors": []}));
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    assert_eq!(
        list[0],
        json!({"id": "acct-0001|x:v00001", "companyId": "acct-0001", "externalId": "v00001",
            "email": "ann@new.io", "name": "Ann", "surname": null})
    );
}

#[tokio::test]
async fn a_batch_names_each_end_user_once_and_every_row_error_names_its_field() {
    let a = api().await;
    a.companies(&["c1"]).await;
    let r = end_users(
        &a,
        ADMIN_A,
        json!([
            {"companyId": "c1", "externalId": "v1", "email": "bo@x.io"},
            {"companyId": "c1", "externalId": "v2", "email": "bo@x.io"},
            {"externalId": "v3"},
            {"companyId": null, "externalId": "v4"},
            {"companyId": "c1"},
            {"companyId": "c1", "externalId": "v1", "name": "Bo"},
            {"companyId": "c1", "externalId": 7},
            {"companyId": "c1", "externalId": "v5", "colour": "red"},
            "v6",
            {"companyId": "c1", "email": "cy@x.io"},
        ]),
    )
    .await;
    let same = |row: usize, what: &str, v: &str| {
        format!("row {row} of this batch already gives {what} {v} in company c1; a batch names each end user once")
    };
    assert_eq!(
        r,
        json!({"accepted": 2, "errors": [
            {"index": 1, "field": "email", "message": same(0, "email", "bo@x.io")},
            {"index": 2, "field": "companyId", "message": "is required"},
            {"index": 3, "field": "companyId", "message": "must be a string"},
            {"index": 4, "field": "externalId", "message": "an external id or an email is required"},
            {"index": 5, "field": "externalId", "message": same(0, "external id", "v1")},
            {"index": 6, "field": "externalId", "message": "must be a string"},
            {"index": 7, "field": "colour", "message": "unknown field 'colour'"},
            {"index": 8, "field": null, "message": "each item must be a JSON object"},
        ]})
    );
    assert_eq!(
        listed(&a).await,
        vec![
            (
                "c1|e:cy@x.io".to_string(),
                None,
                Some("cy@x.io".to_string())
            ),
            (
                "c1|x:v1".to_string(),
                Some("v1".to_string()),
                Some("bo@x.io".to_string())
            ),
        ]
    );
    // Rows apply in order: v2 cannot take bo@x.io before a later row moves v1 off it.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([
            {"companyId": "c1", "externalId": "v2", "email": "bo@x.io"},
            {"companyId": "c1", "externalId": "v1", "email": "bo@y.io"},
            {"companyId": "c1", "externalId": "v2", "email": "bo@x.io"},
        ]),
    )
    .await;
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["errors"][0]["index"], 0);
    assert_eq!(
        r["errors"][0]["message"],
        "email bo@x.io already belongs to end user v1 of company c1, not to end user v2; nothing was changed"
    );
    assert_eq!(r["errors"][1]["message"], same(0, "external id", "v2"));
    let text = a
        .raw(
            Some(ADMIN_A),
            Method::PUT,
            "/v1/directory/end-users",
            Some(
                json!({"items": [{"companyId": "c1", "externalId": "v9", "email": "bo@y.io"}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .1;
    assert!(
        !text.contains("UNIQUE") && !text.contains("constraint"),
        "{text}"
    );
    assert!(text.contains("already belongs to end user v1"), "{text}");
}

/// Every documented route, a request that reaches its handler, and whether it needs a Pendo
/// connection.
fn connection_routes() -> Vec<(Method, &'static str, String, Option<Value>, bool)> {
    let mapping = json!({"source": {"kind": "feature", "featureId": "f1"}, "target": "company", "metricName": "Clicks"});
    vec![
        (
            Method::GET,
            "/v1/integration",
            "/v1/integration".into(),
            None,
            false,
        ),
        (
            Method::PUT,
            "/v1/integration/connection",
            "/v1/integration/connection".into(),
            Some(json!({"key": "bad-key-12345678", "domain": "app.pendo.io"})),
            false,
        ),
        (
            Method::DELETE,
            "/v1/integration/connection",
            "/v1/integration/connection".into(),
            None,
            true,
        ),
        (
            Method::PATCH,
            "/v1/integration/settings",
            "/v1/integration/settings".into(),
            Some(json!({"daysToSync": 30})),
            true,
        ),
        (Method::GET, "/v1/apps", "/v1/apps".into(), None, true),
        (
            Method::PUT,
            "/v1/apps/{appId}",
            "/v1/apps/42".into(),
            Some(json!({"prefix": "Web"})),
            true,
        ),
        (
            Method::DELETE,
            "/v1/apps/{appId}",
            "/v1/apps/42".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/segments",
            "/v1/segments".into(),
            None,
            true,
        ),
        (
            Method::PUT,
            "/v1/segments/{segmentId}",
            "/v1/segments/seg1".into(),
            Some(json!({"name": "Paid"})),
            true,
        ),
        (
            Method::DELETE,
            "/v1/segments/{segmentId}",
            "/v1/segments/seg1".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/pages",
            "/v1/discovery/pages".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/features",
            "/v1/discovery/features".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/track-types",
            "/v1/discovery/track-types".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/guides",
            "/v1/discovery/guides".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/segments",
            "/v1/discovery/segments".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/reports",
            "/v1/discovery/reports".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/discovery/reports/{reportId}/columns",
            "/v1/discovery/reports/r1/columns".into(),
            None,
            true,
        ),
        (
            Method::POST,
            "/v1/discovery/aggregation-fields",
            "/v1/discovery/aggregation-fields".into(),
            Some(json!({"pipeline": []})),
            false,
        ),
        // Running a pipeline needs Pendo (checking it does not).
        (
            Method::POST,
            "/v1/discovery/pipeline-check",
            "/v1/discovery/pipeline-check".into(),
            Some(json!({"pipeline": [
                {"source": {"events": null, "timeSeries": {"period": "dayRange", "first": "now()", "count": 1}}},
                {"select": {"accountId": "accountId", "n": "numEvents"}}
            ]})),
            true,
        ),
        (
            Method::GET,
            "/v1/mappings",
            "/v1/mappings".into(),
            None,
            false,
        ),
        (
            Method::POST,
            "/v1/mappings",
            "/v1/mappings".into(),
            Some(mapping.clone()),
            true,
        ),
        (
            Method::GET,
            "/v1/mappings/{mappingId}",
            "/v1/mappings/m1".into(),
            None,
            false,
        ),
        (
            Method::PUT,
            "/v1/mappings/{mappingId}",
            "/v1/mappings/m1".into(),
            Some(mapping),
            true,
        ),
        (
            Method::DELETE,
            "/v1/mappings/{mappingId}",
            "/v1/mappings/m1".into(),
            None,
            false,
        ),
        (
            Method::POST,
            "/v1/mappings/{mappingId}/sync",
            "/v1/mappings/m1/sync".into(),
            None,
            true,
        ),
        (
            Method::POST,
            "/v1/mappings/{mappingId}/rebuild",
            "/v1/mappings/m1/rebuild".into(),
            None,
            true,
        ),
        (Method::POST, "/v1/resync", "/v1/resync".into(), None, true),
        (
            Method::DELETE,
            "/v1/resync",
            "/v1/resync".into(),
            None,
            true,
        ),
        (Method::GET, "/v1/runs", "/v1/runs".into(), None, false),
        (
            Method::GET,
            "/v1/runs/{runId}",
            "/v1/runs/r1".into(),
            None,
            false,
        ),
        (
            Method::PUT,
            "/v1/directory/{kind}",
            "/v1/directory/companies".into(),
            Some(json!({"items": []})),
            false,
        ),
        (
            Method::GET,
            "/v1/directory/{kind}",
            "/v1/directory/companies".into(),
            None,
            false,
        ),
        (
            Method::GET,
            "/v1/discovery/apps",
            "/v1/discovery/apps".into(),
            None,
            true,
        ),
        (
            Method::DELETE,
            "/v1/directory/{kind}/{id}",
            "/v1/directory/companies/c1".into(),
            None,
            false,
        ),
        (
            Method::POST,
            "/v1/imports",
            "/v1/imports".into(),
            Some(json!({"dryRun": true})),
            true,
        ),
        (
            Method::GET,
            "/v1/imports",
            "/v1/imports".into(),
            None,
            false,
        ),
        (
            Method::GET,
            "/v1/mappings/{mappingId}/unmatched",
            "/v1/mappings/m-1/unmatched".into(),
            None,
            true,
        ),
        (
            Method::POST,
            "/v1/mappings/{mappingId}/recover",
            "/v1/mappings/m-1/recover".into(),
            None,
            true,
        ),
        (
            Method::POST,
            "/v1/recover",
            "/v1/recover".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/unmatched",
            "/v1/unmatched".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/v1/imports/{importId}",
            "/v1/imports/i-unknown".into(),
            None,
            false,
        ),
        (
            Method::GET,
            "/v1/objects/{kind}/{id}/metrics",
            "/v1/objects/company/c1/metrics".into(),
            None,
            false,
        ),
        (
            Method::GET,
            "/v1/objects/{kind}/{id}/series",
            "/v1/objects/company/c1/series?metric=Clicks&from=2026-11-01&to=2026-11-02".into(),
            None,
            false,
        ),
        (
            Method::GET,
            "/v1/objects/{kind}/{id}/activity",
            "/v1/objects/company/c1/activity".into(),
            None,
            false,
        ),
        (
            Method::GET,
            "/v1/objects/{kind}/{id}/system",
            "/v1/objects/company/c1/system".into(),
            None,
            true,
        ),
        (Method::GET, "/v1/me", "/v1/me".into(), None, false),
        (
            Method::GET,
            "/v1/choices",
            "/v1/choices".into(),
            None,
            false,
        ),
    ]
}

#[tokio::test]
async fn before_connecting_every_route_that_needs_a_connection_answers_409() {
    let a = api().await;
    // The table covers every documented route, so a new one must say whether it needs one.
    let (_, doc) = pendo_sync::api::documented();
    let mut documented = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        for (m, op) in [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_some() {
                documented.push(format!("{m} {path}"));
            }
        }
    }
    let mut listed: Vec<String> = connection_routes()
        .iter()
        .map(|(m, p, ..)| format!("{m} {p}"))
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(listed, documented);

    let (s, i) = a.call(ADMIN_A, Method::GET, "/v1/integration", None).await;
    assert_eq!(
        (s, i["status"].as_str()),
        (StatusCode::OK, Some("notConnected"))
    );
    let mut refused = 0;
    for (m, _, path, body, needs) in connection_routes() {
        let (s, e) = a.call(ADMIN_A, m.clone(), &path, body).await;
        let answer = (
            s,
            e["error"]["code"].as_str(),
            e["error"]["message"].as_str(),
        );
        let want = (
            StatusCode::CONFLICT,
            Some("not_connected"),
            Some("connect Pendo first"),
        );
        if needs {
            assert_eq!(answer, want, "{m} {path}: {e}");
            refused += 1;
        } else {
            assert_ne!(answer.0, StatusCode::CONFLICT, "{m} {path}: {e}");
        }
    }
    assert_eq!(refused, 29);
    // Refused means refused: the tenant still has no integration.
    let (_, i) = a.call(ADMIN_A, Method::GET, "/v1/integration", None).await;
    assert_eq!(
        (i["status"].as_str(), i["daysToSync"].as_u64()),
        (Some("notConnected"), Some(90))
    );
    // Once connected, the same settings request goes through.
    a.connect(ADMIN_A).await;
    let (s, i) = a
        .call(
            ADMIN_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"daysToSync": 30})),
        )
        .await;
    assert_eq!((s, i["daysToSync"].as_u64()), (StatusCode::OK, Some(30)));
}

#[tokio::test]
async fn error_fields_are_json_paths_of_the_request_body() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let f = a.feature();
    let cases = [
        (
            json!({"source": {"kind": "feature", "featureId": ""}, "target": "company", "metricName": "x"}),
            "source.featureId",
        ),
        (
            json!({"source": {"kind": "page", "pageId": ""}, "target": "company", "metricName": "x"}),
            "source.pageId",
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f, "minutesMetric": " "}, "target": "company", "metricName": "x"}),
            "source.minutesMetric",
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f, "minutesMetric": "x"}, "target": "company", "metricName": "x"}),
            "source.minutesMetric",
        ),
        (
            json!({"source": {"kind": "report", "reportId": "", "columns": [{"field": "a", "metric": "b"}]}, "target": "company", "metricName": "x"}),
            "source.reportId",
        ),
        (
            json!({"source": {"kind": "pes", "appId": -323232, "components": []}, "target": "company", "metricName": "x"}),
            "source.components",
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": ""}),
            "metricName",
        ),
        (
            json!({"source": {"kind": "feature"}, "target": "company", "metricName": "x"}),
            "source.featureId",
        ),
        (
            json!({"source": {"kind": "report", "reportId": "r", "columns": [{"field": "a"}]}, "target": "company", "metricName": "x"}),
            // Within the tagged source serde's path stops at `source`: the message names the key.
            "source",
        ),
        (
            json!({"source": {"kind": "report", "reportId": "r", "columns": [{"field": "a", "metric": "m", "x": 1}]}, "target": "company", "metricName": "x"}),
            "source",
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f}, "metricName": "x"}),
            "target",
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": "x", "extra": 1}),
            "extra",
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f, "bogus": 1}, "target": "company", "metricName": "x"}),
            "source.bogus",
        ),
    ];
    for (body, field) in cases {
        let (s, e) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body.clone()))
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {e}"
        );
    }
}
