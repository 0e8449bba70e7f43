//! The order of a run's chunks. A mapping whose chunks may create end users ("auto-detect end
//! users" on, and the mapping's "Auto-create users?") goes first; the chunks of every other
//! mapping of the run are *deferred*: recorded with the run but queued only once the creating
//! chunks are all over. Otherwise a company mapping's chunk that happens to run before the chunk
//! that creates a user would record no activity (and an end-user mapping without auto-create no
//! value) for that user, and the final state would depend on which worker was faster.
//!
//! Queueing the deferred chunks is idempotent: whichever worker finishes the last creating chunk
//! sends them; two workers finishing at once may both send them, which a duplicate delivery
//! already tolerates (a chunk is a replace). A crash between recording the last creating chunk
//! and sending leaves its message unacknowledged; its redelivery sends them.

use super::messages::{FetchMessage, MESSAGE_VERSION};
use crate::domain::{ChunkRecord, ChunkStatus, Mapping, MappingId, Settings, SyncRun};
use std::collections::BTreeSet;

/// Whether a mapping's chunks may create end users.
pub fn creates_users(settings: &Settings, mapping: &Mapping) -> bool {
    settings.auto_detect_end_users && mapping.auto_create_users
}

/// The message that (re)queues chunk `index` of `run`.
pub fn message_for(run: &SyncRun, index: usize, c: &ChunkRecord) -> FetchMessage {
    FetchMessage {
        v: MESSAGE_VERSION,
        tenant: run.tenant.clone(),
        mapping_id: c.mapping_id.clone(),
        run_id: run.id.clone(),
        chunk_index: index,
        generation: run.generation,
        from: c.from,
        to: c.to,
    }
}

/// Marks the chunks of mappings outside `creating` as deferred when the run has chunks of both
/// kinds, and returns the messages to queue now (all of them when there is nothing to wait for).
pub fn defer_after_creators(
    run: &mut SyncRun,
    creating: &BTreeSet<MappingId>,
    messages: Vec<FetchMessage>,
) -> Vec<FetchMessage> {
    let first = |m: &MappingId| creating.contains(m);
    let any_first = run.chunks.iter().any(|c| first(&c.mapping_id));
    let any_later = run.chunks.iter().any(|c| !first(&c.mapping_id));
    if !(any_first && any_later) {
        return messages;
    }
    for c in &mut run.chunks {
        c.deferred = !first(&c.mapping_id);
    }
    messages
        .into_iter()
        .filter(|m| first(&m.mapping_id))
        .collect()
}

/// The deferred chunks to queue now: every one still pending, once no other chunk is.
pub fn deferred_ready(run: &SyncRun) -> Vec<FetchMessage> {
    let pending = |c: &&ChunkRecord| c.status == ChunkStatus::Pending;
    if run.chunks.iter().filter(pending).any(|c| !c.deferred) {
        return Vec::new();
    }
    run.chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.deferred && c.status == ChunkStatus::Pending)
        .map(|(i, c)| message_for(run, i, c))
        .collect()
}

