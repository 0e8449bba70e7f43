//! The configurator HTTP API, through the real router (as `serve` and the Lambda run it),
//! against the Pendo simulator: every route's success and failure paths, tenant isolation,
//! masking, roles, size limits, unknown fields, and the OpenAPI document against the router.

use crate::helpers::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pendo_sim::{SimKey, Simulator};
use pendo_sync::api::auth::{Caller, TokenTable};
use pendo_sync::app::Role;
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::TenantId;
use pendo_sync::queue::embedded::{EmbeddedQueue, QueueSettings};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use pendo_sync::{App, Ports};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const ADMIN_A: &str = "admin-token-a-0123456789";
const MEMBER_A: &str = "member-token-a-0123456789";
const ADMIN_B: &str = "admin-token-b-0123456789";

struct Api {
    router: Router,
    app: Arc<App>,
    /// The app's store, to read what a use case stored.
    store: EmbeddedStore,
    clock: FixedClock,
    queue: EmbeddedQueue,
    sim: Simulator,
    _running: Vec<pendo_sim::RunningSim>,
}

/// The US domain goes to one simulator (key KEY, plus a read-only key), the EU domain to
/// another (key "eu-only-key-123").
async fn api() -> Api {
    let sim = Simulator::new(pendo_sim::SimConfig {
        keys: vec![SimKey::write(KEY), SimKey::read_only("read-only-key-1")],
        ..sim_config()
    });
    let eu = Simulator::new(pendo_sim::SimConfig {
        keys: vec![SimKey::write("eu-only-key-123")],
        ..sim_config()
    });
    let (us_run, eu_run) = (
        sim.spawn("127.0.0.1:0").await.unwrap(),
        eu.spawn("127.0.0.1:0").await.unwrap(),
    );
    let store = EmbeddedStore::in_memory().unwrap();
    let queue = EmbeddedQueue::new(
        &store,
        QueueSettings::with(5, std::time::Duration::from_millis(1)),
    );
    let clock = FixedClock::new(sim_config().now);
    let app = Arc::new(App::new(
        Ports::builder()
            .store(Arc::new(store.clone()))
            .queue(Arc::new(queue.clone()))
            .pendo_with("http://127.0.0.1:9", |c| {
                let hosts = &mut c.endpoints.per_domain;
                hosts.insert("app.pendo.io", us_run.base_url());
                hosts.insert("app.eu.pendo.io", eu_run.base_url());
                c.retry.max_attempts = 1;
            })
            .clock(Arc::new(clock.clone()))
            .build(),
    ));
    let mut tokens = TokenTable::default();
    let t = |s: &str| TenantId::parse(s).unwrap();
    tokens.insert(
        ADMIN_A,
        Caller {
            tenant: t("tenant-a"),
            role: Role::Admin,
        },
    );
    tokens.insert(
        MEMBER_A,
        Caller {
            tenant: t("tenant-a"),
            role: Role::Member,
        },
    );
    tokens.insert(
        ADMIN_B,
        Caller {
            tenant: t("tenant-b"),
            role: Role::Admin,
        },
    );
    let router = pendo_sync::api::router(app.clone(), Arc::new(tokens));
    Api {
        store,
        router,
        app,
        clock,
        queue,
        sim,
        _running: vec![us_run, eu_run],
    }
}

