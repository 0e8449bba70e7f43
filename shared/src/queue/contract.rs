//! The queue contract: what every adapter must do with what it is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::Queue;
use crate::domain::{ImportId, MappingId, RunId, TenantId};
use crate::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, QueueMessage, ResyncMessage, Rider,
    RunAction, RunMessage, MESSAGE_VERSION,
};
use chrono::NaiveDate;

/// Sends 23 fetch messages (more than one SQS batch of 10), a resync and an import page; `drain`
/// returns every body received. Each message MUST arrive exactly as sent (order is not promised).
pub async fn sends_arrive_intact(q: &dyn Queue, drain: impl FnOnce() -> Vec<String>) {
    let t = TenantId::parse("t").unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let fetches: Vec<FetchMessage> = (0..23)
        .map(|i| FetchMessage {
            v: MESSAGE_VERSION,
            tenant: t.clone(),
            mapping_id: MappingId::parse("m").unwrap(),
            run_id: RunId::parse("r").unwrap(),
            chunk_index: i,
            generation: 1,
            from: day,
            to: day,
            // Some carry the chunks that share their Pendo call.
            also: (0..i % 3)
                .map(|k| Rider {
                    mapping_id: MappingId::parse(&format!("m{k}")).unwrap(),
                    chunk_index: 100 + k,
                    // A rebuilt mapping's chunk writes a generation of its own.
                    generation: (k == 1).then_some(2),
                })
                .collect(),
        })
        .collect();
    q.send_fetch(&fetches).await.unwrap();
    let resync = ResyncMessage {
        v: MESSAGE_VERSION,
        tenant: t,
        run_id: RunId::parse("r").unwrap(),
        generation: 2,
    };
    q.send_resync(&resync).await.unwrap();
    let import = ImportMessage {
        v: MESSAGE_VERSION,
        tenant: TenantId::parse("t").unwrap(),
        import_id: ImportId::parse("i").unwrap(),
        page: 3,
    };
    q.send_import(&import).await.unwrap();
    let plans: Vec<PlanMessage> = ["t", "u"]
        .iter()
        .map(|t| PlanMessage {
            v: MESSAGE_VERSION,
            tenant: TenantId::parse(t).unwrap(),
            day: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        })
        .collect();
    q.send_plans(&plans).await.unwrap();
    let run = RunMessage {
        v: MESSAGE_VERSION,
        tenant: TenantId::parse("t").unwrap(),
        run_id: RunId::parse("r-run").unwrap(),
        mapping_id: MappingId::parse("m").unwrap(),
        generation: 2,
        action: RunAction::Rebuild,
    };
    q.send_run(&run).await.unwrap();
    let purge = PurgeMessage {
        v: MESSAGE_VERSION,
        tenant: TenantId::parse("t").unwrap(),
        mapping_id: Some(MappingId::parse("m-gone").unwrap()),
    };
    q.send_purge(&purge).await.unwrap();
    let mut got: Vec<QueueMessage> = drain()
        .iter()
        .map(|b| QueueMessage::decode(b).unwrap())
        .collect();
    got.sort_by_key(|m| match m {
        QueueMessage::Fetch(f) => f.chunk_index,
        QueueMessage::Purge(_) => usize::MAX - 5,
        QueueMessage::Resync(_) => usize::MAX - 4,
        QueueMessage::Import(_) => usize::MAX - 3,
        QueueMessage::Run(_) => usize::MAX - 2,
        QueueMessage::Plan(p) if p.tenant.as_str() == "t" => usize::MAX - 1,
        QueueMessage::Plan(_) => usize::MAX,
    });
    let mut want: Vec<QueueMessage> = fetches.into_iter().map(QueueMessage::Fetch).collect();
    want.push(QueueMessage::Purge(purge));
    want.push(QueueMessage::Resync(resync));
    want.push(QueueMessage::Import(import));
    want.push(QueueMessage::Run(run));
    want.extend(plans.into_iter().map(QueueMessage::Plan));
    assert_eq!(got, want);
}
