//! `DELETE /_sim/objects/{kind}/{id}`: an object deleted as in Pendo leaves its list, a deleted
//! report's results answer 404, a deleted feature has no events any more; the others stay.

mod common;

use common::{envelope, post_agg, spawn, tiny_nov5, KEY};
use serde_json::{json, Value};

#[tokio::test]
async fn deleted_objects_leave_their_lists_and_their_events() {
    let (sim, running) = spawn(tiny_nov5()).await;
    let base = running.base_url();
    let c = common::client();
    let get = |path: String| {
        c.get(format!("{base}{path}"))
            .header("x-pendo-integration-key", KEY)
            .send()
    };
    let ids = |v: Vec<Value>| -> Vec<String> {
        v.iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let sub = sim.subscription();
    let feature = sub.features[0].id.clone();
    let other = sub.features[1].id.clone();
    let events = |id: String| {
        envelope(json!([
            {"source": {"featureEvents": {"featureId": id, "appId": "expandAppIds(\"*\")"},
                "timeSeries": {"period": "dayRange", "first": "now()", "count": -30}}},
            {"group": {"group": ["featureId"], "fields": [{"n": {"sum": "numEvents"}}]}}
        ]))
    };
    let results = |id: String| {
        let base = base.clone();
        async move {
            let r: Value = post_agg(&base, Some(KEY), &events(id))
                .await
                .json()
                .await
                .unwrap();
            r["results"].as_array().unwrap().len()
        }
    };
    assert_eq!(results(feature.clone()).await, 1);
    let before: Vec<String> = ids(get("/api/v1/feature?expand=*".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    assert!(before.contains(&feature));

    let del = |path: &str| c.delete(format!("{base}/_sim/objects/{path}")).send();
    let r: Value = del(&format!("feature/{feature}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"kind": "feature", "id": feature, "deleted": true})
    );
    let after = ids(get("/api/v1/feature?expand=*".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    let want: Vec<String> = before.iter().filter(|f| **f != feature).cloned().collect();
    assert_eq!(after, want);
    assert_eq!(results(feature.clone()).await, 0, "no events any more");
    assert_eq!(results(other).await, 1, "another feature keeps its events");

    for (kind, id, list) in [
        ("report", "rpt-visitor-7d", "/api/v1/report"),
        ("segment", "seg-pro", "/api/v1/segment"),
        ("page", sub.pages[0].id.as_str(), "/api/v1/page?expand=*"),
    ] {
        assert_eq!(del(&format!("{kind}/{id}")).await.unwrap().status(), 200);
        let listed = ids(get(list.into()).await.unwrap().json().await.unwrap());
        assert!(!listed.iter().any(|x| x == id), "{kind} {id} still listed");
    }
    assert_eq!(
        get("/api/v1/report/rpt-visitor-7d/results.json".into())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/api/v1/segment/seg-pro".into())
            .await
            .unwrap()
            .status(),
        404
    );
    // Deleting twice is no error; unknown objects and kinds are.
    let again: Value = del(&format!("feature/{feature}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["deleted"], false);
    assert_eq!(del("feature/nope").await.unwrap().status(), 404);
    assert_eq!(del("guide/x").await.unwrap().status(), 404);
    assert_eq!(del("visitor/x").await.unwrap().status(), 400);
    running.shutdown().await;
}