impl Api {
    async fn raw(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, text) = self
            .raw(
                Some(token),
                method,
                path,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn connect(&self, token: &str) {
        let (s, _) = self
            .call(
                token,
                Method::PUT,
                "/v1/integration/connection",
                Some(json!({"key": KEY, "domain": "app.pendo.io"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }

    /// Companies with these external ids in tenant A's directory (end users need theirs).
    async fn companies(&self, ids: &[&str]) {
        let items: Vec<Value> = ids.iter().map(|id| json!({"externalId": id})).collect();
        let (s, r) = self
            .call(
                ADMIN_A,
                Method::PUT,
                "/v1/directory/companies",
                Some(json!({ "items": items })),
            )
            .await;
        assert_eq!(
            (s, &r["accepted"]),
            (StatusCode::OK, &json!(ids.len())),
            "{r}"
        );
    }

    /// Connects, then syncs 7 days in New York time.
    async fn connect_for_a_week(&self, token: &str) {
        self.connect(token).await;
        self.call(
            token,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"daysToSync": 7, "timezone": "America/New_York"})),
        )
        .await;
    }

    /// Tenant A's stored values and activity.
    async fn export(&self) -> Vec<pendo_sync::domain::ExportRow> {
        let t = TenantId::parse("tenant-a").unwrap();
        self.store.export(Some(&t)).await.unwrap()
    }

    async fn drain(&self) {
        pendo_sync::worker::drain(self.app.clone(), self.queue.clone(), 2, Default::default())
            .await;
    }

    /// Sync now of mapping `id` by tenant A's admin, run to the end: its run's id.
    async fn sync_now(&self, id: &str) -> String {
        let path = format!("/v1/mappings/{id}/sync");
        let (s, r) = self.call(ADMIN_A, Method::POST, &path, None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{r}");
        self.drain().await;
        r["runId"].as_str().unwrap().to_string()
    }

    /// A Feature mapping to companies named "Clicks", created through the API: its id.
    async fn clicks_mapping(&self) -> String {
        let f = self.feature();
        let body = json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": "Clicks"});
        let (s, m) = self
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        m["id"].as_str().unwrap().to_string()
    }

    fn feature(&self) -> String {
        let mut f: Vec<_> = self
            .sim
            .subscription()
            .features
            .iter()
            .filter(|f| f.app_id == -323232)
            .collect();
        f.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
        f[0].id.clone()
    }
}

fn routes() -> Vec<(Method, String)> {
    let (_, doc) = pendo_sync::api::documented();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for (m, op) in [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_some() {
                out.push((m, concrete.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_but_health_needs_a_token_and_the_openapi_document_matches_the_router() {
    let a = api().await;
    let routes = routes();
    assert!(routes.len() >= 30, "{} routes documented", routes.len());
    for (m, path) in &routes {
        let (s, body) = a.raw(None, m.clone(), path, Some(b"{}".to_vec())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path}: {body}");
        let (s, body) = a
            .raw(
                Some("not-a-token-at-all-xx"),
                m.clone(),
                path,
                Some(b"{}".to_vec()),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path}: {body}");
        // With a token every documented route exists on the router (never the fallback).
        let (s, body) = a
            .raw(Some(ADMIN_A), m.clone(), path, Some(b"{}".to_vec()))
            .await;
        assert!(
            !body.contains("no_route") && !body.contains("method_not_allowed"),
            "{m} {path}: {s} {body}"
        );
        assert!(
            s.as_u16() < 500 || s == StatusCode::BAD_GATEWAY,
            "{m} {path}: {s} {body}"
        );
    }
    assert_eq!(
        a.raw(None, Method::GET, "/health", None).await.0,
        StatusCode::OK
    );
    let (s, doc) = a.call(ADMIN_A, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    assert_eq!(
        doc["paths"].as_object().unwrap().len(),
        pendo_sync::api::documented().1.paths.paths.len()
    );
    let (s, body) = a.call(ADMIN_A, Method::GET, "/v1/nope", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_route"))
    );
}

#[tokio::test]
async fn connecting_verifies_the_key_masks_it_and_saves_nothing_on_refusal() {
    let a = api().await;
    let cases = [
        ("wrong-key-0123456", "app.pendo.io", "pendo_key_rejected"),
        ("read-only-key-1", "app.pendo.io", "pendo_key_read_only"),
        ("eu-only-key-123", "app.pendo.io", "pendo_wrong_region"),
    ];
    for (key, domain, code) in cases {
        let (s, body) = a
            .call(
                ADMIN_A,
                Method::PUT,
                "/v1/integration/connection",
                Some(json!({"key": key, "domain": domain})),
            )
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{key}: {body}"
        );
        assert!(
            !body.to_string().contains(key),
            "the key never appears in a response"
        );
        let (_, i) = a.call(ADMIN_A, Method::GET, "/v1/integration", None).await;
        assert_eq!(i["status"], "notConnected", "nothing saved after {code}");
    }
    let (s, body) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/integration/connection",
            Some(json!({"key": KEY, "domain": "evil.example.com"})),
        )
        .await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("domain"))
    );
    let (s, body) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/integration/connection",
            Some(json!({"key": "eu-only-key-123", "domain": "app.eu.pendo.io"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["keyMasked"], "…-123");
    assert_eq!(body["domain"], "app.eu.pendo.io");
    a.connect(ADMIN_A).await;
    let (_, text) = a
        .raw(Some(ADMIN_A), Method::GET, "/v1/integration", None)
        .await;
    assert!(
        !text.contains(KEY) && text.contains("\"status\":\"active\""),
        "{text}"
    );
    // Defaults populated on connection.
    let (_, i) = a.call(ADMIN_A, Method::GET, "/v1/integration", None).await;
    assert_eq!(i["fieldMappings"]["companyId"], "accountId");
    assert_eq!(i["fieldMappings"]["endUserId"], "visitorId");
    assert_eq!(i["daysToSync"], 90);
    let (s, i) = a
        .call(ADMIN_A, Method::DELETE, "/v1/integration/connection", None)
        .await;
    assert_eq!(
        (s, i["status"].as_str(), i["keyMasked"].as_str()),
        (StatusCode::OK, Some("notConnected"), None)
    );
}

#[tokio::test]
async fn settings_validate_roles_and_unknown_fields_and_change_nothing_when_refused() {
    let a = api().await;
    let (s, _) = a
        .call(
            ADMIN_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"daysToSync": 30})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "connect first");
    a.connect(ADMIN_A).await;
    let cases = [
        (json!({"daysToSync": 0}), "daysToSync"),
        (json!({"daysToSync": 366}), "daysToSync"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (
            json!({"fieldMappings": {"endUserId": "-"}}),
            "fieldMappings.endUserId",
        ),
        (
            json!({"fieldMappings": {"email": "agent.email"}}),
            "fieldMappings.email",
        ),
        (
            json!({"fieldMappings": {"bogus": "x"}}),
            "fieldMappings.bogus",
        ),
        (json!({"color": "red"}), "color"),
        (json!({"daysToSync": "ten"}), "daysToSync"),
    ];
    for (body, field) in cases {
        let (s, e) = a
            .call(
                ADMIN_A,
                Method::PATCH,
                "/v1/integration/settings",
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {e}"
        );
    }
    let (s, e) = a
        .raw(
            Some(ADMIN_A),
            Method::PATCH,
            "/v1/integration/settings",
            Some(b"{not json".to_vec()),
        )
        .await;
    assert!(
        s == StatusCode::BAD_REQUEST && e.contains("bad_json"),
        "{e}"
    );
    let (s, e) = a
        .call(
            MEMBER_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"daysToSync": 30, "timezone": "Europe/Paris"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (_, i) = a.call(ADMIN_A, Method::GET, "/v1/integration", None).await;
    assert_eq!(
        (
            i["daysToSync"].as_u64(),
            i["timezone"].as_str(),
            i["resyncRequired"].as_bool()
        ),
        (Some(90), None, Some(false))
    );
    // The settings are an admin's: a member changes none of them (see api/roles.rs).
    let (s, e) = a
        .call(
            MEMBER_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"timezone": "Europe/Paris"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["message"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("only an admin can change the settings")
        )
    );
    let (s, i) = a.call(ADMIN_A, Method::PATCH, "/v1/integration/settings", Some(json!({"timezone": "Europe/Paris", "fieldMappings": {"email": "metadata.agent.email", "endUserId": "-"}}))).await;
    assert_eq!(s, StatusCode::OK, "{i}");
    // Nothing synced yet: no re-sync asked (issue 32).
    assert_eq!(
        (i["timezone"].as_str(), i["resyncRequired"].as_bool()),
        (Some("Europe/Paris"), Some(false))
    );
    assert_eq!(
        (
            i["fieldMappings"]["email"].as_str(),
            i["fieldMappings"]["endUserId"].as_str()
        ),
        (Some("visitor.metadata.agent.email"), Some("-"))
    );
    let (s, i) = a
        .call(
            ADMIN_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"daysToSync": 30})),
        )
        .await;
    assert_eq!((s, i["daysToSync"].as_u64()), (StatusCode::OK, Some(30)));
    let big = vec![b' '; pendo_sync::api::MAX_BODY_BYTES + 1];
    let (s, e) = a
        .raw(
            Some(ADMIN_A),
            Method::PATCH,
            "/v1/integration/settings",
            Some(big),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
}

#[tokio::test]
async fn apps_and_segments_tables() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    for id in ["-323232", "unknown"] {
        let (s, e) = a
            .call(ADMIN_A, Method::DELETE, &format!("/v1/apps/{id}"), None)
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict")),
            "{id}"
        );
    }
    let (s, rows) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/apps/5629499534213120",
            Some(json!({"prefix": "Mobile"})),
        )
        .await;
    assert_eq!(
        (s, rows.as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/apps/abc",
            Some(json!({"prefix": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("appId"))
    );
    let (s, _) = a
        .call(ADMIN_A, Method::DELETE, "/v1/apps/5629499534213120", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        a.call(ADMIN_A, Method::DELETE, "/v1/apps/42", None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, i) = a.call(ADMIN_A, Method::GET, "/v1/integration", None).await;
    // Nothing was synced yet: no value was made under the old apps, no re-sync is asked
    // (issue 32; after a sync it is: scenarios/runs.rs).
    assert_eq!(
        i["resyncRequired"], false,
        "an apps change before any sync requires no re-sync"
    );
    let (s, segs) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/segments/seg-pro",
            Some(json!({"name": "Pro"})),
        )
        .await;
    assert_eq!((s, segs[0]["name"].as_str()), (StatusCode::OK, Some("Pro")));
    let page = a.sim.subscription().pages[0].id.clone();
    let (s, m) = a
        .call(ADMIN_A, Method::POST, "/v1/mappings", Some(json!({"source": {"kind": "page", "pageId": page}, "target": "company", "metricName": "Views", "segmentId": "seg-pro"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        a.call(ADMIN_A, Method::DELETE, "/v1/segments/seg-pro", None)
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        a.call(ADMIN_A, Method::GET, "/v1/segments", None)
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn mappings_sync_runs_and_metrics_end_to_end() {
    let a = api().await;
    a.connect_for_a_week(ADMIN_A).await;
    let companies: Vec<Value> = a
        .sim
        .subscription()
        .accounts
        .iter()
        .map(|c| json!({"externalId": c.id, "name": c.name}))
        .collect();
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/directory/companies",
            Some(json!({"items": companies})),
        )
        .await;
    assert_eq!((s, r["accepted"].as_u64()), (StatusCode::OK, Some(20)));
    let (_, features) = a
        .call(ADMIN_A, Method::GET, "/v1/discovery/features", None)
        .await;
    let f = a.feature();
    assert!(features
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == f.as_str()));
    let bad = [
        (
            json!({"source": {"kind": "feature"}, "target": "company", "metricName": "x"}),
            None,
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": ""}),
            Some("metricName"),
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f}, "target": "asset", "metricName": "x"}),
            Some("target"),
        ),
        (
            json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": "x", "extra": 1}),
            Some("extra"),
        ),
    ];
    for (body, field) in bad {
        let (s, e) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        if let Some(field) = field {
            assert_eq!(e["error"]["field"].as_str(), Some(field), "{body}: {e}");
        }
    }
    assert_eq!(
        a.call(ADMIN_A, Method::GET, "/v1/mappings", None)
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(0),
        "nothing stored"
    );
    let body = json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": "Clicks"});
    let (s, m) = a
        .call(ADMIN_A, Method::POST, "/v1/mappings", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    let run_id = &a.sync_now(&id).await;
    let (s, r) = a
        .call(ADMIN_A, Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(
        (s, r["finished"].as_bool(), r["chunksFailed"].as_u64()),
        (StatusCode::OK, Some(true), Some(0)),
        "{r}"
    );
    assert_eq!(r["state"], "finished");
    assert_eq!(r["chunksDone"], r["chunksTotal"]);
    let (_, m) = a
        .call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
        .await;
    assert_eq!(m["state"]["lastSyncedDay"], "2026-11-04");
    // The series equals a direct pipeline over the simulator's data.
    let acct = &a.sim.subscription().accounts[0].id;
    let rows = feature_rows(&a.sim, &f, d("2026-10-29"), d("2026-11-04"), NY, vec![]);
    let want: Vec<Value> = sum_by(&rows, NY, "numEvents", |r| {
        (r["accountId"].as_str() == Some(acct.as_str())).then_some(())
    })
    .into_iter()
    .map(|((_, day), v)| json!({"day": day.to_string(), "app": "", "value": v}))
    .collect();
    let (s, series) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!(
                "/v1/objects/company/{acct}/series?metric=Clicks&from=2026-10-01&to=2026-11-30"
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(series, Value::Array(want));
    let (_, metrics) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/objects/company/{acct}/metrics"),
            None,
        )
        .await;
    assert_eq!(
        metrics,
        json!([{"metric": "Clicks", "app": "", "mapping": "Clicks",
            "syncedFrom": "2026-10-29", "syncedTo": "2026-11-04"}])
    );
    for (q, field) in [
        ("metric=Clicks&from=2026-11-05&to=2026-11-01", "to"),
        ("metric=Clicks&from=2020-01-01&to=2026-11-01", "to"),
    ] {
        let (s, e) = a
            .call(
                ADMIN_A,
                Method::GET,
                &format!("/v1/objects/company/{acct}/series?{q}"),
                None,
            )
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{q}"
        );
    }
    let (s, _) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!(
                "/v1/objects/company/{acct}/series?metric=Clicks&from=yesterday&to=2026-11-01"
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, sys) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/objects/company/{acct}/system"),
            None,
        )
        .await;
    assert_eq!(
        (s, sys["usersActiveLast7Days"].as_u64()),
        (StatusCode::OK, Some(0)),
        "no end users in the directory"
    );
    // Edit in place: rebuild required; rebuild; delete.
    let (s, m) = a
        .call(ADMIN_A, Method::PUT, &format!("/v1/mappings/{id}"), Some(json!({"source": {"kind": "feature", "featureId": f}, "target": "company", "metricName": "Clicks 2"})))
        .await;
    assert_eq!(
        (s, m["rebuildRequired"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    // Until the rebuild, Sync now is refused and changes nothing (it would write the new name
    // on some days and keep the old one on the others).
    let before = a.export().await;
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("rebuild_required")),
        "{e}"
    );
    // Named by its name, saying what to click: no ids, no API paths (issue 32, defect 8).
    assert_eq!(
        e["error"]["message"],
        "mapping \"Clicks 2\" was edited and needs a rebuild before it syncs again: click Rebuild on it (or run Re-sync all); until then its stored values stay as they were made"
    );
    a.drain().await;
    assert_eq!(a.export().await, before);
    assert_eq!(
        a.call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/rebuild"),
            None
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    a.drain().await;
    let (s, _) = a
        .call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "rebuilt: Sync now is accepted again"
    );
    a.drain().await;
    let (_, metrics) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/objects/company/{acct}/metrics"),
            None,
        )
        .await;
    // Rebuilt from scratch: the synced range starts again at the window's first day.
    assert_eq!(
        metrics,
        json!([{"metric": "Clicks 2", "app": "", "mapping": "Clicks 2",
            "syncedFrom": "2026-10-29", "syncedTo": "2026-11-04"}])
    );
    assert_eq!(
        a.call(ADMIN_A, Method::POST, "/v1/resync", None).await.0,
        StatusCode::ACCEPTED
    );
    a.drain().await;
    // The first sync, the rebuild, the Sync now after it and the Re-sync all (the refused Sync
    // now started none).
    let (_, runs) = a.call(ADMIN_A, Method::GET, "/v1/runs?limit=5", None).await;
    assert_eq!(runs.as_array().map(Vec::len), Some(4));
    // Each run with its real kind: the rebuild is not a Sync now (issue 32, defect 8).
    let mut kinds: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"]["type"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["rebuild", "resyncAll", "syncNow", "syncNow"]);
    assert_eq!(
        a.call(ADMIN_A, Method::GET, "/v1/runs?limit=abc", None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        a.call(ADMIN_A, Method::DELETE, &format!("/v1/mappings/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Its values are purged by the worker (the request queued the purge).
    a.drain().await;
    assert_eq!(
        a.call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/objects/company/{acct}/metrics"),
            None
        )
        .await
        .1,
        json!([])
    );
}

#[tokio::test]
async fn another_tenant_sees_and_changes_nothing() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    a.call(
        ADMIN_A,
        Method::PATCH,
        "/v1/integration/settings",
        Some(json!({"daysToSync": 3})),
    )
    .await;
    let acct = a.sim.subscription().accounts[0].id.clone();
    a.call(
        ADMIN_A,
        Method::PUT,
        "/v1/directory/companies",
        Some(json!({"items": [{"externalId": acct}]})),
    )
    .await;
    let (_, m) = a
        .call(ADMIN_A, Method::POST, "/v1/mappings", Some(json!({"source": {"kind": "feature", "featureId": a.feature()}, "target": "company", "metricName": "Clicks"})))
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let run_id = a.sync_now(&id).await;
    // Tenant B, not connected: its own defaults, and "connect Pendo first".
    let (_, ib) = a.call(ADMIN_B, Method::GET, "/v1/integration", None).await;
    assert_eq!(
        (ib["status"].as_str(), ib["tenant"].as_str()),
        (Some("notConnected"), Some("tenant-b"))
    );
    for (m, path) in [
        (Method::GET, "/v1/discovery/pages".to_string()),
        (Method::POST, "/v1/resync".to_string()),
        (Method::POST, format!("/v1/mappings/{id}/sync")),
    ] {
        let (s, e) = a.call(ADMIN_B, m.clone(), &path, None).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("not_connected")),
            "{m} {path}"
        );
    }
    // Tenant B connected: every read is empty or 404, every write on A's objects is 404.
    a.connect(ADMIN_B).await;
    for path in [format!("/v1/mappings/{id}"), format!("/v1/runs/{run_id}")] {
        let (s, e) = a.call(ADMIN_B, Method::GET, &path, None).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    for (m, path) in [
        (Method::POST, format!("/v1/mappings/{id}/sync")),
        (Method::POST, format!("/v1/mappings/{id}/rebuild")),
        (Method::DELETE, format!("/v1/mappings/{id}")),
        (Method::DELETE, "/v1/apps/5629499534213120".to_string()),
    ] {
        let (s, _) = a.call(ADMIN_B, m.clone(), &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}");
    }
    let body = json!({"source": {"kind": "feature", "featureId": "f"}, "target": "company", "metricName": "Clicks"});
    assert_eq!(
        a.call(
            ADMIN_B,
            Method::PUT,
            &format!("/v1/mappings/{id}"),
            Some(body)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    for path in [
        "/v1/mappings",
        "/v1/runs",
        "/v1/directory/companies",
        "/v1/directory/end-users",
    ] {
        assert_eq!(
            a.call(ADMIN_B, Method::GET, path, None).await.1,
            json!([]),
            "{path}"
        );
    }
    for path in [
        format!("/v1/objects/company/{acct}/metrics"),
        format!("/v1/objects/company/{acct}/series?metric=Clicks&from=2026-01-01&to=2026-12-01"),
        format!("/v1/objects/company/{acct}/activity"),
        format!("/v1/objects/company/{acct}/system"),
    ] {
        let (s, e) = a.call(ADMIN_B, Method::GET, &path, None).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    // A's data is intact.
    assert_eq!(
        a.call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, metrics) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/objects/company/{acct}/metrics"),
            None,
        )
        .await;
    assert_eq!(metrics.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn directory_batches_keep_valid_rows_and_report_the_others() {
    let a = api().await;
    let items = json!({"items": [
        {"externalId": "c1", "name": "One"},
        {"externalId": ""},
        {"externalId": "c2", "color": "red"},
        {"externalId": "a#b/c\nd"},
        {"externalId": "c1", "name": "One again"},
    ]});
    let (s, r) = a
        .call(ADMIN_A, Method::PUT, "/v1/directory/companies", Some(items))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["accepted"], 1);
    let errors: Vec<(u64, Option<&str>)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, Some("externalId")),
            (2, Some("color")),
            (3, Some("externalId")),
            // A batch names each company once, as it does each end user.
            (4, Some("externalId"))
        ]
    );
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/companies", None)
        .await;
    assert_eq!(
        list,
        json!([{"externalId": "c1", "name": "One", "companyId": null}])
    );
    let users = json!({"items": [
        {"companyId": "c1", "externalId": "v1", "email": "Ann@X.io"},
        {"companyId": "c1"},
        {"companyId": "c1", "email": "not-an-email"},
    ]});
    let (_, r) = a
        .call(ADMIN_A, Method::PUT, "/v1/directory/end-users", Some(users))
        .await;
    assert_eq!(r["accepted"], 1);
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    assert_eq!(list[0]["email"], "ann@x.io");
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"externalId": format!("c{i}")}))
        .collect();
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/directory/companies",
            Some(json!({"items": too_many})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("items"))
    );
    assert_eq!(
        a.call(ADMIN_A, Method::GET, "/v1/directory/widgets", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn report_discovery_lists_compatible_reports_and_the_reasons_of_the_others() {
    let a = api().await;
    assert_eq!(
        a.call(ADMIN_A, Method::GET, "/v1/discovery/reports", None)
            .await
            .0,
        StatusCode::CONFLICT
    );
    a.connect(ADMIN_A).await;
    let (s, r) = a
        .call(ADMIN_A, Method::GET, "/v1/discovery/reports", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let reasons: Vec<&str> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|x| x.contains("fixed date range")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|x| x.contains("no numeric column")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|x| x.contains("over 180 days")),
        "{reasons:?}"
    );
    let compatible = r["compatible"].as_array().unwrap();
    assert!(
        compatible.iter().any(|x| x["warning"].is_string()),
        "a 90-day report carries a warning"
    );
    let id = compatible[0]["id"].as_str().unwrap();
    let (s, cols) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/discovery/reports/{id}/columns"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(cols
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c["field"].as_str().unwrap().contains("email")));
    let rejected = r["rejected"][0]["id"].as_str().unwrap();
    assert_eq!(
        a.call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/discovery/reports/{rejected}/columns"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn aggregation_fields_lists_numeric_outputs_and_names_the_refused_stage() {
    let a = api().await;
    let pipeline = json!([
        {"source": {"events": null, "timeSeries": {"period": "dayRange", "first": "now()", "count": 1}}},
        {"group": {"group": ["visitorId"], "fields": {"n": {"sum": "numEvents"},
            "accountId": {"first": "accountId"}}}},
        {"select": {"accountId": "accountId", "visitorId": "visitorId", "metric1": "n"}}
    ]);
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/discovery/aggregation-fields",
            Some(json!({"pipeline": {"request": {"pipeline": pipeline}}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r, json!(["metric1"]));
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/discovery/aggregation-fields",
            Some(json!({"pipeline": [{"source": {"events": null}}]})),
        )
        .await;
    // The JSON path in this body, whose root holds the pipeline.
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("pipeline[0].source.timeSeries")
        ),
        "{r}"
    );
}

/// Everything a tenant has configured, as the API shows it.
async fn configured(a: &Api, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/v1/integration",
        "/v1/apps",
        "/v1/segments",
        "/v1/mappings",
        "/v1/directory/companies",
        "/v1/directory/end-users",
    ] {
        let (s, v) = a.call(token, Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        out.push(v);
    }
    out
}

#[tokio::test]
async fn hostile_json_is_refused_without_a_trace_and_odd_ids_stay_apart() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let before = configured(&a, ADMIN_A).await;
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let deep_obj = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let mut bodies: Vec<(&str, Vec<u8>)> = Vec::new();
    for path in [
        "/v1/integration/settings",
        "/v1/mappings",
        "/v1/directory/companies",
    ] {
        bodies.extend([
            (
                path,
                format!("{{\"daysToSync\": {}}}", deep(100_000)).into_bytes(),
            ),
            (path, deep_obj(50_000).into_bytes()),
            (path, format!("{{\"items\": {}}}", deep(5_000)).into_bytes()),
            (path, b"{\"timezone\": \"\xff\xfe\xfd\"}".to_vec()),
            (
                path,
                b"{\"items\": [{\"externalId\": \"a\xc3\x28\"}]}".to_vec(),
            ),
            (path, b"{\"daysToSync\": 1e400}".to_vec()),
            (path, b"{\"daysToSync\": 18446744073709551616}".to_vec()),
            (path, b"{\"daysToSync\": -9223372036854775809}".to_vec()),
            (path, b"{\"daysToSync\": 30.5}".to_vec()),
            (path, b"{\"daysToSync\": NaN}".to_vec()),
            (path, b"{\"daysToSync\": Infinity}".to_vec()),
            (path, b"{\"daysToSync\": \"NaN\"}".to_vec()),
            (path, b"{\"daysToSync\": 30, \"daysToSync\": 30}".to_vec()),
            (path, b"{\"items\": [], \"items\": []}".to_vec()),
            (
                path,
                b"{\"metricName\": \"a\", \"metricName\": \"b\"}".to_vec(),
            ),
            (path, b"\"just a string\"".to_vec()),
            (path, b"null".to_vec()),
            (path, b"".to_vec()),
            (path, b"{\"daysToSync\": 30".to_vec()),
            (path, vec![b' '; 3 * 1024 * 1024]),
        ]);
    }
    let mut statuses = std::collections::BTreeMap::new();
    for (path, body) in &bodies {
        let method = match *path {
            "/v1/integration/settings" => Method::PATCH,
            "/v1/mappings" => Method::POST,
            _ => Method::PUT,
        };
        let (s, text) = a.raw(Some(ADMIN_A), method, path, Some(body.clone())).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        assert!(s.is_client_error(), "{path} {shown}: {s} {text}");
        let e: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} {shown}: {text}"));
        assert!(e["error"]["message"].is_string(), "{path} {shown}: {text}");
        *statuses.entry(s.as_u16()).or_insert(0) += 1;
    }
    eprintln!(
        "hostile bodies: {} refused, by status {statuses:?}",
        bodies.len()
    );
    assert_eq!(
        configured(&a, ADMIN_A).await,
        before,
        "a refused request stored something"
    );

