//! Recover all (issue 32): one click starts a recovery for every mapping whose unused rows
//! belong to companies the directory now holds — exactly the mappings with days to recover,
//! one run each — and answers 409 when there is nothing to recover.

use super::*;

#[tokio::test]
async fn recover_all_starts_one_recovery_per_mapping_with_days_to_recover() {
    let a = &api().await;
    a.connect_for_a_week(ADMIN_A).await;
    let sub = a.sim.subscription();
    let all: Vec<&str> = sub.accounts.iter().map(|c| c.id.as_str()).collect();
    // Two companies left out of the directory; two mappings use their rows, a third is off.
    let (kept, left) = all.split_at(all.len() - 2);
    a.companies(kept).await;
    let mut features: Vec<_> = sub
        .features
        .iter()
        .filter(|f| f.app_id == -323232)
        .collect();
    features.sort_by(|x, y| y.popularity.total_cmp(&x.popularity).then(x.id.cmp(&y.id)));
    for (f, name, enabled) in [
        (&features[0].id, "Clicks", true),
        (&features[1].id, "Taps", true),
        (&features[2].id, "Off", false),
    ] {
        let body = json!({"source": {"kind": "feature", "featureId": f}, "target": "company",
            "metricName": name, "enabled": enabled});
        let (s, m) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
    }
    assert_eq!(
        a.call(ADMIN_A, Method::POST, "/v1/resync", None).await.0,
        StatusCode::ACCEPTED
    );
    a.drain().await;
    let has = |rows: &[pendo_sync::domain::ExportRow], c: &str, metric: &str| {
        rows.iter().any(|r| r.object_id == c && r.metric == metric)
    };
    let before = a.export().await;
    assert!(!left.iter().any(|c| has(&before, c, "Clicks")));

    // Nothing the directory resolves yet: nothing to recover.
    let recover = || async { a.call(ADMIN_A, Method::POST, "/v1/recover", None).await };
    let (s, e) = recover().await;
    assert_eq!(
        (s, e["error"]["message"].as_str()),
        (StatusCode::CONFLICT, Some("nothing to recover: no mapping could not use rows of a company or end user the directory holds now"))
    );

    // The two companies join the directory: one recovery for each enabled mapping.
    a.companies(left).await;
    let (s, r) = recover().await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let mut names: Vec<&str> = r["started"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["metricName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!((names, &r["left"]), (vec!["Clicks", "Taps"], &json!([])));
    a.drain().await;
    let after = a.export().await;
    for c in left {
        for metric in ["Clicks", "Taps"] {
            assert!(has(&after, c, metric), "{c} {metric}");
        }
    }
    // Done: nothing left to recover.
    assert_eq!(recover().await.0, StatusCode::CONFLICT);
}
