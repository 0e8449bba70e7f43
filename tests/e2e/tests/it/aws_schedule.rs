//! What the daily schedule costs as tenants grow: the scheduler function (its own credentials,
//! its policy from the template) lists the tenants with one index query a page and sends one
//! planning message per tenant in SendMessageBatch calls of 10; nothing else. Measured on moto
//! with 200 tenants; the README extrapolates to 10,000.

use crate::aws_local::Aws;
use crate::helpers::{sim_config, KEY};
use crate::iam_gate::{Function, IamGate};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::*;
use pendo_sync::lambda::handle_schedule;
use pendo_sync::store::dynamo::DynamoStore;
use pendo_sync::store::prelude::*;
use pendo_sync::{App, Ports};
use std::sync::Arc;
use std::time::Instant;

const SCHEDULE: &str = include_str!("../../../fixtures/eventbridge-schedule.json");
const TENANTS: usize = 200;

#[tokio::test]
async fn the_schedule_of_200_tenants_is_one_index_query_and_20_message_batches() {
    let aws = Aws::connect().await;
    let gate = IamGate::start(&aws).await;
    let admin = DynamoStore::new(aws.dynamo.clone(), gate.tables.clone());
    for n in 0..TENANTS {
        let mut i = Integration::new(TenantId::parse(&format!("tenant-{n:03}")).unwrap());
        i.connection = Some(Connection {
            domain: PendoDomain::Us,
            key: IntegrationKey::parse(KEY).unwrap(),
        });
        i.status = ConnectionStatus::Active;
        admin.put_integration(&i).await.unwrap();
    }
    let (store, queue) = gate.adapters(Function::Scheduler).await;
    let app = App::new(
        Ports::builder()
            .store(store)
            .queue(queue)
            // Never called: the scheduler does not talk to Pendo.
            .pendo_at("http://127.0.0.1:9")
            .clock(Arc::new(FixedClock::new(sim_config().now)))
            .build(),
    );
    let ev: EventBridgeEvent = serde_json::from_str(SCHEDULE).unwrap();
    let started = Instant::now();
    let out = handle_schedule(&app, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();
    let took = started.elapsed();

    assert_eq!(out.tenants, TENANTS);
    let calls = gate.calls();
    let count = |action: &str| calls.iter().filter(|c| c.action == action).count();
    assert_eq!(count("dynamodb:Query"), 1, "one page of the tenants index");
    assert_eq!(count("sqs:SendMessage"), TENANTS / 10, "batches of 10");
    assert_eq!(calls.len(), 1 + TENANTS / 10, "{calls:?}");
    let waiting = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&gate.resync_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
        .clone();
    assert_eq!(waiting, TENANTS.to_string());
    eprintln!(
        "schedule of {TENANTS} tenants on moto: {} ms, {} calls ({} index query, {} SendMessageBatch)",
        took.as_millis(),
        calls.len(),
        count("dynamodb:Query"),
        count("sqs:SendMessage")
    );
    gate.assert_no_denials();
}
