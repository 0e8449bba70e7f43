//! The purge of the generation a Re-sync all replaced resumes where it was cut off. On AWS the
//! resync function can be stopped mid-purge (its timeout, a crash, a deploy): its message (the
//! purge the switch to the new generation queued) comes back and the next delivery purges again. Deleting manifest by manifest (its items, then the manifest), what
//! was purged stays purged, so the redelivery goes on from what is left instead of deleting
//! every listed item again.

use crate::aws_local::{
    aws_stack, comparable, configure, data_generations, drain_through_handlers, sqs_event, Aws,
    AwsStack,
};
use pendo_sync::lambda::{handle_fetch_batch, handle_resync_batch, BatchConfig};
use pendo_sync::queue::sqs::SqsQueue;
use std::time::Duration;

/// The data table's BatchWriteItem calls the resync function made so far (its deletes).
fn resync_data_batches(s: &AwsStack) -> usize {
    let data = format!("table/{}", s.gate.tables.data);
    s.gate
        .calls()
        .iter()
        .filter(|c| {
            c.function == crate::iam_gate::Function::Resync
                && c.action == "dynamodb:BatchWriteItem"
                && c.resource.ends_with(&data)
        })
        .count()
}

/// A stack with one generation written, a second Re-sync all built and shown, and the purge of
/// the first generation its switch queued received (not yet handled).
async fn second_resync(aws: &Aws) -> (AwsStack, SqsQueue, Vec<aws_sdk_sqs::types::Message>) {
    let (s, queue) = aws_stack(aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    s.app.resync_all(&s.tenant).await.unwrap();
    drain_through_handlers(aws, &s, &queue).await;
    s.app.resync_all(&s.tenant).await.unwrap();
    let plan = aws.receive(queue.resync_url()).await;
    assert_eq!(plan.len(), 1);
    let r = handle_resync_batch(&s.resync, BatchConfig::default(), sqs_event(&plan))
        .await
        .unwrap();
    assert!(r.batch_item_failures.is_empty());
    aws.delete(queue.resync_url(), &plan[0]).await;
    loop {
        let msgs = aws.receive(queue.fetch_url()).await;
        if msgs.is_empty() {
            break;
        }
        let r = handle_fetch_batch(&s.fetch, BatchConfig::default(), sqs_event(&msgs))
            .await
            .unwrap();
        assert!(r.batch_item_failures.is_empty());
        for m in &msgs {
            aws.delete(queue.fetch_url(), m).await;
        }
    }
    let i = s.app.integration(&s.tenant).await.unwrap();
    assert_eq!(
        (i.generation, i.read_generation(), i.purge_pending),
        (3, 3, true)
    );
    let msgs = aws.receive(queue.resync_url()).await;
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0]
        .body
        .as_deref()
        .unwrap_or("")
        .contains(r#""type":"purge""#));
    (s, queue, msgs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_cut_off_mid_way_goes_on_from_where_it_stopped() {
    // The reference: the same second Re-sync all, never cut off.
    let aws = Aws::connect().await;
    let (clean, clean_queue, msgs) = second_resync(&aws).await;
    let before = resync_data_batches(&clean);
    let r = handle_resync_batch(&clean.resync, BatchConfig::default(), sqs_event(&msgs))
        .await
        .unwrap();
    assert!(r.batch_item_failures.is_empty());
    let whole = resync_data_batches(&clean) - before;
    assert!(whole >= 6, "a purge of {whole} batches is too small to cut");
    aws.delete(clean_queue.resync_url(), &msgs[0]).await;
    drain_through_handlers(&aws, &clean, &clean_queue).await;

    // Cut off after a third of its delete batches: the invocation is gone mid-purge.
    let aws = Aws::connect().await;
    let (s, queue, msgs) = second_resync(&aws).await;
    let before = resync_data_batches(&s);
    let cut_at = before + whole / 3;
    let handler = handle_resync_batch(&s.resync, BatchConfig::default(), sqs_event(&msgs));
    let watch = async {
        while resync_data_batches(&s) < cut_at {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    // The handler is dropped where it stands when the watch ends first.
    tokio::select! {
        _ = handler => panic!("the purge ended before it could be cut"),
        _ = tokio::time::timeout(Duration::from_secs(60), watch) => {}
    }
    let first = resync_data_batches(&s) - before;
    assert!(
        first >= whole / 3 && first < whole,
        "cut after {first} of {whole}"
    );

    // The message comes back after the queue's visibility timeout (90 min); the next delivery
    // purges what is left.
    s.clock
        .set(s.clock.now_value() + chrono::Duration::minutes(31));
    aws.sqs
        .change_message_visibility()
        .queue_url(queue.resync_url())
        .receipt_handle(msgs[0].receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let before = resync_data_batches(&s);
    drain_through_handlers(&aws, &s, &queue).await;
    let second = resync_data_batches(&s) - before;
    eprintln!("purge: {whole} delete batches whole; cut after {first}, then {second}");
    // Only the batch in flight when it was cut (or the manifest whose head it had not yet
    // deleted) is done twice; never the whole purge again.
    assert!(
        first + second <= whole + 2,
        "{first} + {second} > {whole} + 2"
    );
    // Nothing of the older generation is left, and the tenant reads what the run never cut
    // off reads.
    let i = s.app.integration(&s.tenant).await.unwrap();
    assert!(!i.purge_pending);
    let generation = i.generation;
    let (items, manifests) = data_generations(&aws, &s.tenant).await;
    assert!(items.iter().chain(&manifests).all(|g| *g == generation));
    assert_eq!(
        comparable(&s.app, &s.tenant).await,
        comparable(&clean.app, &clean.tenant).await
    );
    s.gate.assert_no_denials();
}
