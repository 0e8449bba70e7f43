//! Shared event calls. The Feature (and the Page) chunks of a run that read their source with
//! the same segment, over the same window and in the same wave, are fetched by one Pendo call
//! for all their ids (`pendo::pipelines::event_request`), its rows routed to each mapping
//! (`transform::SharedSink`). Planning marks such chunks with the index of their group's first
//! chunk ([`assign`], at most `max` chunks per group); every send of a run's messages folds a
//! group's messages into one ([`fold`]). Each chunk is still recorded, leased and finished on
//! its own, so its mapping's cursor, errors and retries are as if it had been fetched alone.
//! Pure.

use crate::domain::{Mapping, MappingId, SyncRun};
use crate::pendo::pipelines::EventSource;
use crate::queue::messages::{FetchMessage, Rider};
use chrono::NaiveDate;
use std::collections::HashMap;

/// Chunks per shared call unless the deployment says otherwise (`PENDO_SHARED_CALL_MAPPINGS`).
pub const DEFAULT_MAX_SHARED: usize = 50;

/// The deployment's setting of the most chunks to a shared call (1: one call per chunk).
pub const MAX_SHARED_VAR: &str = "PENDO_SHARED_CALL_MAPPINGS";

/// The most chunks to a shared call, from `MAX_SHARED_VAR` (the default when unset).
///
/// # Errors
/// The variable's value is not a whole number of at least 1.
pub fn max_shared_from(var: impl Fn(&str) -> Option<String>) -> Result<usize, String> {
    match var(MAX_SHARED_VAR).map(|v| v.trim().to_string()) {
        None => Ok(DEFAULT_MAX_SHARED),
        Some(v) if v.is_empty() => Ok(DEFAULT_MAX_SHARED),
        Some(v) => {
            v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("{MAX_SHARED_VAR}: '{v}' is not a whole number of at least 1")
            })
        }
    }
}

/// What a Feature, Page or Track mapping's request is made of but its id: `None` for other
/// kinds.
pub fn request_key(m: &Mapping) -> Option<(EventSource, Option<&str>)> {
    let source = m.source.event_item()?.source;
    Some((source, m.segment_id.as_deref()))
}

/// Marks the chunks of a planned run (its deferral decided) that share a call: the chunks with
/// the same request key, window and wave, in groups of at most `max` in the run's order. A
/// `max` of 1 (or 0) shares nothing.
pub fn assign(run: &mut SyncRun, mappings: &[Mapping], max: usize) {
    if max <= 1 {
        return;
    }
    let keys: HashMap<&MappingId, (EventSource, Option<&str>)> = mappings
        .iter()
        .filter_map(|m| Some((&m.id, request_key(m)?)))
        .collect();
    type Key<'a> = ((EventSource, Option<&'a str>), NaiveDate, NaiveDate, bool);
    let mut order: Vec<Vec<usize>> = Vec::new();
    let mut at: HashMap<Key<'_>, usize> = HashMap::new();
    for (i, c) in run.chunks.iter().enumerate() {
        let Some(k) = keys.get(&c.mapping_id) else {
            continue;
        };
        let slot = *at.entry((*k, c.from, c.to, c.deferred)).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[slot].push(i);
    }
    for group in order {
        for part in group.chunks(max).filter(|p| p.len() > 1) {
            for &i in part {
                run.chunks[i].share = Some(part[0]);
            }
        }
    }
}

