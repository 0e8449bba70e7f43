//! `EmbeddedQueue`: the local runner's queue, kept in the embedded store's SQLite file with
//! SQS's semantics, so that a process killed at any point leaves its work where the next one
//! finds it:
//! - at-least-once: a received message is invisible for the visibility timeout; unless it is
//!   deleted (`ack`) by then, it is delivered again;
//! - a returned message (`nack`, a transient failure) is visible again after the retry delay;
//! - each receive counts; a message received `max_receives` times and not deleted is a dead
//!   letter (returned on its last receive, or found visible again after it);
//! - an answer (`ack`, `nack`) names the receive it answers: one to an older receive changes
//!   nothing, as with an SQS receipt handle.
//!
//! One process consumes a folder's queue at a time ([`ConsumerLock`]); when it starts, the
//! messages in flight are those of a process that died, and [`EmbeddedQueue::return_in_flight`]
//! makes them visible at once instead of after their visibility timeout.
//!
//! Times are the wall clock's (milliseconds since the Unix epoch), because they must mean the
//! same to the next process.

use super::{Queue, QueueError};
use crate::queue::messages::{
    FetchMessage, ImportMessage, PlanMessage, PurgeMessage, QueueMessage, ResyncMessage, RunMessage,
};
use crate::store::embedded::{write_tx, EmbeddedStore};
use crate::store::StoreError;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the queue treats its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Receives before a message that is never deleted becomes a dead letter (at least 1).
    pub max_receives: u32,
    /// How long a returned message stays invisible.
    pub retry_delay: Duration,
    /// How long a received message stays invisible unless deleted or returned. At least the
    /// chunk lease (`domain::CHUNK_LEASE_MINUTES`), as on SQS: a redelivery then always finds the
    /// lease of the delivery before it ended.
    pub visibility_timeout: Duration,
}

impl QueueSettings {
    /// The local runner's: 5 receives, 2 s between retries, 30 minutes of visibility (the fetch
    /// queue's in `infra/template.yaml`).
    pub const LOCAL: QueueSettings = QueueSettings {
        max_receives: 5,
        retry_delay: Duration::from_secs(2),
        visibility_timeout: Duration::from_secs(30 * 60),
    };

    /// `LOCAL` with another receive limit and retry delay (tests).
    pub fn with(max_receives: u32, retry_delay: Duration) -> Self {
        Self {
            max_receives,
            retry_delay,
            ..Self::LOCAL
        }
    }
}

/// A message handed to a consumer: its id, and the receive it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub body: String,
    /// This receive's number (1 for the first); an answer names it.
    pub receive_count: u32,
}

/// A message kept in the queue, as [`EmbeddedQueue::messages`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: i64,
    pub body: String,
    pub receive_count: u32,
}

#[derive(Clone)]
pub struct EmbeddedQueue {
    store: EmbeddedStore,
    settings: QueueSettings,
    /// Messages sent through this queue (and its clones) since it was made.
    sent: Arc<AtomicU64>,
}

