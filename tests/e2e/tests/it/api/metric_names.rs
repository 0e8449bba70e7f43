//! Metric names (issue 32, defect 7): one rule for every kind — a mapping that writes one metric
//! writes it under its metric name; one that writes several (PES components, report columns,
//! aggregation fields) names each "{metric name} - {part}". The mapping shows the names
//! (`metricNames`), the stored values carry them, and names that differ only by case are refused.

use super::*;

async fn create(a: &Api, body: Value) -> (StatusCode, Value) {
    a.call(ADMIN_A, Method::POST, "/v1/mappings", Some(body))
        .await
}

#[tokio::test]
async fn every_kind_names_its_metrics_one_way_and_stores_them_so() {
    let a = &api().await;
    let mapping = super::runs::tenant(a).await; // "Clicks", a Feature mapping to companies
    let report = json!({"source": {"kind": "report", "reportId": "rpt-account-30d", "columns": [
        {"field": "numEvents", "metric": "Events 30d"}, {"field": "numVisitors", "metric": "Visitors 30d"}]},
        "target": "company", "metricName": "Account"});
    let (s, r) = create(a, report).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        r["metricNames"],
        json!(["Account - Events 30d", "Account - Visitors 30d"])
    );
    let one_column = json!({"source": {"kind": "report", "reportId": "rpt-account-30d", "columns": [
        {"field": "numEvents", "metric": "Events 30d"}]}, "target": "company", "metricName": "Events (30 days)"});
    let (s, r) = create(a, one_column).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["metricNames"], json!(["Events (30 days)"]));
    let pes = json!({"source": {"kind": "pes", "appId": -323232, "components": ["score", "adoption"]},
        "target": "company", "metricName": "Engagement"});
    let (s, r) = create(a, pes).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        r["metricNames"],
        json!(["Engagement - PES", "Engagement - Adoption"])
    );
    let (_, clicks) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/mappings/{mapping}"),
            None,
        )
        .await;
    assert_eq!(clicks["metricNames"], json!(["Clicks"]));

    // Names that differ only by case are one metric to a reader: refused, nothing stored.
    for (body, field) in [
        (
            json!({"source": {"kind": "feature", "featureId": a.feature()}, "target": "company", "metricName": "clicks"}),
            "metricName",
        ),
        (
            json!({"source": {"kind": "report", "reportId": "rpt-account-30d", "columns": [
                {"field": "numEvents", "metric": "Events"}, {"field": "numVisitors", "metric": "EVENTS"}]},
                "target": "company", "metricName": "Other"}),
            "source.columns[1].metric",
        ),
    ] {
        let (s, e) = create(a, body).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{e}"
        );
    }
    let (_, all) = a.call(ADMIN_A, Method::GET, "/v1/mappings", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(4));

    // Synced: the stored metrics carry exactly those names.
    let (s, r) = a.call(ADMIN_A, Method::POST, "/v1/resync", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    a.drain().await;
    let mut stored: Vec<String> = a.export().await.into_iter().map(|r| r.metric).collect();
    stored.sort();
    stored.dedup();
    assert_eq!(
        stored,
        [
            "Account - Events 30d",
            "Account - Visitors 30d",
            "Clicks",
            "Engagement - Adoption",
            "Engagement - PES",
            "Events (30 days)"
        ]
    );
}
