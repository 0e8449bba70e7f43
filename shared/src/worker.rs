//! The local worker pool: consumes the in-process queue the way Lambda's SQS event source
//! would (at-least-once, failed messages retried after a delay, dead-lettered after the last
//! receive), until the queue is empty.

use crate::app::App;
use crate::queue::in_process::InProcessQueue;
use crate::sync::engine::{ProcessError, Processed};
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

/// Processes messages with `workers` concurrent workers until the queue is empty (including
/// messages enqueued while draining, such as a re-sync's fan-out).
pub async fn drain(
    app: Arc<App>,
    queue: InProcessQueue,
    max_receives: u32,
    workers: usize,
    stats: Arc<DrainStats>,
) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (app, queue, stats) = (app.clone(), queue.clone(), stats.clone());
        set.spawn(async move {
            loop {
                let delivery = match queue.receive() {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        if queue.is_empty() {
                            return;
                        }
                        let wait = queue.next_visible_in().unwrap_or(Duration::from_millis(5));
                        tokio::time::sleep(wait.clamp(Duration::from_millis(1), Duration::from_millis(50))).await;
                        continue;
                    }
                    Err(_) => return,
                };
                let last = delivery.receive_count >= max_receives;
                match app.process_message(&delivery.body, last).await {
                    Ok(Processed::Done(_)) => {
                        stats.processed.fetch_add(1, Ordering::Relaxed);
                        queue.ack(delivery.id).ok();
                    }
                    Ok(Processed::Superseded) => {
                        stats.superseded.fetch_add(1, Ordering::Relaxed);
                        queue.ack(delivery.id).ok();
                    }
                    Ok(Processed::Duplicate) => {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        queue.ack(delivery.id).ok();
                    }
                    Err(ProcessError::Permanent(e)) => {
                        tracing::warn!(error = %e, "message failed permanently");
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        queue.ack(delivery.id).ok();
                    }
                    Err(ProcessError::Retryable(e)) => {
                        tracing::warn!(error = %e, receive = delivery.receive_count, "message failed; will retry");
                        if last {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            stats.retried.fetch_add(1, Ordering::Relaxed);
                        }
                        queue.nack(delivery.id).ok();
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}
