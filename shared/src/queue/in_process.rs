//! `InProcessQueue`: at-least-once delivery inside one process. A received message is invisible
//! until acked or nacked; a nacked one becomes visible again after a delay; after `max_receives`
//! receives a failing message moves to a dead-letter list that can be read.
//! Messages live in memory: after a crash, the next scheduled run re-plans from the cursors,
//! which only ever advance after a chunk's writes succeeded, so nothing is lost.

use super::{Queue, QueueError};
use crate::sync::messages::{FetchMessage, QueueMessage, ResyncMessage};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: u64,
    pub body: String,
    pub receive_count: u32,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    body: String,
    receive_count: u32,
    visible_at: Instant,
    in_flight: bool,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Messages ever put on the queue.
    pushed: u64,
    entries: VecDeque<Entry>,
    dead: Vec<Delivery>,
}

#[derive(Debug, Clone)]
pub struct InProcessQueue {
    inner: Arc<Mutex<Inner>>,
    max_receives: u32,
    pub retry_delay: Duration,
}

impl InProcessQueue {
    pub fn new(max_receives: u32, retry_delay: Duration) -> Self {
        Self {
            inner: Arc::default(),
            max_receives: max_receives.max(1),
            retry_delay,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, QueueError> {
        self.inner
            .lock()
            .map_err(|_| QueueError::Unavailable("queue lock poisoned".into()))
    }

    pub fn push_raw(&self, body: String) -> Result<(), QueueError> {
        let mut g = self.lock()?;
        g.next_id += 1;
        g.pushed += 1;
        let id = g.next_id;
        g.entries.push_back(Entry {
            id,
            body,
            receive_count: 0,
            visible_at: Instant::now(),
            in_flight: false,
        });
        Ok(())
    }

    /// The next visible message, if any.
    pub fn receive(&self) -> Result<Option<Delivery>, QueueError> {
        let mut g = self.lock()?;
        let now = Instant::now();
        let Some(e) = g
            .entries
            .iter_mut()
            .find(|e| !e.in_flight && e.visible_at <= now)
        else {
            return Ok(None);
        };
        e.in_flight = true;
        e.receive_count += 1;
        Ok(Some(Delivery {
            id: e.id,
            body: e.body.clone(),
            receive_count: e.receive_count,
        }))
    }

    /// Removes a processed message.
    pub fn ack(&self, id: u64) -> Result<(), QueueError> {
        self.lock()?.entries.retain(|e| e.id != id);
        Ok(())
    }

    /// Returns a failed message: visible again after the retry delay, or dead-lettered.
    pub fn nack(&self, id: u64) -> Result<(), QueueError> {
        let mut g = self.lock()?;
        let Some(pos) = g.entries.iter().position(|e| e.id == id) else {
            return Ok(());
        };
        if g.entries[pos].receive_count >= self.max_receives {
            if let Some(e) = g.entries.remove(pos) {
                g.dead.push(Delivery {
                    id: e.id,
                    body: e.body,
                    receive_count: e.receive_count,
                });
            }
        } else {
            let e = &mut g.entries[pos];
            e.in_flight = false;
            e.visible_at = Instant::now() + self.retry_delay;
        }
        Ok(())
    }

    /// Messages still queued or in flight.
    pub fn len(&self) -> usize {
        self.lock().map(|g| g.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages ever put on the queue (what a run's sends cost).
    pub fn pushed(&self) -> u64 {
        self.lock().map(|g| g.pushed).unwrap_or(0)
    }

    pub fn dead_letters(&self) -> Vec<Delivery> {
        self.lock().map(|g| g.dead.clone()).unwrap_or_default()
    }

    /// When the next invisible message becomes visible (for a drain loop to sleep until).
    pub fn next_visible_in(&self) -> Option<Duration> {
        let g = self.lock().ok()?;
        let now = Instant::now();
        g.entries
            .iter()
            .filter(|e| !e.in_flight)
            .map(|e| e.visible_at.saturating_duration_since(now))
            .min()
    }
}

#[async_trait]
impl Queue for InProcessQueue {
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError> {
        for m in messages {
            self.push_raw(QueueMessage::Fetch(m.clone()).encode())?;
        }
        Ok(())
    }

    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError> {
        self.push_raw(QueueMessage::Resync(message.clone()).encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_messages_come_back_then_dead_letter() {
        let q = InProcessQueue::new(2, Duration::from_millis(0));
        q.push_raw("a".into()).unwrap();
        let d1 = q.receive().unwrap().unwrap();
        assert!(q.receive().unwrap().is_none(), "in flight is invisible");
        q.nack(d1.id).unwrap();
        let d2 = q.receive().unwrap().unwrap();
        assert_eq!((d2.id, d2.receive_count), (d1.id, 2));
        q.nack(d2.id).unwrap();
        assert!(q.receive().unwrap().is_none());
        assert_eq!(q.dead_letters().len(), 1);
        assert!(q.is_empty());
        assert_eq!(q.pushed(), 1, "a redelivery is not a new message");
    }

    #[test]
    fn delay_hides_a_nacked_message() {
        let q = InProcessQueue::new(5, Duration::from_secs(60));
        q.push_raw("a".into()).unwrap();
        let d = q.receive().unwrap().unwrap();
        q.nack(d.id).unwrap();
        assert!(q.receive().unwrap().is_none());
        assert!(q.next_visible_in().unwrap() > Duration::from_secs(50));
    }

    #[tokio::test]
    async fn in_process_queue_passes_the_queue_contract() {
        let q = InProcessQueue::new(3, Duration::from_millis(0));
        let recv = q.clone();
        super::super::contract::sends_arrive_intact(&q, move || {
            let mut out = Vec::new();
            while let Ok(Some(d)) = recv.receive() {
                let _ = recv.ack(d.id);
                out.push(d.body);
            }
            out
        })
        .await;
    }
}