    // Ids holding key separators are stored as themselves, each its own object.
    let ids = ["a#b", "a", "b", "a/b", "a%2Fb", "a|x:b", "a%23b", "ä#/|"];
    let items: Vec<Value> = ids.iter().map(|i| json!({"externalId": i})).collect();
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/directory/companies",
            Some(json!({ "items": items })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/companies", None)
        .await;
    let mut stored: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["externalId"].as_str().unwrap().to_string())
        .collect();
    stored.sort();
    let accepted = r["accepted"].as_u64().unwrap() as usize;
    assert_eq!(stored.len(), accepted);
    for s in &stored {
        assert!(ids.contains(&s.as_str()), "{s:?} was not sent");
    }
    assert_eq!(accepted, ids.len(), "{r}");
    // End users whose (company, external id) pairs would join to the same text.
    let users = json!({"items": [
        {"companyId": "a", "externalId": "b|x:c"},
        {"companyId": "a|x:b", "externalId": "c"},
        {"companyId": "a/b", "externalId": "c#d"},
        {"companyId": "a", "externalId": "b/c#d"},
    ]});
    let (s, r) = a
        .call(ADMIN_A, Method::PUT, "/v1/directory/end-users", Some(users))
        .await;
    assert_eq!(
        (s, r["accepted"].as_u64()),
        (StatusCode::OK, Some(4)),
        "{r}"
    );
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4);
    let distinct: std::collections::BTreeSet<&str> =
        list.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 4, "{list:?}");
    // Path ids with encoded separators reach the handlers and never a 5xx.
    for id in ["a%23b", "a%2Fb", "a%0Ab", "%E4%23", "..%2F..", "a%00b"] {
        for path in [
            format!("/v1/objects/company/{id}/metrics"),
            format!("/v1/mappings/{id}"),
            format!("/v1/runs/{id}"),
        ] {
            let (s, text) = a.raw(Some(ADMIN_A), Method::GET, &path, None).await;
            assert!(s.is_success() || s.is_client_error(), "{path}: {s} {text}");
        }
    }
}

