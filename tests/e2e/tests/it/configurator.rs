//! The configurator Lambda in-process: hand-written API Gateway HTTP API (payload v2) events
//! (`tests/fixtures/apigw-v2-jwt-*.json`) through `lambda_http`'s adapter — what
//! `lambda_http::run` does with each invocation — into `lambda::configurator_router`, exactly as
//! the function's `main` builds it, on DynamoDB and SQS (moto) and the Pendo simulator. The
//! caller is whoever the JWT authorizer's claims name.

use crate::aws_local::Aws;
use crate::helpers::sim_config;
use crate::iam_gate::{Function, IamGate};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use pendo_sim::{RunningSim, Simulator};
use pendo_sync::api::claims::ClaimNames;
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::*;
use pendo_sync::lambda::configurator_router;
use pendo_sync::store::dynamo::DynamoStore;
use pendo_sync::store::Store;
use pendo_sync::{App, Ports};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const CONNECT: &str = include_str!("../../../fixtures/apigw-v2-jwt-admin-connect.json");
const LIST_MAPPINGS: &str =
    include_str!("../../../fixtures/apigw-v2-jwt-member-list-mappings.json");
const MEMBER_DAYS: &str = include_str!("../../../fixtures/apigw-v2-jwt-member-days-to-sync.json");
const NO_TENANT: &str = include_str!("../../../fixtures/apigw-v2-jwt-no-tenant.json");

struct Configurator {
    router: axum::Router,
    gate: IamGate,
    store: Arc<dyn Store>,
    sim: Simulator,
    _running: RunningSim,
}

async fn configurator(names: ClaimNames) -> Configurator {
    let config = sim_config();
    let now = config.now;
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let aws = Aws::connect().await;
    // The function's own credentials, checked against its policy from the template.
    let gate = IamGate::start(&aws).await;
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(aws.dynamo.clone(), gate.tables.clone()));
    let (fn_store, fn_queue) = gate.adapters(Function::Configurator).await;
    let app = App::new(
        Ports::builder()
            .store(fn_store)
            .queue(fn_queue)
            .pendo_at(&running.base_url())
            .clock(Arc::new(FixedClock::new(now)))
            .build(),
    );
    Configurator {
        router: configurator_router(app, names),
        gate,
        store,
        sim,
        _running: running,
    }
}

/// Invokes the function with an event (a fixture, possibly edited) and returns the status and
/// the JSON body of the v2 response Lambda would hand back to API Gateway.
async fn invoke(router: &axum::Router, event: &Value) -> (u16, Value) {
    let request: LambdaRequest = serde_json::from_value(event.clone()).unwrap();
    let response = Adapter::from(router.clone())
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    let response = serde_json::to_value(&response).unwrap();
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let body = response["body"].as_str().unwrap_or("null");
    (status, serde_json::from_str(body).unwrap())
}

fn fixture(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

fn claims(event: &mut Value) -> &mut serde_json::Map<String, Value> {
    event["requestContext"]["authorizer"]["jwt"]["claims"]
        .as_object_mut()
        .unwrap()
}

#[tokio::test]
async fn the_configurator_serves_fixture_events_as_the_jwt_claims_allow() {
    let c = configurator(ClaimNames::default()).await;
    let acme = TenantId::parse("acme-cs").unwrap();

    // An admin of acme-cs connects the integration (the key is verified with Pendo).
    let (status, body) = invoke(&c.router, &fixture(CONNECT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], "acme-cs");
    assert_eq!(body["status"], "active");
    assert_eq!(body["domain"], "app.pendo.io");
    assert_eq!(body["keyMasked"], "…-key");
    let stored = c.store.get_integration(&acme).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::Active);
    let days = stored.settings.days_to_sync.get();

    // A mapping exists; a member of the same tenant lists it.
    let feature = c.sim.subscription().features[0].id.clone();
    c.store
        .put_mapping(&mapping_of(&stored, &feature))
        .await
        .unwrap();
    let (status, body) = invoke(&c.router, &fixture(LIST_MAPPINGS)).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["m-fixture"]);

    // The same request for another tenant's claims sees nothing of acme-cs.
    let mut other = fixture(LIST_MAPPINGS);
    claims(&mut other).insert("tenant".into(), "globex-cs".into());
    assert_eq!(
        invoke(&c.router, &other).await,
        (200, serde_json::json!([]))
    );

    // A member cannot change days to sync; nothing changes.
    let (status, body) = invoke(&c.router, &fixture(MEMBER_DAYS)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let after = c.store.get_integration(&acme).await.unwrap().unwrap();
    assert_eq!(after.settings.days_to_sync.get(), days);
    // The same change by an admin of the tenant goes through.
    let mut admin = fixture(MEMBER_DAYS);
    claims(&mut admin).insert("role".into(), "admin".into());
    let (status, body) = invoke(&c.router, &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["daysToSync"], 14);
    c.gate.assert_no_denials();
}