/// One message per shared call: the messages of chunks with the same `share` folded into the
/// first of them (the others ride on it), in the order of each group's first message.
pub fn fold(run: &SyncRun, messages: Vec<FetchMessage>) -> Vec<FetchMessage> {
    let mut out: Vec<FetchMessage> = Vec::with_capacity(messages.len());
    let mut lead_at: HashMap<usize, usize> = HashMap::new();
    for m in messages {
        let share = run.chunks.get(m.chunk_index).and_then(|c| c.share);
        let Some(lead) = share else {
            out.push(m);
            continue;
        };
        match lead_at.get(&lead) {
            Some(&k) => {
                // A rebuilt mapping's chunk writes its own generation beside the others.
                let generation = (m.generation != out[k].generation).then_some(m.generation);
                out[k].also.push(Rider {
                    mapping_id: m.mapping_id,
                    chunk_index: m.chunk_index,
                    generation,
                })
            }
            None => {
                lead_at.insert(lead, out.len());
                out.push(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChunkRecord, MappingKind, RunId, RunKind, TenantId};
    use crate::sync::waves::message_for;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn mapping(id: &str, kind: u8, segment: Option<&str>) -> Mapping {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        Mapping {
            tenant: TenantId::parse("t").unwrap(),
            id: MappingId::parse(id).unwrap(),
            source: match kind {
                0 => MappingKind::Feature {
                    feature_id: format!("f-{id}"),
                    minutes_metric: None,
                },
                1 => MappingKind::Page {
                    page_id: format!("p-{id}"),
                    minutes_metric: None,
                },
                2 => MappingKind::Track {
                    track_type_id: format!("t-{id}"),
                    minutes_metric: None,
                },
                _ => MappingKind::Pes {
                    app_id: 1,
                    components: Vec::new(),
                },
            },
            target: crate::domain::Target::Company,
            metric_name: id.to_string(),
            passive: false,
            multi_app: false,
            auto_create_users: false,
            segment_id: segment.map(str::to_string),
            enabled: true,
            rebuild_required: false,
            created_at: at,
            updated_at: at,
        }
    }

    fn run(chunks: &[(usize, u32, bool)], mappings: &[Mapping]) -> SyncRun {
        let mut run = SyncRun::new(
            TenantId::parse("t").unwrap(),
            RunId::parse("r").unwrap(),
            RunKind::Daily,
            1,
            Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
        );
        let day = |n: u32| NaiveDate::from_ymd_opt(2026, 10, 1 + n).unwrap();
        for &(m, w, deferred) in chunks {
            run.chunks.push(ChunkRecord {
                deferred,
                ..ChunkRecord::pending(mappings[m].id.clone(), day(w * 7), day(w * 7 + 6))
            });
        }
        run
    }

    fn all_messages(run: &SyncRun) -> Vec<FetchMessage> {
        let msgs = run
            .chunks
            .iter()
            .enumerate()
            .map(|(i, c)| message_for(run, i, c))
            .collect();
        fold(run, msgs)
    }

    #[test]
    fn same_source_segment_window_and_wave_share_one_call() {
        let ms = [
            mapping("a", 0, None),
            mapping("b", 0, None),
            mapping("c", 0, Some("s")),
            mapping("d", 1, None),
            mapping("e", 3, None),
            mapping("f", 0, None),
            mapping("g", 2, None),
            mapping("h", 2, None),
        ];
        // a, b, f share window 0 (f deferred: not with them); c has a segment; d is a page;
        // e is PES; window 1 of a and b is another call; the track events of g and h are one
        // call of their own.
        let mut r = run(
            &[
                (0, 0, false),
                (1, 0, false),
                (2, 0, false),
                (3, 0, false),
                (4, 0, false),
                (5, 0, true),
                (0, 1, false),
                (1, 1, false),
                (6, 0, false),
                (7, 0, false),
            ],
            &ms,
        );
        assign(&mut r, &ms, 50);
        let shares: Vec<Option<usize>> = r.chunks.iter().map(|c| c.share).collect();
        assert_eq!(
            shares,
            vec![
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                Some(6),
                Some(6),
                Some(8),
                Some(8)
            ]
        );
        let sent = all_messages(&r);
        let shape: Vec<(usize, Vec<usize>)> = sent
            .iter()
            .map(|m| {
                (
                    m.chunk_index,
                    m.also.iter().map(|x| x.chunk_index).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, vec![1]),
                (2, vec![]),
                (3, vec![]),
                (4, vec![]),
                (5, vec![]),
                (6, vec![7]),
                (8, vec![9])
            ]
        );
        // Sharing off: every chunk alone.
        let mut r = run(&[(0, 0, false), (1, 0, false)], &ms);
        assign(&mut r, &ms, 1);
        assert_eq!(all_messages(&r).len(), 2);
    }

    #[test]
    fn the_deployment_sets_the_most_chunks_to_a_call() {
        let with = |v: Option<&str>| max_shared_from(|_| v.map(str::to_string));
        assert_eq!(with(None), Ok(DEFAULT_MAX_SHARED));
        assert_eq!(with(Some(" ")), Ok(DEFAULT_MAX_SHARED));
        assert_eq!(with(Some("1")), Ok(1));
        assert_eq!(with(Some("20")), Ok(20));
        assert_eq!(
            with(Some("0")),
            Err("PENDO_SHARED_CALL_MAPPINGS: '0' is not a whole number of at least 1".into())
        );
        assert!(with(Some("many")).is_err());
    }

    proptest! {
        /// Every chunk is sent exactly once; the chunks of one message have one request key,
        /// window and wave; no message carries more than `max`; and the number of messages is
        /// the least these rules allow.
        #[test]
        fn fold_sends_each_chunk_once_in_the_fewest_calls(
            kinds in proptest::collection::vec((0u8..4, proptest::option::of(0u8..2)), 1..8),
            chunks in proptest::collection::vec((0usize..8, 0u32..3, any::<bool>()), 0..40),
            max in 1usize..6,
        ) {
            let ms: Vec<Mapping> = kinds
                .iter()
                .enumerate()
                .map(|(i, (k, s))| mapping(&format!("m{i}"), *k, s.map(|s| if s == 0 { "s0" } else { "s1" })))
                .collect();
            let chunks: Vec<_> = chunks.into_iter().map(|(m, w, d)| (m % ms.len(), w, d)).collect();
            let mut r = run(&chunks, &ms);
            assign(&mut r, &ms, max);
            let sent = all_messages(&r);
            let mut seen = BTreeSet::new();
            let key = |i: usize| {
                let c = &r.chunks[i];
                let m = ms.iter().find(|m| m.id == c.mapping_id).unwrap();
                (request_key(m), c.from, c.to, c.deferred)
            };
            let mut groups: HashMap<_, usize> = HashMap::new();
            for m in &sent {
                let members: Vec<usize> = m.members().iter().map(|x| x.chunk_index).collect();
                prop_assert!(members.len() <= max.max(1));
                for &i in &members {
                    prop_assert!(seen.insert(i), "chunk {} sent twice", i);
                    prop_assert_eq!(key(i), key(members[0]));
                    prop_assert_eq!(&r.chunks[i].mapping_id, &m.members()[members.iter().position(|x| *x == i).unwrap()].mapping_id);
                }
                if members.len() > 1 {
                    prop_assert!(key(members[0]).0.is_some(), "only event mappings share");
                }
            }
            prop_assert_eq!(seen.len(), r.chunks.len());
            for i in 0..r.chunks.len() {
                if key(i).0.is_some() {
                    *groups.entry(key(i)).or_default() += 1;
                }
            }
            let shareable: usize = groups.values().map(|n| n.div_ceil(max)).sum();
            let alone = (0..r.chunks.len()).filter(|i| key(*i).0.is_none()).count();
            let least = if max <= 1 { r.chunks.len() } else { shareable + alone };
            prop_assert_eq!(sent.len(), least);
        }
    }
}