#[tokio::test]
async fn the_page_is_served_without_a_token_and_names_its_caller_and_choices() {
    let a = api().await;
    let req = |path: &str| {
        Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    };
    for (path, content_type, body) in [
        (
            "/",
            "text/html; charset=utf-8",
            pendo_sync::api::web::INDEX_HTML,
        ),
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            pendo_sync::api::web::APP_JS,
        ),
        (
            "/assets/app.css",
            "text/css; charset=utf-8",
            pendo_sync::api::web::APP_CSS,
        ),
    ] {
        let resp = a.router.clone().oneshot(req(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, body.as_bytes(), "{path}");
    }
    // Only those three files: anything else is the API's JSON 404.
    let (s, body) = a.raw(None, Method::GET, "/assets/other.js", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("no_route"), "{body}");

    let (s, me) = a.call(MEMBER_A, Method::GET, "/v1/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me, json!({"tenant": "tenant-a", "role": "member"}));
    let (_, me) = a.call(ADMIN_B, Method::GET, "/v1/me", None).await;
    assert_eq!(me, json!({"tenant": "tenant-b", "role": "admin"}));

    let (s, c) = a.call(ADMIN_A, Method::GET, "/v1/choices", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        c["domains"],
        json!([
            "app.pendo.io",
            "app.eu.pendo.io",
            "us1.app.pendo.io",
            "app.jpn.pendo.io",
            "app.au.pendo.io"
        ])
    );
    assert_eq!(
        c["pesComponents"],
        json!(["score", "adoption", "stickiness", "growth"])
    );
    assert_eq!(
        c["targets"],
        json!(["company", "endUser", "asset", "project"])
    );
    let zones: Vec<&str> = c["timezones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z.as_str().unwrap())
        .collect();
    assert_eq!(zones.len(), chrono_tz::TZ_VARIANTS.len());
    assert!(
        zones.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
    // Every offered zone is accepted by the settings, and nothing else is offered.
    for z in ["America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata"] {
        assert!(zones.contains(&z), "{z}");
    }
    a.connect(ADMIN_A).await;
    for z in [zones[0], zones[zones.len() / 2], zones[zones.len() - 1]] {
        let (s, i) = a
            .call(
                ADMIN_A,
                Method::PATCH,
                "/v1/integration/settings",
                Some(json!({ "timezone": z })),
            )
            .await;
        assert_eq!((s, i["timezone"].as_str()), (StatusCode::OK, Some(z)));
    }
}

/// A run whose worker went away (its message lost: a killed local runner, or a message moved to
/// the dead-letter queue) reads `running` while it may still progress, then `interrupted`.
#[tokio::test]
async fn a_run_without_progress_for_an_hour_reads_interrupted() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let id = a.clicks_mapping().await;
    let (_, run) = a
        .call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/sync"),
            None,
        )
        .await;
    let path = format!("/v1/runs/{}", run["runId"].as_str().unwrap());
    // The worker takes the message and is never heard of again.
    let lost = a.queue.receive().unwrap().expect("the chunk's message");
    a.queue.ack(&lost).unwrap();
    let start = a.clock.now_value();
    let state = |r: &Value| {
        (
            r["finished"].as_bool(),
            r["state"].as_str().map(str::to_string),
        )
    };
    let (_, r) = a.call(ADMIN_A, Method::GET, &path, None).await;
    assert_eq!(state(&r), (Some(false), Some("running".into())), "{r}");
    a.clock.set(start + chrono::Duration::minutes(60));
    let (_, r) = a.call(ADMIN_A, Method::GET, &path, None).await;
    assert_eq!(
        state(&r).1.as_deref(),
        Some("running"),
        "not a minute over the limit yet"
    );
    a.clock.set(start + chrono::Duration::minutes(61));
    let (_, r) = a.call(ADMIN_A, Method::GET, &path, None).await;
    assert_eq!(state(&r), (Some(false), Some("interrupted".into())), "{r}");
    let (_, runs) = a.call(ADMIN_A, Method::GET, "/v1/runs", None).await;
    assert_eq!(runs[0]["state"], "interrupted");
    // The next sync catches up from the cursor and finishes.
    let (_, next) = a
        .call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/sync"),
            None,
        )
        .await;
    a.drain().await;
    let (_, r) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/runs/{}", next["runId"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(state(&r), (Some(true), Some("finished".into())), "{r}");
}

