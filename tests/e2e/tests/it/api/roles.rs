//! Roles (issue 32, defect 10), table by table: every route of `api::roles::RULES` that needs
//! an admin refuses a member (403, "only an admin can …") and changes nothing — no setting, no
//! mapping, no directory entry, no queued message, no Pendo call — and every member route
//! lets a member through.

use super::*;
use pendo_sync::api::roles::RULES;

/// The route's path with its parameters filled in from tenant A's objects.
fn concrete(path: &str, mapping: &str) -> String {
    path.replace("{appId}", "-323232")
        .replace("{segmentId}", "seg-pro")
        .replace("{kind}", "companies")
        .replace("{id}", "c1")
        .replace("{mappingId}", mapping)
}

/// A body the route would accept from an admin.
fn body(method: &str, path: &str, a: &Api) -> Option<Value> {
    Some(match (method, path) {
        ("PUT", "/v1/integration/connection") => json!({"key": KEY, "domain": "app.pendo.io"}),
        ("PATCH", "/v1/integration/settings") => json!({"timezone": "Europe/Paris"}),
        ("PUT", "/v1/apps/{appId}") => json!({"prefix": "web"}),
        ("PUT", "/v1/segments/{segmentId}") => json!({"name": "Renamed"}),
        ("PUT", "/v1/directory/{kind}") => json!({"items": [{"externalId": "c9"}]}),
        ("POST", "/v1/imports") => json!({"kinds": ["companies"], "dryRun": true}),
        ("POST", "/v1/mappings") => {
            json!({"source": {"kind": "feature", "featureId": a.feature()}, "target": "company", "metricName": "Taps"})
        }
        ("PUT", "/v1/mappings/{mappingId}") => {
            json!({"source": {"kind": "feature", "featureId": a.feature()}, "target": "company", "metricName": "Clicks"})
        }
        ("POST", "/v1/discovery/aggregation-fields" | "/v1/discovery/pipeline-check") => {
            json!({"pipeline": [
                {"source": {"events": null, "timeSeries": {"period": "dayRange", "first": "now()", "count": 1}}},
                {"select": {"accountId": "accountId", "metric1": "numEvents"}}
            ]})
        }
        _ => return None,
    })
}

/// What a member could have changed: the configuration (`configured`), the runs, the imports.
async fn everything(a: &Api) -> Vec<Value> {
    let mut out = configured(a, ADMIN_A).await;
    for path in ["/v1/runs", "/v1/imports"] {
        out.push(a.call(ADMIN_A, Method::GET, path, None).await.1);
    }
    out
}

#[tokio::test]
async fn a_member_is_refused_every_admin_route_and_changes_nothing() {
    let a = &api().await;
    let mapping = super::runs::tenant(a).await;
    a.companies(&["c1"]).await;
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/segments/seg-pro",
            Some(json!({"name": "Trial"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let before = everything(a).await;
    let calls = a.sim.control().counters();
    let mut refused = 0;
    for r in RULES.iter().filter(|r| r.needs == Role::Admin) {
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let path = concrete(r.path, &mapping);
        let (s, e) = a
            .call(MEMBER_A, method.clone(), &path, body(r.method, r.path, a))
            .await;
        assert_eq!(
            (s, e["error"]["message"].as_str()),
            (
                StatusCode::FORBIDDEN,
                Some(&*format!("only an admin can {}", r.what))
            ),
            "{method} {path}"
        );
        // Without a token it is 401, as on every route.
        let (s, _) = a.raw(None, method, &path, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        refused += 1;
    }
    assert_eq!(refused, 13);
    assert_eq!(everything(a).await, before);
    assert_eq!(a.sim.control().counters(), calls, "no Pendo call");
    assert!(a.queue.receive().unwrap().is_none(), "no queued message");
}

#[tokio::test]
async fn a_member_creates_edits_syncs_rebuilds_and_recovers_mappings() {
    let a = &api().await;
    let mapping = super::runs::tenant(a).await;
    let mut let_through = 0;
    for r in RULES.iter().filter(|r| r.needs == Role::Member) {
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let path = concrete(r.path, &mapping);
        let (s, v) = a
            .call(MEMBER_A, method.clone(), &path, body(r.method, r.path, a))
            .await;
        // Recover has nothing to recover here: its answer is the app's, not a refusal.
        let nothing = r.path.ends_with("/recover") && s == StatusCode::CONFLICT;
        assert!(
            s.is_success() || nothing,
            "{method} {path}: a member may {}: {s} {v}",
            r.what
        );
        let_through += 1;
    }
    assert_eq!(let_through, 8);
}
