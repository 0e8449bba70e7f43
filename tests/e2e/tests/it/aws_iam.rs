//! A permissions fault on AWS reads as one: a call the function's policy does not allow
//! (AWS's rule: `AccessDeniedException`, the same answer on every retry) fails its message at
//! once instead of being redelivered until it dead-letters, and the mapping shows the error
//! naming the function's role, the action and the resource.

use crate::aws_local::{aws_stack, configure, drain_through_handlers, Aws};
use crate::configurator::Captured;
use crate::iam_gate::Function;
use pendo_sync::store::prelude::*;

#[tokio::test]
async fn a_denied_call_fails_its_chunk_at_once_naming_the_function_the_action_and_the_resource() {
    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    configure(&s.app, s.store.as_ref(), &s.tenant, &s.sim).await;
    // fetch's policy as it was before the IAM audit: no BatchGetItem on the config table,
    // which finishing a chunk needs (the run's header and the mapping's counters together).
    s.gate.revoke(
        Function::Fetch,
        "dynamodb:BatchGetItem",
        &s.gate.tables.config,
    );
    s.app.resync_all(&s.tenant).await.unwrap();
    // The functions' JSON logs (the template's metric filter counts `"aws_refused":true`).
    let (captured, guard) = Captured::logs("info");
    let delivered = drain_through_handlers(&aws, &s, &queue).await;
    drop(guard);
    let logs = captured.text();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(r#""aws_refused":true"#))
        .collect();
    assert_eq!(refused.len(), 1, "{logs}");
    assert!(refused[0].contains(r#""level":"ERROR""#), "{}", refused[0]);

    // The Re-sync all message, then the end-user chunk (the company chunk waits for the users
    // it creates): each delivered once, none redelivered (5 receives each before).
    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    let denied = s.gate.denials();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].starts_with("fetch: dynamodb:BatchGetItem on "));
    let users = s
        .app
        .mappings(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.metric_name == "Feature uses")
        .unwrap();
    let state = s
        .store
        .get_mapping_state(&s.tenant, &users.id)
        .await
        .unwrap()
        .unwrap();
    let error = state
        .last_error
        .expect("the mapping shows the error")
        .message;
    for part in [
        "store refused",
        "AccessDeniedException",
        "assumed-role/fetch-role/fetch",
        "dynamodb:BatchGetItem",
        &format!("table/{}", s.gate.tables.config),
    ] {
        assert!(error.contains(part), "{part:?} not in {error:?}");
    }
}