/// Every route that takes a body takes exactly one JSON value: a valid body followed by a stray
/// character, by a second value, or by a NUL is a 400 naming where the extra bytes start, and
/// nothing is stored; the same body followed by whitespace only is accepted.
#[tokio::test]
async fn a_body_is_exactly_one_json_value_on_every_route_that_takes_one() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let mapping = a.clicks_mapping().await;
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::PUT,
            "/v1/directory/companies",
            Some(json!({"items": [{"externalId": "c1"}]})),
        )
        .await;
    assert_eq!(
        (s, r["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{r}"
    );
    let feature = a.feature();
    let pipeline = json!([
        {"source": {"events": null, "timeSeries": {"period": "dayRange", "first": "now()", "count": 1}}},
        {"group": {"group": ["visitorId"], "fields": {"n": {"sum": "numEvents"},
            "accountId": {"first": "accountId"}}}},
        {"select": {"accountId": "accountId", "visitorId": "visitorId", "metric1": "n"}}
    ]);
    // (method, documented path, path called, a valid body that changes something); the
    // connection last, as it moves the integration to another domain.
    let cases: Vec<(Method, &str, String, Value)> = vec![
        (
            Method::PATCH,
            "/v1/integration/settings",
            "/v1/integration/settings".into(),
            json!({"daysToSync": 30}),
        ),
        (
            Method::PUT,
            "/v1/apps/{appId}",
            "/v1/apps/5629499534213120".into(),
            json!({"prefix": "Mobile"}),
        ),
        (
            Method::PUT,
            "/v1/segments/{segmentId}",
            "/v1/segments/seg-pro".into(),
            json!({"name": "Pro"}),
        ),
        (
            Method::POST,
            "/v1/mappings",
            "/v1/mappings".into(),
            json!({"source": {"kind": "feature", "featureId": feature}, "target": "company", "metricName": "Other"}),
        ),
        (
            Method::PUT,
            "/v1/mappings/{mappingId}",
            format!("/v1/mappings/{mapping}"),
            json!({"source": {"kind": "feature", "featureId": feature}, "target": "company", "metricName": "Renamed"}),
        ),
        (
            Method::PUT,
            "/v1/directory/{kind}",
            "/v1/directory/end-users".into(),
            json!({"items": [{"companyId": "c1", "externalId": "u-new"}]}),
        ),
        (
            Method::POST,
            "/v1/discovery/aggregation-fields",
            "/v1/discovery/aggregation-fields".into(),
            json!({"pipeline": {"request": {"pipeline": pipeline}}}),
        ),
        (
            Method::POST,
            "/v1/discovery/pipeline-check",
            "/v1/discovery/pipeline-check".into(),
            json!({"pipeline": {"request": {"pipeline": pipeline}}}),
        ),
        (
            Method::POST,
            "/v1/imports",
            "/v1/imports".into(),
            json!({"companies": false, "pageRows": 10}),
        ),
        (
            Method::PUT,
            "/v1/integration/connection",
            "/v1/integration/connection".into(),
            json!({"key": "eu-only-key-123", "domain": "app.eu.pendo.io"}),
        ),
    ];
    // The table covers every documented operation with a request body.
    let (_, doc) = pendo_sync::api::documented();
    let mut with_body = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        for (m, op) in [
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::PATCH, &item.patch),
        ] {
            if op.as_ref().is_some_and(|o| o.request_body.is_some()) {
                with_body.push((m, path.clone()));
            }
        }
    }
    let mut covered: Vec<(Method, String)> = cases
        .iter()
        .map(|(m, p, _, _)| (m.clone(), p.to_string()))
        .collect();
    let key = |(m, p): &(Method, String)| (p.clone(), m.to_string());
    with_body.sort_by_key(key);
    covered.sort_by_key(key);
    assert_eq!(covered, with_body);

    let before = configured(&a, ADMIN_A).await;
    let mut wrong = Vec::new();
    for (method, _, path, body) in &cases {
        let one = body.to_string();
        let col = one.len() + 1;
        for (extra, at) in [
            (" x".to_string(), col + 1),
            ("x".to_string(), col),
            (one.clone(), col),
            (format!("\n{one}"), 1),
            ("\0".to_string(), col),
            ("  \u{0}".to_string(), col + 2),
            ("]".to_string(), col),
            (" 1".to_string(), col + 1),
        ] {
            let line = if extra.starts_with('\n') { 2 } else { 1 };
            let sent = format!("{one}{extra}");
            let (s, text) = a
                .raw(
                    Some(ADMIN_A),
                    method.clone(),
                    path,
                    Some(sent.clone().into_bytes()),
                )
                .await;
            let e: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
            let want = format!(
                "the body must be one JSON value with only whitespace after it: trailing characters at line {line} column {at}"
            );
            if (
                s,
                e["error"]["code"].as_str(),
                e["error"]["message"].as_str(),
            ) != (
                StatusCode::BAD_REQUEST,
                Some("bad_json"),
                Some(want.as_str()),
            ) {
                wrong.push(format!("{method} {path} {sent:?}: {s} {text}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        configured(&a, ADMIN_A).await,
        before,
        "a refused request stored something"
    );
    // The same bodies with whitespace after them are taken (and do change things).
    for (method, _, path, body) in &cases {
        let sent = format!("{body} \n\t\r ");
        let (s, text) = a
            .raw(Some(ADMIN_A), method.clone(), path, Some(sent.into_bytes()))
            .await;
        assert!(s.is_success(), "{method} {path}: {s} {text}");
    }
    let after = configured(&a, ADMIN_A).await;
    assert_eq!(
        (
            after[0]["daysToSync"].as_u64(),
            after[0]["domain"].as_str(),
            after[3].as_array().map(Vec::len),
            after[5].as_array().map(Vec::len),
        ),
        (Some(30), Some("app.eu.pendo.io"), Some(2), Some(1))
    );
}

/// The four reads of an object answer 404 for an object that is neither in the caller's
/// directory nor has values for the caller (a made-up id, another tenant's company), for every
/// kind; an object in the directory, or with values but not in the directory, answers 200.
#[tokio::test]
async fn reads_of_an_object_the_tenant_does_not_know_are_404_for_every_kind() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    a.connect(ADMIN_B).await;
    for (kind, body) in [
        ("companies", json!({"items": [{"externalId": "c-dir"}]})),
        ("assets", json!({"items": [{"externalId": "as-dir"}]})),
        ("projects", json!({"items": [{"externalId": "pr-dir"}]})),
        (
            "end-users",
            json!({"items": [{"companyId": "c-dir", "externalId": "u-dir"}]}),
        ),
    ] {
        let (s, r) = a
            .call(
                ADMIN_A,
                Method::PUT,
                &format!("/v1/directory/{kind}"),
                Some(body),
            )
            .await;
        assert_eq!(
            (s, r["accepted"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{kind}: {r}"
        );
    }
    let (_, users) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    let user = users[0]["id"].as_str().unwrap().to_string();
    // Values (and activity) on objects that are not in the directory, as a sync writes them.
    use pendo_sync::domain::{Activity, MappingId, MetricValue, ObjectRef, Target};
    let t = TenantId::parse("tenant-a").unwrap();
    let generation = a.app.integration(&t).await.unwrap().generation;
    let mapping = MappingId::parse(&a.clicks_mapping().await).unwrap();
    let day = d("2026-11-01");
    let value = |kind, id: &str| MetricValue {
        object: ObjectRef {
            kind,
            id: id.to_string(),
        },
        metric: "Clicks".into(),
        app: String::new(),
        day,
        value: 3.0,
    };
    let values = [
        value(Target::Company, "c-values"),
        value(Target::EndUser, "u-values"),
        value(Target::Asset, "as-values"),
        value(Target::Project, "pr-values"),
    ];
    let activity = Activity {
        end_user_id: "u-act".into(),
        company_id: "c-act".into(),
        mapping_id: mapping.clone(),
        label: "Clicks".into(),
        day,
        events: 2.0,
        minutes: 1.0,
        passive: false,
    };
    a.store
        .replace_chunk(
            &t,
            generation,
            &mapping,
            pendo_sync::domain::Window { from: day, to: day },
            &values,
            std::slice::from_ref(&activity),
        )
        .await
        .unwrap();
    let acct = "c-values".to_string();
    let reads = |kind: &str, id: &str| {
        [
            "metrics",
            "series?metric=Clicks&from=2026-10-01&to=2026-11-30",
            "activity",
            "system",
        ]
        .map(|r| {
            (
                r.split('?').next().unwrap_or(r).to_string(),
                format!("/v1/objects/{kind}/{id}/{r}"),
            )
        })
    };
    let nothing = json!({"lastSeen": null, "lastActive": null, "usersActiveLast7Days": null});
    let no_activity = (StatusCode::BAD_REQUEST, json!("kind"));
    let mut wrong = Vec::new();
    let mut check = |token: &str,
                     kind: &str,
                     id: &str,
                     want: [(StatusCode, Value); 4],
                     got: Vec<(StatusCode, Value)>| {
        for ((read, _), (w, g)) in reads(kind, id).iter().zip(want.iter().zip(got.iter())) {
            if w != g {
                wrong.push(format!("{token} {kind} {id} {read}: got {g:?}, want {w:?}"));
            }
        }
    };
    // What a read shows: its status, and its body, or the error's code (field for a 400).
    let show = |s: StatusCode, v: Value| match s {
        StatusCode::NOT_FOUND => (s, v["error"]["code"].clone()),
        StatusCode::BAD_REQUEST => (s, v["error"]["field"].clone()),
        _ => (s, v),
    };
    let not_found = || (StatusCode::NOT_FOUND, json!("not_found"));
    // The Clicks mapping targets companies: the company's metric names it (never synced by a
    // run: no synced range); the same metric on other kinds has no mapping.
    let clicks_of = |mapping: Option<&str>| json!([{"metric": "Clicks", "app": "", "mapping": mapping, "syncedFrom": null, "syncedTo": null}]);
    let clicks = || clicks_of(None);
    let series = || json!([{"day": "2026-11-01", "app": "", "value": 3.0}]);
    let acts = serde_json::to_value(&activity).unwrap();
    let ok = |v: Value| (StatusCode::OK, v);
    // (token, kind, id, what each of the four reads shows)
    type Case<'a> = (&'a str, &'a str, String, [(StatusCode, Value); 4]);
    let cases: Vec<Case> = vec![
        // Made-up ids of every kind.
        (
            ADMIN_A,
            "company",
            "nope".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_A,
            "endUser",
            "nope".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_A,
            "asset",
            "nope".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_A,
            "project",
            "nope".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        // Another tenant's objects, in its directory or with its values.
        (
            ADMIN_B,
            "company",
            "c-dir".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_B,
            "company",
            acct.clone(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_B,
            "endUser",
            user.clone(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_B,
            "asset",
            "as-dir".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_B,
            "project",
            "pr-dir".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        // A directory id is not a service id, nor the other way round.
        (
            ADMIN_A,
            "endUser",
            "u-dir".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        (
            ADMIN_A,
            "asset",
            "c-dir".into(),
            [not_found(), not_found(), not_found(), not_found()],
        ),
        // In the directory, without values.
        (
            ADMIN_A,
            "company",
            "c-dir".into(),
            [
                ok(json!([])),
                ok(json!([])),
                ok(json!([])),
                ok(json!({"lastSeen": null, "lastActive": null, "usersActiveLast7Days": 0})),
            ],
        ),
        (
            ADMIN_A,
            "endUser",
            user.clone(),
            [
                ok(json!([])),
                ok(json!([])),
                ok(json!([])),
                ok(nothing.clone()),
            ],
        ),
        (
            ADMIN_A,
            "asset",
            "as-dir".into(),
            [
                ok(json!([])),
                ok(json!([])),
                no_activity.clone(),
                ok(nothing.clone()),
            ],
        ),
        (
            ADMIN_A,
            "project",
            "pr-dir".into(),
            [
                ok(json!([])),
                ok(json!([])),
                no_activity.clone(),
                ok(nothing.clone()),
            ],
        ),
        // With values or activity, not in the directory.
        (
            ADMIN_A,
            "company",
            acct.clone(),
            [
                ok(clicks_of(Some("Clicks"))),
                ok(series()),
                ok(json!([])),
                ok(json!({"lastSeen": null, "lastActive": null, "usersActiveLast7Days": 0})),
            ],
        ),
        (
            ADMIN_A,
            "endUser",
            "u-values".into(),
            [
                ok(clicks()),
                ok(series()),
                ok(json!([])),
                ok(nothing.clone()),
            ],
        ),
        (
            ADMIN_A,
            "asset",
            "as-values".into(),
            [
                ok(clicks()),
                ok(series()),
                no_activity.clone(),
                ok(nothing.clone()),
            ],
        ),
        (
            ADMIN_A,
            "project",
            "pr-values".into(),
            [
                ok(clicks()),
                ok(series()),
                no_activity.clone(),
                ok(nothing.clone()),
            ],
        ),
        (
            ADMIN_A,
            "endUser",
            "u-act".into(),
            [
                ok(json!([])),
                ok(json!([])),
                ok(json!([acts.clone()])),
                ok(
                    json!({"lastSeen": "2026-11-01", "lastActive": "2026-11-01", "usersActiveLast7Days": null}),
                ),
            ],
        ),
        (
            ADMIN_A,
            "company",
            "c-act".into(),
            [
                ok(json!([])),
                ok(json!([])),
                ok(json!([acts.clone()])),
                ok(json!({"lastSeen": null, "lastActive": null, "usersActiveLast7Days": 1})),
            ],
        ),
    ];
    for (token, kind, id, want) in cases {
        let mut got = Vec::new();
        for (_, path) in reads(kind, &id) {
            let (s, v) = a.call(token, Method::GET, &path, None).await;
            got.push(show(s, v));
        }
        check(token, kind, &id, want, got);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Directory integrity, per-row errors, "connect Pendo first" and field paths (issue 16).
mod integrity;

/// The directory from a CSV file or from Pendo (issue 20).
mod directory;
mod directory_rules;
mod metric_names;
mod pes_field;
mod pipelines;
mod recover_all;
mod references;
mod roles;
mod runs;
mod status;
mod unmatched_reasons;
