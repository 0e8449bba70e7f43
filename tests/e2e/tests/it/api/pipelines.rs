//! Aggregation pipelines that cannot work are never saved (issue 32, defects 2 and 3): a stage
//! or source Pendo does not know is refused naming it, a feature or page the pipeline names must
//! be one Pendo lists, the pipeline is run once for one day before it is saved (a pipeline Pendo
//! refuses is refused with Pendo's message), and the page's live check and the server's are one
//! check, aware of the target. The dry run shows its rows, fields and a sample.

use super::*;
use pendo_sync::pendo::pipelines::{custom_time_series, source_time_series};

fn pipeline(source: Value, last: Value) -> Value {
    json!([
        {"source": source},
        {"group": {"group": ["visitorId"], "fields": {"n": {"sum": "numEvents"},
            "accountId": {"first": "accountId"}}}},
        last
    ])
}

fn with_ts(mut src: Value) -> Value {
    src["timeSeries"] = json!({"period": "dayRange", "first": "now()", "count": 1});
    src
}

fn mapping(p: &Value) -> Value {
    json!({"source": {"kind": "aggregation", "pipeline": p, "fields": [{"field": "n", "metric": "n"}]},
        "target": "company", "metricName": "Events"})
}

#[tokio::test]
async fn a_pipeline_that_cannot_work_is_refused_on_save_naming_why() {
    let a = &api().await;
    a.connect_for_a_week(ADMIN_A).await;
    let select = json!({"select": {"accountId": "accountId", "n": "n"}});
    let page = a.sim.subscription().pages[0].id.clone();
    let cases = [
        (
            // A typo: refused before any Pendo call.
            json!([{"source": with_ts(json!({"events": null}))},
                {"grup": {"group": ["accountId"], "fields": {"n": {"sum": "numEvents"}}}}]),
            "source.pipeline[1]",
            "'grup' is not a stage Pendo knows: did you mean 'group'?".to_string(),
            0,
        ),
        (
            // A page Pendo does not list: the page list is read once.
            pipeline(with_ts(json!({"pageEvents": {"pageId": "no-such-page"}})), select.clone()),
            "source.pipeline",
            "page no-such-page, named in the pipeline, is not among the subscription's pages"
                .to_string(),
            2,
        ),
        (
            // Known to Pendo's language but refused when run (the simulator does not run
            // `treeify`): Pendo's own message, from the one-day run.
            pipeline(with_ts(json!({"events": null})), json!({"treeify": {}})),
            "source.pipeline",
            "Pendo refused the pipeline when it was run for 2026-11-04: unknown pipeline operator \"treeify\"".to_string(),
            1,
        ),
    ];
    for (p, field, message, calls) in cases {
        a.sim.control().reset_requests();
        let (s, e) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(mapping(&p)))
            .await;
        assert_eq!(
            (
                s,
                e["error"]["field"].as_str(),
                e["error"]["message"].as_str()
            ),
            (StatusCode::BAD_REQUEST, Some(field), Some(message.as_str())),
            "{p}"
        );
        let made: u64 = a.sim.control().counters().values().sum();
        assert!(made <= calls, "{p}: {made} Pendo calls");
    }
    let (_, all) = a.call(ADMIN_A, Method::GET, "/v1/mappings", None).await;
    assert_eq!(all, json!([]), "nothing saved");

    // The page's pipeline is good: saved.
    let good = pipeline(
        with_ts(json!({"pageEvents": {"pageId": page}})),
        select.clone(),
    );
    let (s, m) = a
        .call(ADMIN_A, Method::POST, "/v1/mappings", Some(mapping(&good)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
}

#[tokio::test]
async fn the_live_check_knows_the_target_and_the_dry_run_shows_a_day_of_rows() {
    let a = &api().await;
    a.connect_for_a_week(ADMIN_A).await;
    // An output without accountId: fine alone, refused for a company target — the same
    // answer the save gives.
    let no_account = pipeline(
        with_ts(json!({"events": null})),
        json!({"select": {"visitorId": "visitorId", "n": "n"}}),
    );
    let check = |body: Value| {
        let a = &a;
        async move {
            a.call(
                ADMIN_A,
                Method::POST,
                "/v1/discovery/aggregation-fields",
                Some(body),
            )
            .await
        }
    };
    assert_eq!(
        check(json!({"pipeline": no_account})).await,
        (StatusCode::OK, json!(["n"]))
    );
    let (s, live) = check(json!({"pipeline": no_account, "target": "company"})).await;
    let (s2, saved) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(mapping(&no_account)),
        )
        .await;
    assert_eq!((s, s2), (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST));
    assert_eq!(
        live["error"]["message"],
        json!("the output must include 'accountId' (the company id)")
    );
    assert_eq!(live["error"]["message"], saved["error"]["message"]);
    // The field, from the body's root here and from the mapping's there.
    assert_eq!(
        (&live["error"]["field"], &saved["error"]["field"]),
        (
            &json!("pipeline[2].select"),
            &json!("source.pipeline[2].select")
        )
    );

    // The dry run: one Pendo call for the last complete New York day.
    let good = pipeline(
        with_ts(json!({"events": null})),
        json!({"select": {"accountId": "accountId", "n": "n"}}),
    );
    a.sim.control().reset_requests();
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/discovery/pipeline-check",
            Some(json!({"pipeline": good, "target": "company"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let day = pendo_sync::time::last_complete_day(a.clock.now_value(), Some(NY));
    let mut expected = good.clone();
    expected[0]["source"]["timeSeries"] =
        custom_time_series(source_time_series(good.as_array().unwrap()), day, Some(NY));
    let rows = a
        .sim
        .run_aggregation(&json!({"request": {"pipeline": expected}}))
        .unwrap();
    assert!(rows.len() > 5, "{} rows", rows.len());
    assert_eq!(
        r,
        json!({"fields": ["n"], "trial": {"day": day.to_string(), "rows": rows.len(),
            "outputFields": ["accountId", "n"], "sample": rows[..5]}})
    );
    assert_eq!(a.sim.control().counters().values().sum::<u64>(), 1);
}