#[tokio::test]
async fn missing_or_unknown_claims_get_the_error_envelope() {
    let c = configurator(ClaimNames::default()).await;

    // A token without the tenant claim: genuine, but it grants nothing here.
    let (status, body) = invoke(&c.router, &fixture(NO_TENANT)).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "forbidden", "field": null,
            "message": "the token has no 'tenant' claim"}})
    );

    // A role that is neither admin nor member.
    let mut viewer = fixture(LIST_MAPPINGS);
    claims(&mut viewer).insert("role".into(), "[viewer]".into());
    let (status, body) = invoke(&c.router, &viewer).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["message"],
        "the token's 'role' claim names neither admin nor member"
    );

    // No authorizer context at all (not through the JWT authorizer).
    let mut anonymous = fixture(LIST_MAPPINGS);
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, body) = invoke(&c.router, &anonymous).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");

    // /health answers without claims (its route has no authorizer).
    let mut health = anonymous.clone();
    health["rawPath"] = "/health".into();
    health["requestContext"]["http"]["path"] = "/health".into();
    let request: LambdaRequest = serde_json::from_value(health).unwrap();
    let response = Adapter::from(c.router.clone())
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    let response = serde_json::to_value(&response).unwrap();
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["body"], "ok");
    c.gate.assert_no_denials();
}

#[tokio::test]
async fn claim_names_come_from_the_deployment() {
    // Cognito style: the tenant in `custom:tenant`, the role among `cognito:groups`.
    let names = ClaimNames {
        tenant: "custom:tenant".into(),
        role: "cognito:groups".into(),
    };
    let c = configurator(names).await;
    // The fixture's `tenant`/`role` claims mean nothing under these names.
    let (status, _) = invoke(&c.router, &fixture(LIST_MAPPINGS)).await;
    assert_eq!(status, 403);
    let mut event = fixture(LIST_MAPPINGS);
    let cl = claims(&mut event);
    cl.insert("custom:tenant".into(), "acme-cs".into());
    cl.insert("cognito:groups".into(), "[readers member]".into());
    assert_eq!(
        invoke(&c.router, &event).await,
        (200, serde_json::json!([]))
    );
    c.gate.assert_no_denials();
}

/// A company Feature mapping of `feature`, valid for `i`.
fn mapping_of(i: &Integration, feature: &str) -> Mapping {
    pendo_sync::domain::mapping::MappingInput {
        source: MappingKind::Feature {
            feature_id: feature.to_string(),
            minutes_metric: None,
        },
        target: Target::Company,
        metric_name: "Clicks".into(),
        passive: false,
        multi_app: false,
        auto_create_users: false,
        segment_id: None,
        enabled: true,
    }
    .validate(
        i,
        MappingId::parse("m-fixture").unwrap(),
        &[],
        sim_config().now,
    )
    .unwrap()
}

/// What a function's logs take: the lines its subscriber writes, kept in memory.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures, on this thread until the guard is dropped, what a function's subscriber
    /// (`lambda::init_tracing`'s JSON layer) writes at `level`.
    pub(crate) fn logs(level: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::layer::SubscriberExt;
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_target(false)
                    .with_writer(move || writer.clone()),
            )
            .with(pendo_sync::lambda::log_filter(level));
        (captured, tracing::subscriber::set_default(subscriber))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn a_connect_logged_at_trace_shows_neither_the_key_nor_the_token() {
    let c = configurator(ClaimNames::default()).await;
    let event = fixture(CONNECT);
    let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    let key = body["key"].as_str().unwrap().to_string();
    let token = event["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    assert!(key.len() > 8 && token.len() > 20);
    // The function's own subscriber (`lambda::init_tracing`'s layers) asked for TRACE, as
    // AWS_LAMBDA_LOG_LEVEL=TRACE would, on this thread while the connect runs.
    let (captured, guard) = Captured::logs("TRACE");
    let (status, _) = invoke(&c.router, &event).await;
    drop(guard);
    assert_eq!(status, 200);
    let logs = captured.text();
    // It logged (the SDK's calls at DEBUG; tracing's per-callsite cache may skip some events
    // while other tests' threads log nowhere), but no secret.
    assert!(logs.contains(r#""level":"DEBUG""#), "{logs}");
    assert!(!logs.contains(&key), "the Pendo key is in the logs");
    assert!(!logs.contains(&token), "the bearer token is in the logs");
    assert!(!logs.contains(&key[key.len() - 8..]));
    c.gate.assert_no_denials();
}
