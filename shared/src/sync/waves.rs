//! The order of a run's chunks. A mapping whose chunks may create end users ("auto-detect end
//! users" on, and the mapping's "Auto-create users?") goes first; the chunks of every other
//! mapping of the run are *deferred*: recorded with the run but queued only once the creating
//! chunks are all over. Otherwise a company mapping's chunk that happens to run before the chunk
//! that creates a user would record no activity (and an end-user mapping without auto-create no
//! value) for that user, and the final state would depend on which worker was faster.
//!
//! The deferred chunks are queued once per run. The store keeps the run's counters, updated
//! atomically with each chunk's outcome, so exactly one outcome brings the open creating chunks
//! to zero; its worker claims the release in the store (a conditional change that no other
//! chunk can take) and sends. A crash between the claim and the send leaves that chunk's message
//! unacknowledged: its redelivery is a duplicate of a finished chunk, finds the release claimed
//! by its own index and sends again.

use crate::domain::{
    ChunkRecord, ChunkStatus, Mapping, MappingId, Release, RunProgress, Settings, SyncRun,
};
use crate::queue::messages::{FetchMessage, MESSAGE_VERSION};
use std::collections::BTreeSet;

/// Whether a mapping's chunks may create end users.
pub fn creates_users(settings: &Settings, mapping: &Mapping) -> bool {
    settings.auto_detect_end_users && mapping.auto_create_users
}

/// The message that (re)queues chunk `index` of `run` alone (`share::fold` joins the chunks
/// that share a call).
pub fn message_for(run: &SyncRun, index: usize, c: &ChunkRecord) -> FetchMessage {
    FetchMessage {
        v: MESSAGE_VERSION,
        tenant: run.tenant.clone(),
        mapping_id: c.mapping_id.clone(),
        run_id: run.id.clone(),
        chunk_index: index,
        generation: run.generation_of(&c.mapping_id),
        from: c.from,
        to: c.to,
        also: Vec::new(),
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

/// Whether the outcome of `chunk`, with the run's counters after it, lets its worker try to
/// release the deferred chunks: the run defers some, `chunk` is a creating one, no creating
/// chunk is open, and the release is not done.
pub fn may_release(chunk: &ChunkRecord, p: &RunProgress) -> bool {
    p.deferred > 0 && !chunk.deferred && p.creators_open == 0 && p.release != Release::Released
}

/// The deferred chunks still pending (what a release sends).
pub fn deferred_pending(run: &SyncRun) -> Vec<FetchMessage> {
    let pending = run
        .chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.deferred && c.status == ChunkStatus::Pending)
        .map(|(i, c)| message_for(run, i, c))
        .collect();
    super::share::fold(run, pending)
}

/// The deferred chunks to queue now: every one still pending, once no other chunk is.
pub fn deferred_ready(run: &SyncRun) -> Vec<FetchMessage> {
    let pending = |c: &&ChunkRecord| c.status == ChunkStatus::Pending;
    if run.chunks.iter().filter(pending).any(|c| !c.deferred) {
        return Vec::new();
    }
    deferred_pending(run)
}

/// The chunks to (re)queue for a redelivered plan: pending creators, or the deferred ones once
/// the creators are over.
pub fn pending_now(run: &SyncRun) -> Vec<FetchMessage> {
    let ready = deferred_ready(run);
    if !ready.is_empty() {
        return ready;
    }
    let pending = run
        .chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.deferred && c.status == ChunkStatus::Pending)
        .map(|(i, c)| message_for(run, i, c))
        .collect();
    super::share::fold(run, pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunId, RunKind, TenantId};
    use chrono::{NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    fn run(mappings: &[&str]) -> (SyncRun, Vec<FetchMessage>) {
        let mut run = SyncRun::new(
            TenantId::parse("t").unwrap(),
            RunId::parse("r").unwrap(),
            RunKind::Daily,
            3,
            Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
        );
        run.planned = true;
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

    /// The worker's side of a release against a run kept as the store keeps it: the outcome of
    /// chunk `i` recorded, then the counters read, then the conditional claim.
    fn finish_and_release(r: &mut SyncRun, i: usize) -> Vec<FetchMessage> {
        r.chunks[i].status = ChunkStatus::Done;
        let p = r.progress(Some(&r.chunks[i].mapping_id.clone()));
        if !may_release(&r.chunks[i], &p) {
            return Vec::new();
        }
        let by = i as u32;
        let free = match r.release {
            Release::Waiting => true,
            Release::Claimed { by: owner } => owner == by,
            Release::Released => false,
        };
        if !free {
            return Vec::new();
        }
        r.release = Release::Claimed { by };
        let sent = deferred_pending(r);
        r.release = Release::Released;
        sent
    }

    #[test]
    fn the_release_happens_once_and_a_late_duplicate_sends_nothing() {
        let (mut r, msgs) = run(&["company", "users", "company", "users"]);
        defer_after_creators(&mut r, &set(&["users"]), msgs);
        assert!(finish_and_release(&mut r, 1).is_empty());
        assert_eq!(indexes(&finish_and_release(&mut r, 3)), vec![0, 2]);
        // A redelivery of either creator after the release: nothing again.
        assert!(finish_and_release(&mut r, 3).is_empty());
        assert!(finish_and_release(&mut r, 1).is_empty());
        assert!(
            finish_and_release(&mut r, 0).is_empty(),
            "deferred chunks never release"
        );
    }

    proptest! {
        /// Whatever the order chunks finish in, and with any chunk's message delivered again
        /// after it finished, every chunk is queued exactly once by the plan plus the release
        /// (no de-duplication here: a chunk queued twice fails the test), and no deferred chunk
        /// is queued while a creator is pending.
        #[test]
        fn every_chunk_is_queued_once_and_deferred_ones_after_creators(
            kinds in proptest::collection::vec(any::<bool>(), 1..12),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 12),
            again in proptest::collection::vec(any::<bool>(), 12),
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
                let mut sent = finish_and_release(&mut r, i);
                if again[i % again.len()] {
                    sent.extend(finish_and_release(&mut r, i));
                }
                for m in sent {
                    queued.push(m.chunk_index);
                    waiting.push(m.chunk_index);
                }
            }
            queued.sort_unstable();
            prop_assert_eq!(queued, (0..kinds.len()).collect::<Vec<_>>());
            prop_assert!(r.is_finished());
        }
    }
}
