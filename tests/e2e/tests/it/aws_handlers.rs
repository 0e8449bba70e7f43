//! The scheduler and fetch handlers on real SQS queues and DynamoDB tables (moto): the daily
//! schedule fans out one fetch message per chunk onto the queue, and a batch received from it
//! with one message that keeps failing reports only that one, which SQS redelivers (its receive
//! count growing) until its last receive is given up and shown on the mapping.

use crate::aws_local::Aws;
use crate::helpers::{d, every_company, sim_config, KEY};
use crate::iam_gate::{Function, IamGate};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use lambda_runtime::{Context, LambdaEvent};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::mapping::MappingInput;
use pendo_sync::domain::*;
use pendo_sync::lambda::{
    handle_fetch_batch, handle_resync_batch, handle_schedule, receive_count, BatchConfig,
};
use pendo_sync::queue::messages::QueueMessage;
use pendo_sync::store::dynamo::DynamoStore;
use pendo_sync::store::prelude::*;
use pendo_sync::{App, Ports};
use std::collections::BTreeSet;
use std::sync::Arc;

const SCHEDULE: &str = include_str!("../../../fixtures/eventbridge-schedule.json");
/// The queues' maxReceiveCount, and the handler's.
const MAX_RECEIVES: u32 = 3;

/// A queue with a dead-letter queue after `max_receives` receives, as the SAM template has.
pub(crate) async fn queue_with_dlq(aws: &Aws, name: &str, max_receives: u32) -> (String, String) {
    let dlq = aws
        .sqs
        .create_queue()
        .queue_name(format!("{}-{name}-dlq", aws.prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()});
    let url = aws
        .sqs
        .create_queue()
        .queue_name(format!("{}-{name}", aws.prefix))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

/// Received messages as Lambda's event source mapping delivers them.
fn event(msgs: &[Message]) -> LambdaEvent<SqsEvent> {
    let records: Vec<serde_json::Value> = msgs
        .iter()
        .map(|m| {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap();
            serde_json::json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": {"ApproximateReceiveCount": count}, "messageAttributes": {},
                "eventSource": "aws:sqs", "awsRegion": "us-east-1"
            })
        })
        .collect();
    LambdaEvent::new(
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap(),
        Context::default(),
    )
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_schedule_fans_out_to_sqs_and_a_failing_chunk_alone_is_redelivered() {
    // Arrange: acme-cs on the simulator, globex-cs on a Pendo region that answers nowhere;
    // both with 7 days to sync and one company Feature mapping.
    let config = sim_config();
    let now = config.now;
    let sim = pendo_sim::Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let closed = format!("http://127.0.0.1:{}", closed_port().await);
    let aws = Aws::connect().await;
    let (fetch_url, fetch_dlq) = queue_with_dlq(&aws, "fetch", MAX_RECEIVES).await;
    let (resync_url, _) = queue_with_dlq(&aws, "resync", MAX_RECEIVES).await;
    // Each function with its own credentials, checked against its policy from the template.
    let gate = IamGate::for_queues(&aws, &fetch_url, &resync_url).await;
    let store = Arc::new(DynamoStore::new(aws.dynamo.clone(), gate.tables.clone()));
    let app_of = |function: Function| {
        let (gate, base_url, closed) = (&gate, running.base_url(), closed.clone());
        async move {
            let (store, queue) = gate.adapters(function).await;
            App::new(
                Ports::builder()
                    .store(store)
                    .queue(queue)
                    .pendo_with(&base_url, |c| {
                        c.endpoints
                            .per_domain
                            .insert(PendoDomain::Eu.host(), closed);
                    })
                    .clock(Arc::new(FixedClock::new(now)))
                    .build(),
            )
        }
    };
    let app = app_of(Function::Configurator).await;
    let scheduler = app_of(Function::Scheduler).await;
    let fetch = app_of(Function::Fetch).await;
    let resync = app_of(Function::Resync).await;
    let acme = TenantId::parse("acme-cs").unwrap();
    let globex = TenantId::parse("globex-cs").unwrap();
    app.connect(&acme, KEY, "app.pendo.io").await.unwrap();
    let mut g = Integration::new(globex.clone());
    g.connection = Some(Connection {
        domain: PendoDomain::Eu,
        key: IntegrationKey::parse(KEY).unwrap(),
    });
    g.status = ConnectionStatus::Active;
    store.put_integration(&g).await.unwrap();
    let companies = every_company(&sim);
    let feature = sim
        .subscription()
        .features
        .iter()
        .find(|f| f.app_id == -323232)
        .unwrap()
        .id
        .clone();
    let mut mapping_of = std::collections::HashMap::new();
    for t in [&acme, &globex] {
        let seven = SettingsUpdate {
            days_to_sync: Some(7),
            ..Default::default()
        };
        app.update_settings(t, &seven).await.unwrap();
        store
            .upsert_objects(t, Target::Company, &companies)
            .await
            .unwrap();
        let input = MappingInput {
            source: MappingKind::Feature {
                feature_id: feature.clone(),
                minutes_metric: None,
            },
            target: Target::Company,
            metric_name: "Clicks".into(),
            passive: false,
            multi_app: false,
            auto_create_users: false,
            segment_id: None,
            enabled: true,
        };
        let m = if *t == acme {
            app.create_mapping(t, &input).await.unwrap()
        } else {
            // globex's Pendo answers nowhere, so creating its mapping would fail its check:
            // the mapping is stored as if made before its region went down.
            let i = store.get_integration(t).await.unwrap().unwrap();
            let m = input.validate(&i, MappingId::random(), &[], now).unwrap();
            store
                .reset_mapping_state(t, &m.id, i.generation)
                .await
                .unwrap();
            store.put_mapping(&m).await.unwrap();
            m
        };
        mapping_of.insert(t.clone(), m.id);
    }
    let receive = |url: String| {
        let sqs = aws.sqs.clone();
        async move {
            sqs.receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default()
        }
    };

    // Act 1: the daily schedule, from the EventBridge fixture.
    let ev: EventBridgeEvent = serde_json::from_str(SCHEDULE).unwrap();
    let out = handle_schedule(&scheduler, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();

    // Assert 1: one planning message per tenant on the resync queue, which the resync
    // function plans: two runs, one 7-day chunk each on the fetch queue, ending on the last
    // complete day in UTC (no timezone): 2026-11-05 15:00Z → 2026-11-03.
    assert_eq!(out.tenants, 2);
    let plans = receive(resync_url.clone()).await;
    assert_eq!(plans.len(), 2);
    let planned = handle_resync_batch(&resync, BatchConfig::default(), event(&plans))
        .await
        .unwrap();
    assert!(planned.batch_item_failures.is_empty());
    for m in &plans {
        aws.delete(&resync_url, m).await;
    }
    let batch = receive(fetch_url.clone()).await;
    assert_eq!(batch.len(), 2);
    let mut planned = BTreeSet::new();
    for m in &batch {
        let Ok(QueueMessage::Fetch(f)) = QueueMessage::decode(m.body.as_deref().unwrap()) else {
            panic!("not a fetch message: {:?}", m.body);
        };
        assert_eq!(f.mapping_id, mapping_of[&f.tenant]);
        planned.insert((f.tenant.to_string(), f.from, f.to));
    }
    let want: BTreeSet<_> = ["acme-cs", "globex-cs"]
        .iter()
        .map(|t| (t.to_string(), d("2026-10-28"), d("2026-11-03")))
        .collect();
    assert_eq!(planned, want);

    // Act 2: deliver the batch as the event source mapping does, settling each message by the
    // response: acknowledged ones deleted, reported ones left (made visible again at once, as
    // if the visibility timeout had passed), until the queue is empty.
    let config = BatchConfig {
        max_receives: MAX_RECEIVES,
        concurrency: 4,
        ..BatchConfig::default()
    };
    let mut rounds = Vec::new();
    let mut msgs = batch;
    while !msgs.is_empty() {
        let r = handle_fetch_batch(&fetch, config, event(&msgs))
            .await
            .unwrap();
        let failed: Vec<String> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let mut round = Vec::new();
        for m in &msgs {
            let f = match QueueMessage::decode(m.body.as_deref().unwrap()) {
                Ok(QueueMessage::Fetch(f)) => f,
                _ => unreachable!(),
            };
            let single = event(std::slice::from_ref(m));
            let retried = failed.contains(m.message_id.as_ref().unwrap());
            round.push((
                f.tenant.to_string(),
                receive_count(&single.payload.records[0]),
                retried,
            ));
            if retried {
                aws.sqs
                    .change_message_visibility()
                    .queue_url(&fetch_url)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                aws.delete(&fetch_url, m).await;
            }
        }
        round.sort();
        rounds.push(round);
        msgs = receive(fetch_url.clone()).await;
        assert!(rounds.len() <= MAX_RECEIVES as usize, "{rounds:?}");
    }

    // Assert 2: only globex's chunk was reported, each time; its last receive was given up
    // (acknowledged) and recorded on its mapping. Nothing reached the dead-letter queue.
    let s = |t: &str| t.to_string();
    assert_eq!(
        rounds,
        vec![
            vec![(s("acme-cs"), 1, false), (s("globex-cs"), 1, true)],
            vec![(s("globex-cs"), 2, true)],
            vec![(s("globex-cs"), 3, false)],
        ]
    );
    assert!(receive(fetch_dlq).await.is_empty());
    let acme_state = store
        .get_mapping_state(&acme, &mapping_of[&acme])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acme_state.last_synced_day, Some(d("2026-11-03")));
    assert_eq!(acme_state.last_error, None);
    let globex_state = store
        .get_mapping_state(&globex, &mapping_of[&globex])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(globex_state.last_synced_day, None);
    assert!(globex_state.last_error.is_some());
    let rows = store.export(Some(&acme)).await.unwrap();
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r.day >= d("2026-10-28") && r.day <= d("2026-11-03")));
    assert!(store.export(Some(&globex)).await.unwrap().is_empty());
    gate.assert_no_denials();
}