fn unavailable(e: impl Into<crate::error::Cause>) -> QueueError {
    QueueError::unavailable_from("the embedded queue", e)
}

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        unavailable(e)
    }
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        unavailable(e)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl EmbeddedQueue {
    /// The queue in `store`'s file (or in its memory, for an in-memory store).
    pub fn new(store: &EmbeddedStore, settings: QueueSettings) -> Self {
        Self {
            store: store.clone(),
            settings: QueueSettings {
                max_receives: settings.max_receives.max(1),
                ..settings
            },
            sent: Arc::default(),
        }
    }

    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    /// Puts raw bodies on the queue, all or none.
    pub fn send_raw(&self, bodies: &[String]) -> Result<(), QueueError> {
        let now = now_ms();
        self.store.with_connection(|c| {
            let tx = write_tx(c)?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO queue_messages (body, sent_at, visible_at) VALUES (?1, ?2, ?2)",
                )?;
                for b in bodies {
                    ins.execute(params![b, now])?;
                }
            }
            tx.commit()?;
            Ok(())
        })?;
        self.sent.fetch_add(bodies.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The next visible message, if any, invisible from now on for the visibility timeout.
    /// Visible messages already received `max_receives` times become dead letters instead.
    pub fn receive(&self) -> Result<Option<Delivery>, QueueError> {
        let now = now_ms();
        let (max, hide) = (
            i64::from(self.settings.max_receives),
            ms(self.settings.visibility_timeout),
        );
        Ok(self.store.with_connection(|c| {
            let tx = write_tx(c)?;
            tx.execute(
                "UPDATE queue_messages SET dead_at = ?1
                 WHERE dead_at IS NULL AND visible_at <= ?1 AND receive_count >= ?2",
                params![now, max],
            )?;
            let got = tx
                .query_row(
                    "UPDATE queue_messages SET receive_count = receive_count + 1,
                        visible_at = ?1 + ?2
                     WHERE id = (SELECT id FROM queue_messages
                                 WHERE dead_at IS NULL AND visible_at <= ?1
                                 ORDER BY visible_at, id LIMIT 1)
                     RETURNING id, body, receive_count",
                    params![now, hide],
                    |r| {
                        Ok(Delivery {
                            id: r.get(0)?,
                            body: r.get(1)?,
                            receive_count: count(r.get(2)?),
                        })
                    },
                )
                .optional()?;
            tx.commit()?;
            Ok(got)
        })?)
    }

    /// Deletes a processed message (if `d` is its latest receive).
    pub fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
        Ok(self.store.with_connection(|c| {
            c.execute(
                "DELETE FROM queue_messages WHERE id=?1 AND receive_count=?2 AND dead_at IS NULL",
                params![d.id, i64::from(d.receive_count)],
            )?;
            Ok(())
        })?)
    }

    /// Returns a failed message (if `d` is its latest receive): visible again after the retry
    /// delay, or a dead letter after its last receive.
    pub fn nack(&self, d: &Delivery) -> Result<(), QueueError> {
        let now = now_ms();
        let last = d.receive_count >= self.settings.max_receives;
        Ok(self.store.with_connection(|c| {
            let (id, receive) = (d.id, i64::from(d.receive_count));
            if last {
                c.execute(
                    "UPDATE queue_messages SET dead_at = ?3
                     WHERE id=?1 AND receive_count=?2 AND dead_at IS NULL",
                    params![id, receive, now],
                )?;
            } else {
                c.execute(
                    "UPDATE queue_messages SET visible_at = ?3
                     WHERE id=?1 AND receive_count=?2 AND dead_at IS NULL",
                    params![id, receive, now + ms(self.settings.retry_delay)],
                )?;
            }
            Ok(())
        })?)
    }

    /// Makes every message in flight visible now (receive counts kept). For a consumer that
    /// has just taken the folder's [`ConsumerLock`]: whatever is in flight then was received
    /// by a process that died. Returns how many.
    pub fn return_in_flight(&self) -> Result<usize, QueueError> {
        let now = now_ms();
        Ok(self.store.with_connection(|c| {
            Ok(c.execute(
                "UPDATE queue_messages SET visible_at = ?1
                 WHERE dead_at IS NULL AND visible_at > ?1 AND receive_count > 0",
                params![now],
            )?)
        })?)
    }

    /// Messages queued or in flight (dead letters aside).
    pub fn len(&self) -> Result<usize, QueueError> {
        Ok(self.store.with_connection(|c| {
            let n: i64 = c.query_row(
                "SELECT count(*) FROM queue_messages WHERE dead_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(usize::try_from(n).unwrap_or(0))
        })?)
    }

    pub fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len()? == 0)
    }

    /// Messages sent through this queue and its clones since it was made (what a run's sends
    /// cost; a redelivery is not a new message).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Every message queued or in flight, oldest first.
    pub fn messages(&self) -> Result<Vec<Kept>, QueueError> {
        self.kept("dead_at IS NULL")
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<Kept>, QueueError> {
        self.kept("dead_at IS NOT NULL")
    }

    fn kept(&self, filter: &str) -> Result<Vec<Kept>, QueueError> {
        let sql = format!(
            "SELECT id, body, receive_count FROM queue_messages WHERE {filter} ORDER BY id"
        );
        Ok(self.store.with_connection(|c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([], |r| {
                Ok(Kept {
                    id: r.get(0)?,
                    body: r.get(1)?,
                    receive_count: count(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?)
    }

    /// How long until the next message becomes visible (zero when one is), `None` when the
    /// queue holds none.
    pub fn next_visible_in(&self) -> Result<Option<Duration>, QueueError> {
        let now = now_ms();
        Ok(self.store.with_connection(|c| {
            let at: Option<i64> = c.query_row(
                "SELECT min(visible_at) FROM queue_messages WHERE dead_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(at.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0))))
        })?)
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_fetch(&self, messages: &[FetchMessage]) -> Result<(), QueueError> {
        let bodies: Vec<String> = messages
            .iter()
            .map(|m| QueueMessage::Fetch(m.clone()).encode())
            .collect();
        self.send_raw(&bodies)
    }

    async fn send_resync(&self, message: &ResyncMessage) -> Result<(), QueueError> {
        self.send_raw(&[QueueMessage::Resync(message.clone()).encode()])
    }

    async fn send_import(&self, message: &ImportMessage) -> Result<(), QueueError> {
        self.send_raw(&[QueueMessage::Import(message.clone()).encode()])
    }

    async fn send_plans(&self, messages: &[PlanMessage]) -> Result<(), QueueError> {
        let bodies: Vec<String> = messages
            .iter()
            .map(|m| QueueMessage::Plan(m.clone()).encode())
            .collect();
        self.send_raw(&bodies)
    }

    async fn send_run(&self, message: &RunMessage) -> Result<(), QueueError> {
        self.send_raw(&[QueueMessage::Run(message.clone()).encode()])
    }

    async fn send_purge(&self, message: &PurgeMessage) -> Result<(), QueueError> {
        self.send_raw(&[QueueMessage::Purge(message.clone()).encode()])
    }
}

/// A process's claim to consume the queue of a data folder: at most one at a time, so that
/// whatever is in flight when a consumer starts belongs to one that died. Held until dropped;
/// the operating system releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct ConsumerLock {
    _file: File,
    path: PathBuf,
}

impl ConsumerLock {
    /// The lock file of a data folder.
    pub const FILE: &'static str = "pendo-sync.lock";

    /// Takes the folder's lock, or says which process holds it.
    ///
    /// # Errors
    /// `QueueError::InUse` when another process holds it; `Unavailable` when the lock file
    /// cannot be opened.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self, QueueError> {
        use std::io::{Read, Seek, Write};
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let path = dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| QueueError::unavailable_from(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                file.read_to_string(&mut holder).ok();
                return Err(QueueError::InUse {
                    folder: dir.display().to_string(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(QueueError::unavailable_from(
                    format!("locking {}", path.display()),
                    e,
                ))
            }
        }
        let holder = format!("pendo-sync {what} (process {})", std::process::id());
        file.set_len(0).map_err(unavailable)?;
        file.rewind().map_err(unavailable)?;
        file.write_all(holder.as_bytes()).map_err(unavailable)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_receives: u32, retry: Duration, visibility: Duration) -> EmbeddedQueue {
        let store = EmbeddedStore::in_memory().unwrap();
        EmbeddedQueue::new(
            &store,
            QueueSettings {
                max_receives,
                retry_delay: retry,
                visibility_timeout: visibility,
            },
        )
    }

    fn one(q: &EmbeddedQueue, body: &str) {
        q.send_raw(&[body.to_string()]).unwrap();
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn a_returned_message_comes_back_until_its_last_receive_then_is_a_dead_letter() {
        let q = queue(2, Duration::ZERO, LONG);
        one(&q, "a");
        let d1 = q.receive().unwrap().unwrap();
        assert_eq!((d1.body.as_str(), d1.receive_count), ("a", 1));
        assert_eq!(q.receive().unwrap(), None, "in flight is invisible");
        q.nack(&d1).unwrap();
        let d2 = q.receive().unwrap().unwrap();
        assert_eq!((d2.id, d2.receive_count), (d1.id, 2));
        q.nack(&d2).unwrap();
        assert_eq!(q.receive().unwrap(), None);
        let dead = q.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].body.as_str(), dead[0].receive_count), ("a", 2));
        assert!(q.is_empty().unwrap());
        assert_eq!(q.sent(), 1, "a redelivery is not a new message");
    }

    #[test]
    fn the_retry_delay_hides_a_returned_message() {
        let q = queue(5, Duration::from_secs(60), LONG);
        one(&q, "a");
        let d = q.receive().unwrap().unwrap();
        q.nack(&d).unwrap();
        assert_eq!(q.receive().unwrap(), None);
        let wait = q.next_visible_in().unwrap().unwrap();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }

    #[test]
    fn an_unanswered_receive_is_delivered_again_after_the_visibility_timeout() {
        let q = queue(5, Duration::ZERO, Duration::from_millis(30));
        one(&q, "a");
        let d1 = q.receive().unwrap().unwrap();
        assert_eq!(q.receive().unwrap(), None);
        std::thread::sleep(Duration::from_millis(40));
        let d2 = q.receive().unwrap().unwrap();
        assert_eq!((d2.id, d2.receive_count), (d1.id, 2));
        // The first receive's answers change nothing now.
        q.ack(&d1).unwrap();
        q.nack(&d1).unwrap();
        assert_eq!(q.len().unwrap(), 1);
        assert_eq!(
            q.receive().unwrap(),
            None,
            "still invisible for the second receive"
        );
        q.ack(&d2).unwrap();
        assert!(q.is_empty().unwrap());
    }

    #[test]
    fn a_message_received_max_times_and_never_answered_becomes_a_dead_letter() {
        let q = queue(2, Duration::ZERO, Duration::from_millis(10));
        one(&q, "crashes its consumer");
        for n in 1..=2 {
            let d = q.receive().unwrap().unwrap();
            assert_eq!(d.receive_count, n);
            std::thread::sleep(Duration::from_millis(15));
        }
        assert_eq!(q.receive().unwrap(), None);
        assert_eq!(q.dead_letters().unwrap().len(), 1);
        assert!(q.is_empty().unwrap());
    }

    #[test]
    fn returning_what_is_in_flight_makes_it_visible_at_once_with_its_count() {
        let q = queue(5, Duration::ZERO, LONG);
        q.send_raw(&["a".into(), "b".into(), "c".into()]).unwrap();
        let a = q.receive().unwrap().unwrap();
        let b = q.receive().unwrap().unwrap();
        q.ack(&b).unwrap();
        assert_eq!(q.return_in_flight().unwrap(), 1);
        let mut got: Vec<(String, u32)> = (0..2)
            .map(|_| q.receive().unwrap().unwrap())
            .map(|d| (d.body, d.receive_count))
            .collect();
        got.sort();
        assert_eq!(got, vec![("a".to_string(), 2), ("c".to_string(), 1)]);
        assert_eq!(q.receive().unwrap(), None);
        assert_eq!(q.return_in_flight().unwrap(), 2);
        assert_eq!(a.receive_count, 1);
    }

    #[test]
    fn messages_outlive_the_process_that_sent_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open_dir(dir.path()).unwrap();
            let q = EmbeddedQueue::new(&store, QueueSettings::LOCAL);
            q.send_raw(&["a".into(), "b".into()]).unwrap();
            let d = q.receive().unwrap().unwrap();
            assert_eq!(d.body, "a");
        }
        let store = EmbeddedStore::open_dir(dir.path()).unwrap();
        let q = EmbeddedQueue::new(&store, QueueSettings::LOCAL);
        let kept: Vec<(String, u32)> = q
            .messages()
            .unwrap()
            .into_iter()
            .map(|k| (k.body, k.receive_count))
            .collect();
        assert_eq!(kept, vec![("a".to_string(), 1), ("b".to_string(), 0)]);
        assert_eq!(
            q.receive().unwrap().unwrap().body,
            "b",
            "a is still in flight"
        );
        assert_eq!(q.return_in_flight().unwrap(), 2);
        assert_eq!(q.receive().unwrap().unwrap().body, "a");
    }

    #[test]
    fn one_consumer_holds_a_folder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = ConsumerLock::acquire(dir.path(), "serve").unwrap();
        let err = ConsumerLock::acquire(dir.path(), "sync").unwrap_err();
        let says = err.to_string();
        assert!(
            says.contains(&format!(
                "pendo-sync serve (process {})",
                std::process::id()
            )),
            "{says}"
        );
        assert!(says.contains(&dir.path().display().to_string()), "{says}");
        drop(first);
        ConsumerLock::acquire(dir.path(), "sync").unwrap();
    }

    #[tokio::test]
    async fn the_embedded_queue_passes_the_queue_contract() {
        let q = queue(3, Duration::ZERO, LONG);
        let recv = q.clone();
        super::super::contract::sends_arrive_intact(&q, move || {
            let mut out = Vec::new();
            while let Ok(Some(d)) = recv.receive() {
                let _ = recv.ack(&d);
                out.push(d.body);
            }
            out
        })
        .await;
        assert_eq!(q.sent(), 29);
    }
}
