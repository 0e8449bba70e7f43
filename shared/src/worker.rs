//! The local worker pool: consumes the durable queue kept in the embedded store the way
//! Lambda's SQS event source would (at-least-once, failed messages retried after a delay,
//! dead-lettered after the last receive), until the queue is empty; and what a local process
//! resumes when it starts on a folder whose last process died with work in its queue.

use crate::app::App;
use crate::domain::{ImportId, RunId, RunKind, TenantId};
use crate::queue::embedded::{ConsumerLock, Delivery, EmbeddedQueue};
use crate::queue::messages::QueueMessage;
use crate::queue::QueueError;
use crate::store::embedded::EmbeddedStore;
use crate::sync::processed::{ProcessError, Processed};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of a drain, for progress display.
#[derive(Debug, Default)]
pub struct DrainStats {
    pub processed: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub superseded: AtomicU64,
    /// Deliveries of chunks already over, acknowledged without work.
    pub duplicates: AtomicU64,
}

impl DrainStats {
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.processed.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.superseded.load(Ordering::Relaxed),
        )
    }
}

/// Receive errors in a row after which a worker stops (the store stays unusable).
const MAX_RECEIVE_ERRORS: u32 = 50;

/// Processes messages with `workers` concurrent workers until the queue is empty (including
/// messages enqueued while draining, such as a re-sync's fan-out).
pub async fn drain(app: Arc<App>, queue: EmbeddedQueue, workers: usize, stats: Arc<DrainStats>) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (app, queue, stats) = (app.clone(), queue.clone(), stats.clone());
        set.spawn(async move { work(&app, &queue, &stats).await });
    }
    while set.join_next().await.is_some() {}
}

async fn work(app: &App, queue: &EmbeddedQueue, stats: &DrainStats) {
    let mut errors = 0;
    loop {
        let delivery = match queue.receive() {
            Ok(Some(d)) => d,
            Ok(None) => match queue.next_visible_in() {
                Ok(None) => return,
                Ok(Some(wait)) => {
                    let wait = wait.clamp(Duration::from_millis(1), Duration::from_millis(50));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::Chain(&e), "queue unreadable");
                    return;
                }
            },
            Err(e) => {
                errors += 1;
                tracing::warn!(error = %crate::error::Chain(&e), errors, "could not receive from the queue");
                if errors >= MAX_RECEIVE_ERRORS {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        errors = 0;
        process(app, queue, stats, &delivery).await;
    }
}

async fn process(app: &App, queue: &EmbeddedQueue, stats: &DrainStats, delivery: &Delivery) {
    let last = delivery.receive_count >= queue.settings().max_receives;
    let outcome = app.process_message(&delivery.body, last).await;
    let answered = match outcome {
        Ok(Processed::Done(_)) => {
            stats.processed.fetch_add(1, Ordering::Relaxed);
            if matches!(
                QueueMessage::decode(&delivery.body),
                Ok(QueueMessage::Fetch(_))
            ) {
                crate::stall::point("chunk-written").await;
            }
            queue.ack(delivery)
        }
        Ok(Processed::Superseded) => {
            stats.superseded.fetch_add(1, Ordering::Relaxed);
            queue.ack(delivery)
        }
        Ok(Processed::Duplicate) => {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            queue.ack(delivery)
        }
        Err(e @ ProcessError::Permanent(_)) => {
            tracing::warn!(error = %e.message(), "message failed permanently");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            queue.ack(delivery)
        }
        Err(e @ ProcessError::Retryable(_)) => {
            tracing::warn!(error = %e.message(), receive = delivery.receive_count, "message failed; will retry");
            if last {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.retried.fetch_add(1, Ordering::Relaxed);
            }
            queue.nack(delivery)
        }
    };
    if let Err(e) = answered {
        // The message is delivered again after its visibility timeout; a duplicate is cheap.
        tracing::warn!(error = %crate::error::Chain(&e), message = delivery.id, "could not answer a delivery");
    }
}

/// A run whose messages a starting process found in its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedRun {
    pub tenant: TenantId,
    pub run: RunId,
    pub kind: Option<RunKind>,
    /// Chunks of the run not over yet, of `total` (`None` before the run is planned).
    pub chunks_left: Option<(usize, usize)>,
}

impl std::fmt::Display for ResumedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Some(RunKind::Daily) => "daily sync".to_string(),
            Some(RunKind::SyncNow { mapping_id }) => format!("sync now of mapping {mapping_id}"),
            Some(RunKind::Rebuild { mapping_id }) => format!("rebuild of mapping {mapping_id}"),
            Some(RunKind::Recover { mapping_id }) => format!("recovery of mapping {mapping_id}"),
            Some(RunKind::ResyncAll) | None => "re-sync all".to_string(),
        };
        write!(f, "resuming run {} ({kind} of {}): ", self.run, self.tenant)?;
        match self.chunks_left {
            Some((left, total)) => write!(f, "{left} of {total} chunks left"),
            None => write!(f, "not planned yet"),
        }
    }
}

