//! Re-sync all without a gap on DynamoDB and SQS, through the Lambda handlers: between every
//! batch the handlers take, each read the configurator's app makes (the export, an object's
//! metrics and series, recent activity, system metrics) shows the last complete generation or
//! the new one, never a mix, and switches once. DynamoDB's rule this stands for: the switch is one
//! conditional PutItem of the integration item, and every read first reads that item (strongly
//! consistent) and then only the shown generation's partitions.

use crate::aws_local::{aws_stack, comparable, configure, drain_round, Aws};
use crate::helpers::{assert_old_then_new, objects_to_read};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::*;
use pendo_sync::store::prelude::*;

/// Every read, one entry per call of the app (each reads one generation).
async fn reads(s: &crate::aws_local::AwsStack, objects: &[ObjectRef]) -> Vec<String> {
    let (app, t) = (&s.app, &s.tenant);
    let last = s.clock.now_value().date_naive();
    let from = last - chrono::Duration::days(40);
    let mut out = vec![format!("{:?}", comparable(app, t).await)];
    for o in objects {
        let metrics = app.object_metrics(t, o).await.unwrap();
        out.push(format!("{metrics:?}"));
        for m in &metrics {
            let series = app
                .object_series(t, o, &m.metric, from, last)
                .await
                .unwrap();
            out.push(format!("{series:?}"));
        }
        let activity = app.object_activity(t, o, from, 50).await.unwrap();
        out.push(format!("{activity:?}"));
        out.push(format!("{:?}", app.system_metrics(t, o).await.unwrap()));
    }
    out
}

/// Drains the queues through the handlers one message a queue at a time, reading everything
/// before and after each batch: each read shows `old` and then the reads at the end, never
/// anything else, with at least two polls wholly old (before the first batch, and between two
/// batches of the work) and one wholly new. Returns the reads at the end.
async fn polls_between_batches(
    aws: &Aws,
    s: &crate::aws_local::AwsStack,
    queue: &pendo_sync::queue::sqs::SqsQueue,
    objects: &[ObjectRef],
    old: &[String],
) -> Vec<String> {
    let mut polls = vec![reads(s, objects).await];
    while drain_round(aws, s, queue, 1).await.is_some() {
        polls.push(reads(s, objects).await);
    }
    let new = reads(s, objects).await;
    let (wholly_old, wholly_new) = assert_old_then_new(&polls, old, &new);
    eprintln!(
        "{} polls between handler batches: {wholly_old} wholly old, {wholly_new} wholly new",
        polls.len()
    );
    assert!(
        wholly_old >= 2 && wholly_new >= 1,
        "{wholly_old} {wholly_new}"
    );
    new
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_dynamo_show_the_old_values_or_the_new_through_a_resync_all() {
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    s.app.resync_all(&s.tenant).await.unwrap();
    while drain_round(&aws, &s, &queue, 10).await.is_some() {}
    let objects = objects_to_read(&s.app.export(Some(&s.tenant)).await.unwrap());
    assert_eq!(objects.len(), 4);
    let old = reads(&s, &objects).await;
    // The next generation has more days: a mix would show.
    s.app
        .update_settings(
            &s.tenant,
            &SettingsUpdate {
                days_to_sync: Some(12),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.app.resync_all(&s.tenant).await.unwrap();
    let new = polls_between_batches(&aws, &s, &queue, &objects, &old).await;
    assert_ne!(new[0], old[0]);
    let i = s.app.integration(&s.tenant).await.unwrap();
    assert_eq!(
        (i.read_generation(), i.purge_pending),
        (i.generation, false)
    );
    s.gate.assert_no_denials();
}

/// One mapping's rebuild (its metric renamed in place) through the handlers on DynamoDB and
/// SQS: between every batch, each read shows the mapping's old values or its new ones, never a
/// mix; reads of that mapping switch once (one conditional PutItem of the integration: its
/// `own` attribute, which every read takes with `generation` and `published`), and its old
/// values are purged by the purge message the switch queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_dynamo_show_a_rebuilt_mappings_old_values_or_the_new() {
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    // Two chunks a mapping (seven days each): the poll between them sees a half-built rebuild.
    let twelve = SettingsUpdate {
        days_to_sync: Some(12),
        ..Default::default()
    };
    s.app.update_settings(&s.tenant, &twelve).await.unwrap();
    s.app.resync_all(&s.tenant).await.unwrap();
    while drain_round(&aws, &s, &queue, 10).await.is_some() {}
    let objects = objects_to_read(&s.app.export(Some(&s.tenant)).await.unwrap());
    let m = s
        .app
        .mappings(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.target == Target::Company)
        .unwrap();
    let name = m.metric_name.clone();
    let renamed = format!("{name} v2");
    crate::helpers::rename(&s.app, &s.tenant, &name, &renamed).await;
    let old = reads(&s, &objects).await;
    let before = comparable(&s.app, &s.tenant).await;
    s.app.rebuild_mapping(&s.tenant, &m.id).await.unwrap();
    polls_between_batches(&aws, &s, &queue, &objects, &old).await;
    // The same values under the new name.
    let mut want: Vec<ExportRow> = before
        .into_iter()
        .map(|mut r| {
            if r.record == "value" && r.metric == name {
                r.metric = renamed.clone();
            }
            r
        })
        .collect();
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(comparable(&s.app, &s.tenant).await, want);
    let i = s.app.integration(&s.tenant).await.unwrap();
    let g = i.generations();
    assert_eq!(
        (g.shows(&m.id), g.writes(&m.id)),
        (i.generation + 1, i.generation + 1)
    );
    assert!(!i.purge_pending);
    // Nothing left that no mapping shows or writes.
    assert_eq!(s.store.purge_generations(&s.tenant, &g).await.unwrap(), 0);
    s.gate.assert_no_denials();
}
