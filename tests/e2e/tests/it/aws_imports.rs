//! A directory import from Pendo on AWS: its pages travel on the real SQS resync queue to the
//! resync function's handler, every message delivered twice, and its record and the directory
//! live in DynamoDB (moto). The directory it leaves equals the embedded store's, and Pendo is
//! called once per page.

use crate::aws_local::{aws_stack, drain_twice_through_handlers, Aws};
use crate::helpers::Stack;
use pendo_sync::app::imports::ImportRequest;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::*;
use pendo_sync::store::Store;

const AGG: &str = "/api/v1/aggregation";

fn request() -> ImportRequest {
    ImportRequest {
        company_name_field: Some("metadata.agent.name".into()),
        page_rows: Some(40),
        ..ImportRequest::default()
    }
}

fn mappings() -> SettingsUpdate {
    SettingsUpdate {
        field_mappings: Some(FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            name: Some("metadata.agent.firstname".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) async fn directory(
    store: &dyn Store,
    t: &TenantId,
) -> (Vec<DirectoryObject>, Vec<EndUser>) {
    let mut companies = store.list_objects(t, Target::Company).await.unwrap();
    companies.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    let mut users = store.list_end_users(t).await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    (companies, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_through_sqs_dynamo_and_the_resync_handler_equals_the_embedded_one() {
    let embedded = Stack::start().await;
    embedded.settings(mappings()).await;
    embedded
        .app
        .start_import(&embedded.tenant, &request())
        .await
        .unwrap();
    embedded.drain().await;
    let want = directory(&embedded.store, &embedded.tenant).await;
    assert!(!want.1.is_empty());

    let aws = Aws::connect().await;
    let (s, queue) = aws_stack(&aws).await;
    s.app.update_settings(&s.tenant, &mappings()).await.unwrap();
    let c = s.sim.control();
    let before = c.calls(AGG);
    let job = s.app.start_import(&s.tenant, &request()).await.unwrap();
    let (fetches, deliveries) = drain_twice_through_handlers(&aws, &s, &queue).await;
    let done = s.app.import(&s.tenant, &job.id).await.unwrap();
    assert_eq!(done.state, ImportState::Finished, "{done:?}");
    assert_eq!(fetches, 0, "an import sends nothing to the fetch queue");
    assert_eq!(
        deliveries,
        2 * done.pages as usize,
        "each page once, delivered twice"
    );
    assert_eq!(
        c.calls(AGG) - before,
        u64::from(done.pages),
        "one Pendo call per page"
    );
    assert_eq!(directory(s.store.as_ref(), &s.tenant).await, want);
    s.gate.assert_no_denials();
}