/// A directory import whose next page a starting process found in its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedImport {
    pub tenant: TenantId,
    pub import: ImportId,
    /// Pages done before.
    pub pages: u32,
}

impl std::fmt::Display for ResumedImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resuming import {} (directory of {}): {} pages done",
            self.import, self.tenant, self.pages
        )
    }
}

/// What a process resumed when it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Messages the dead process had in flight, made visible again.
    pub returned: usize,
    /// Holds on chunks and plannings the dead process's workers had, ended.
    pub holds_ended: usize,
    /// The runs with messages in the queue, in the order they were queued.
    pub runs: Vec<ResumedRun>,
    /// The directory imports with a page in the queue.
    pub imports: Vec<ResumedImport>,
}

/// Takes over what the folder's last consumer left when it died: its messages in flight are
/// visible again at once, the holds its workers had on chunks and plannings end (so the
/// redeliveries take them over instead of waiting for the leases), and the runs with work in
/// the queue are listed. `_lock` proves that no other process consumes the folder.
///
/// # Errors
/// `QueueError` when the queue or the store cannot be read.
pub async fn resume(
    _lock: &ConsumerLock,
    app: &App,
    queue: &EmbeddedQueue,
    store: &EmbeddedStore,
) -> Result<Resumed, QueueError> {
    let returned = queue.return_in_flight()?;
    let holds_ended = store.end_holds_of_dead_workers()?;
    let mut runs: Vec<(TenantId, RunId)> = Vec::new();
    let mut imports: Vec<ResumedImport> = Vec::new();
    for kept in queue.messages()? {
        let key = match QueueMessage::decode(&kept.body) {
            Ok(QueueMessage::Fetch(m)) => (m.tenant, m.run_id),
            Ok(QueueMessage::Resync(m)) => (m.tenant, m.run_id),
            Ok(QueueMessage::Plan(m)) => (m.tenant, RunId::daily(m.day)),
            Ok(QueueMessage::Run(m)) => (m.tenant, m.run_id),
            Ok(QueueMessage::Purge(_)) => continue,
            Ok(QueueMessage::Import(m)) => {
                if !imports.iter().any(|i| i.import == m.import_id) {
                    imports.push(ResumedImport {
                        tenant: m.tenant,
                        import: m.import_id,
                        pages: m.page,
                    });
                }
                continue;
            }
            Err(_) => continue,
        };
        if !runs.contains(&key) {
            runs.push(key);
        }
    }
    let mut out = Vec::with_capacity(runs.len());
    for (tenant, run) in runs {
        let stored = app.run(&tenant, &run).await.ok();
        let chunks_left = stored.as_ref().filter(|r| r.planned).map(|r| {
            let left = r.chunks.iter().filter(|c| !c.status.is_final()).count();
            (left, r.chunks.len())
        });
        out.push(ResumedRun {
            kind: stored.map(|r| r.kind),
            tenant,
            run,
            chunks_left,
        });
    }
    Ok(Resumed {
        returned,
        holds_ended,
        runs: out,
        imports,
    })
}