/// The chunks to (re)queue for a redelivered plan: pending creators, or the deferred ones once
/// the creators are over.
pub fn pending_now(run: &SyncRun) -> Vec<FetchMessage> {
    let ready = deferred_ready(run);
    if !ready.is_empty() {
        return ready;
    }
    run.chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.deferred && c.status == ChunkStatus::Pending)
        .map(|(i, c)| message_for(run, i, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunId, RunKind, TenantId};
    use chrono::{NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    fn run(mappings: &[&str]) -> (SyncRun, Vec<FetchMessage>) {
        let mut run = SyncRun {
            tenant: TenantId::parse("t").unwrap(),
            id: RunId::parse("r").unwrap(),
            kind: RunKind::Daily,
            generation: 3,
            started_at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            planned: true,
            chunks: Vec::new(),
        };
        for m in mappings {
            run.chunks.push(ChunkRecord::pending(
                MappingId::parse(m).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 7).unwrap(),
            ));
        }
        let msgs = run
            .chunks
            .iter()
            .enumerate()
            .map(|(i, c)| message_for(&run, i, c))
            .collect();
        (run, msgs)
    }

    fn set(ids: &[&str]) -> BTreeSet<MappingId> {
        ids.iter().map(|i| MappingId::parse(i).unwrap()).collect()
    }

    fn indexes(m: &[FetchMessage]) -> Vec<usize> {
        m.iter().map(|m| m.chunk_index).collect()
    }

    #[test]
    fn creators_go_first_and_the_rest_follow_when_they_are_over() {
        let (mut r, msgs) = run(&["company", "users", "company", "users"]);
        let now = defer_after_creators(&mut r, &set(&["users"]), msgs);
        assert_eq!(indexes(&now), vec![1, 3]);
        let deferred: Vec<bool> = r.chunks.iter().map(|c| c.deferred).collect();
        assert_eq!(deferred, vec![true, false, true, false]);
        assert!(deferred_ready(&r).is_empty());
        assert_eq!(indexes(&pending_now(&r)), vec![1, 3]);
        r.chunks[1].status = ChunkStatus::Done;
        assert!(deferred_ready(&r).is_empty(), "one creator still pending");
        r.chunks[3].status = ChunkStatus::Failed;
        let ready = deferred_ready(&r);
        assert_eq!(indexes(&ready), vec![0, 2]);
        assert_eq!(ready[0].generation, 3);
        assert_eq!(ready[0].mapping_id.as_str(), "company");
        assert_eq!(indexes(&pending_now(&r)), vec![0, 2]);
        r.chunks[0].status = ChunkStatus::Done;
        assert_eq!(indexes(&deferred_ready(&r)), vec![2]);
        r.chunks[2].status = ChunkStatus::Done;
        assert!(deferred_ready(&r).is_empty());
        assert!(pending_now(&r).is_empty());
    }

    #[test]
    fn a_run_of_one_kind_defers_nothing() {
        for creating in [set(&[]), set(&["a", "b"])] {
            let (mut r, msgs) = run(&["a", "b"]);
            let now = defer_after_creators(&mut r, &creating, msgs);
            assert_eq!(indexes(&now), vec![0, 1]);
            assert!(r.chunks.iter().all(|c| !c.deferred));
            assert!(deferred_ready(&r).is_empty());
        }
    }

    proptest! {
        /// Whatever the order chunks finish in, every chunk is queued exactly once by the plan
        /// plus the releases, and no deferred chunk is queued while a creator is pending.
        #[test]
        fn every_chunk_is_queued_once_and_deferred_ones_after_creators(
            kinds in proptest::collection::vec(any::<bool>(), 1..12),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 12),
        ) {
            let names: Vec<&str> = kinds.iter().map(|k| if *k { "users" } else { "other" }).collect();
            let (mut r, msgs) = run(&names);
            let mut queued: Vec<usize> = indexes(&defer_after_creators(&mut r, &set(&["users"]), msgs));
            let mut waiting = queued.clone();
            let mut step = 0;
            while !waiting.is_empty() {
                let pick = order[step % order.len()].index(waiting.len());
                step += 1;
                let i = waiting.remove(pick);
                if r.chunks[i].deferred {
                    prop_assert!(r.chunks.iter().all(|c| c.deferred || c.status != ChunkStatus::Pending));
                }
                r.chunks[i].status = ChunkStatus::Done;
                for m in deferred_ready(&r) {
                    if !queued.contains(&m.chunk_index) {
                        queued.push(m.chunk_index);
                        waiting.push(m.chunk_index);
                    }
                }
            }
            queued.sort_unstable();
            prop_assert_eq!(queued, (0..kinds.len()).collect::<Vec<_>>());
            prop_assert!(r.is_finished());
        }
    }
}
