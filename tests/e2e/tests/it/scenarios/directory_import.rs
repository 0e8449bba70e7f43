//! The directory imported from Pendo on the small preset: a dry run that counts exactly what the
//! import then does, a directory equal (field by field) to the simulator's accounts and
//! identified visitors by the import's rules, nothing non-empty overwritten, a second import
//! that changes nothing, one Pendo call per page, and a crash between a page's record and the
//! next page's message that the redelivery finishes.

use crate::helpers::*;
use async_trait::async_trait;
use pendo_sync::app::imports::ImportRequest;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::*;
use pendo_sync::queue::embedded::EmbeddedQueue;
use pendo_sync::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, ResyncMessage, RunMessage,
};
use pendo_sync::queue::{Queue, QueueError};
use pendo_sync::store::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const AGG: &str = "/api/v1/aggregation";
const PAGE: u32 = 50;

fn request(dry_run: bool) -> ImportRequest {
    ImportRequest {
        dry_run,
        company_name_field: Some("metadata.agent.name".into()),
        page_rows: Some(PAGE),
        ..ImportRequest::default()
    }
}

/// Email, first and last name mapped; two companies and one end user already in the directory.
async fn setup(s: &Stack) -> (String, String, String) {
    s.settings(SettingsUpdate {
        field_mappings: Some(FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            name: Some("metadata.agent.firstname".into()),
            surname: Some("metadata.agent.lastname".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let sub = s.sim.subscription();
    let (unnamed, named) = (sub.accounts[0].id.clone(), sub.accounts[1].id.clone());
    let objs = [
        DirectoryObject {
            external_id: unnamed.clone(),
            name: None,
            company_id: None,
        },
        DirectoryObject {
            external_id: named.clone(),
            name: Some("Kept Name".into()),
            company_id: None,
        },
    ];
    s.store
        .upsert_objects(&s.tenant, Target::Company, &objs)
        .await
        .unwrap();
    // A known visitor of the first company, with a name of its own and no email.
    let known = sub
        .visitors
        .iter()
        .find(|v| !v.anonymous && v.account == Some(0) && v.email.is_some())
        .unwrap();
    s.add_user(&unnamed, Some(&known.id), None, Some("Pre"))
        .await;
    (unnamed, named, known.id.clone())
}

/// The end users an import gives, from the simulator's identified visitors in id order: the
/// first visitor of a company with an email keeps it; a later one is skipped.
fn expected_users(s: &Stack, known: &str) -> (BTreeMap<(String, String), EndUser>, u64) {
    let sub = s.sim.subscription();
    let mut visitors: Vec<_> = sub.visitors.iter().filter(|v| !v.anonymous).collect();
    visitors.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = BTreeMap::new();
    let mut emails: HashSet<(String, String)> = HashSet::new();
    let mut taken = 0;
    for v in visitors {
        let company = sub.accounts[v.account.unwrap()].id.clone();
        let email = v.email.as_ref().map(|e| e.trim().to_lowercase());
        if let Some(e) = &email {
            if !emails.insert((company.clone(), e.clone())) {
                taken += 1;
                continue;
            }
        }
        let text = |t: &Option<String>| t.clone().filter(|t| !t.trim().is_empty());
        let user = EndUser {
            id: format!("{company}|x:{}", v.id),
            company_id: company.clone(),
            external_id: Some(v.id.clone()),
            email,
            // The known user keeps its own name.
            name: if v.id == known {
                Some("Pre".into())
            } else {
                text(&v.first_name)
            },
            surname: text(&v.last_name),
        };
        out.insert((company, v.id.clone()), user);
    }
    (out, taken)
}

async fn directory(s: &Stack) -> (Vec<DirectoryObject>, BTreeMap<(String, String), EndUser>) {
    let store = &s.store;
    let mut companies = store
        .list_objects(&s.tenant, Target::Company)
        .await
        .unwrap();
    companies.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    let users = store
        .list_end_users(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|u| ((u.company_id.clone(), u.external_id.clone().unwrap()), u))
        .collect();
    (companies, users)
}

/// Pendo calls of an import of `accounts` and `visitors` rows at `PAGE` rows a call (a full page
/// is followed by one more call, which finds the stage's end).
fn pages(accounts: usize, visitors: usize) -> u64 {
    (accounts / PAGE as usize + 1 + visitors / PAGE as usize + 1) as u64
}

#[tokio::test]
async fn an_import_fills_the_directory_from_pendo_as_its_dry_run_said() {
    let s = Stack::start().await;
    let (unnamed, named, known) = setup(&s).await;
    let sub = s.sim.subscription();
    let identified = sub.visitors.iter().filter(|v| !v.anonymous).count();
    let (want_users, taken) = expected_users(&s, &known);
    let c = s.sim.control();

    let before = c.calls(AGG);
    let preview = s
        .app
        .preview_import(&s.tenant, &request(true))
        .await
        .unwrap();
    let calls = pages(sub.accounts.len(), identified);
    assert_eq!(c.calls(AGG) - before, calls);
    assert_eq!(u64::from(preview.pendo_calls), calls);
    let accounts = sub.accounts.len() as u64;
    assert_eq!(
        preview.companies,
        ImportCounts {
            read: accounts,
            created: accounts - 2,
            filled: 1,
            unchanged: 1,
            skipped: BTreeMap::new(),
        }
    );
    let skipped: BTreeMap<String, u64> = if taken > 0 {
        [("emailTaken".to_string(), taken)].into()
    } else {
        BTreeMap::new()
    };
    assert_eq!(
        preview.end_users,
        ImportCounts {
            read: identified as u64,
            created: identified as u64 - 1 - taken,
            filled: 1,
            unchanged: 0,
            skipped: skipped.clone(),
        }
    );
    assert_eq!(
        preview.sample.iter().filter(|r| r.action != "skip").count(),
        20
    );
    let first = &preview.sample[0];
    assert_eq!(
        (
            first.pendo_id.as_str(),
            first.action.as_str(),
            first.name.as_deref()
        ),
        (
            unnamed.as_str(),
            "fill",
            Some(sub.accounts[0].name.as_str())
        )
    );
    // A dry run writes nothing.
    assert_eq!(directory(&s).await.0.len(), 2);
    assert_eq!(s.app.imports(&s.tenant).await.unwrap(), vec![]);

    let before = c.calls(AGG);
    let started = s
        .app
        .start_import(&s.tenant, &request(false))
        .await
        .unwrap();
    assert_eq!(started.state, ImportState::Running);
    s.drain().await;
    let done = s.app.import(&s.tenant, &started.id).await.unwrap();
    assert_eq!(c.calls(AGG) - before, calls, "one Pendo call per page");
    assert_eq!(
        (
            done.state,
            done.stage,
            u64::from(done.pages),
            done.error.clone()
        ),
        (ImportState::Finished, ImportStage::Done, calls, None)
    );
    assert_eq!(
        (&done.companies, &done.end_users),
        (&preview.companies, &preview.end_users)
    );

    let (companies, users) = directory(&s).await;
    let want_companies: Vec<(String, Option<String>)> = {
        let mut v: Vec<_> = sub
            .accounts
            .iter()
            .map(|a| {
                let name = if a.id == named {
                    "Kept Name"
                } else {
                    a.name.as_str()
                };
                (a.id.clone(), Some(name.to_string()))
            })
            .collect();
        v.sort();
        v
    };
    let got: Vec<(String, Option<String>)> = companies
        .iter()
        .map(|c| (c.external_id.clone(), c.name.clone()))
        .collect();
    assert_eq!(got, want_companies);
    assert_eq!(users.len(), want_users.len());
    for (k, want) in &want_users {
        assert_eq!(users.get(k), Some(want), "{k:?}");
    }

    // Again, a minute later: nothing changes, at the same cost.
    s.clock.set(s.now() + chrono::Duration::minutes(1));
    let before = c.calls(AGG);
    let again = s
        .app
        .start_import(&s.tenant, &request(false))
        .await
        .unwrap();
    s.drain().await;
    let again = s.app.import(&s.tenant, &again.id).await.unwrap();
    assert_eq!(c.calls(AGG) - before, calls);
    assert_eq!(
        (
            again.companies.created,
            again.companies.filled,
            again.end_users.created,
            again.end_users.filled
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(again.end_users.skipped, skipped);
    assert_eq!(directory(&s).await, (companies, users));
    let listed: Vec<ImportId> = s
        .app
        .imports(&s.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![again.id, started.id.clone()]);

    // A page's message delivered again costs nothing.
    let before = c.calls(AGG);
    s.queue
        .send_raw(&[
            pendo_sync::queue::messages::QueueMessage::Import(ImportMessage {
                v: pendo_sync::queue::messages::MESSAGE_VERSION,
                tenant: s.tenant.clone(),
                import_id: started.id.clone(),
                page: 1,
            })
            .encode(),
        ])
        .unwrap();
    s.drain().await;
    assert_eq!(c.calls(AGG), before);
    assert_eq!(s.app.import(&s.tenant, &started.id).await.unwrap(), done);
}

/// A queue whose second `send_import` fails: the worker that recorded the first page is left as
/// if it had crashed before queueing the next.
struct LosesOneImportSend {
    inner: EmbeddedQueue,
    sends: AtomicU64,
}

#[async_trait]
impl Queue for LosesOneImportSend {
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError> {
        self.inner.send_fetch(messages).await
    }
    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError> {
        self.inner.send_resync(message).await
    }
    async fn send_import(&self, message: &ImportMessage) -> Result<(), QueueError> {
        if self.sends.fetch_add(1, Ordering::Relaxed) == 1 {
            return Err(QueueError::unavailable("the connection dropped"));
        }
        self.inner.send_import(message).await
    }

    async fn send_plans(&self, messages: &[PlanMessage]) -> Result<(), QueueError> {
        self.inner.send_plans(messages).await
    }

    async fn send_run(&self, message: &RunMessage) -> Result<(), QueueError> {
        self.inner.send_run(message).await
    }

    async fn send_purge(&self, message: &PurgeMessage) -> Result<(), QueueError> {
        self.inner.send_purge(message).await
    }
}

#[tokio::test]
async fn an_import_cut_between_a_page_and_the_next_message_goes_on_at_the_same_cost() {
    let opts = StackOptions {
        wrap_queue: Some(Box::new(|inner| {
            Arc::new(LosesOneImportSend {
                inner,
                sends: AtomicU64::new(0),
            })
        })),
        ..StackOptions::default()
    };
    let s = Stack::build(sim_config(), opts).await;
    setup(&s).await;
    let sub = s.sim.subscription();
    let identified = sub.visitors.iter().filter(|v| !v.anonymous).count();
    let c = s.sim.control();
    let before = c.calls(AGG);
    let job = s
        .app
        .start_import(&s.tenant, &request(false))
        .await
        .unwrap();
    s.drain().await;
    let done = s.app.import(&s.tenant, &job.id).await.unwrap();
    let calls = pages(sub.accounts.len(), identified);
    assert_eq!(done.state, ImportState::Finished);
    assert_eq!(u64::from(done.pages), calls);
    assert_eq!(c.calls(AGG) - before, calls, "no page read twice");
    assert_eq!(done.end_users.read, identified as u64);
}

#[tokio::test]
async fn an_import_refuses_bad_options_and_changes_nothing() {
    let s = Stack::start().await;
    let cases = [
        (
            ImportRequest {
                companies: Some(false),
                end_users: Some(false),
                ..ImportRequest::default()
            },
            "companies",
        ),
        (
            ImportRequest {
                company_name_field: Some("visitor.metadata.agent.name".into()),
                ..ImportRequest::default()
            },
            "companyNameField",
        ),
        (
            ImportRequest {
                page_rows: Some(9),
                ..ImportRequest::default()
            },
            "pageRows",
        ),
    ];
    for (r, field) in cases {
        match s.app.start_import(&s.tenant, &r).await {
            Err(pendo_sync::AppError::Validation(v)) => assert_eq!(v.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    s.settings(SettingsUpdate {
        field_mappings: Some(FieldMappingsInput {
            company_id: Some("visitor.metadata.agent.company".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    match s
        .app
        .start_import(&s.tenant, &ImportRequest::default())
        .await
    {
        Err(pendo_sync::AppError::Validation(v)) => assert_eq!(v.field, "companies"),
        other => panic!("{other:?}"),
    }
    assert!(s.app.imports(&s.tenant).await.unwrap().is_empty());
    assert!(s.queue.is_empty().unwrap());
}
