//! A mapping's status in a run, on the config table: the numbers its counters item
//! (`RUN#r#M#m`) keeps besides the worker's counters, added to by each chunk's outcome in the
//! same transaction (see `runs.rs`), and read with the run's header in one BatchGetItem.

use super::run_items::{counter, lease_time, parse_time, update};
use super::{n, opt_s, s, Item};
use crate::domain::{ChunkOutcome, ChunkStats, ChunkStatus, MappingRunCounters, SkippedRows};
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

/// The numbers of a mapping's counters item that each chunk outcome adds to (attribute, value
/// in `stats`), besides `open`, `notDone` and `failed`.
pub(super) fn stat_numbers(st: &ChunkStats) -> [(&'static str, u64); 10] {
    let k = &st.skipped;
    [
        ("rr", st.rows_read),
        ("vw", st.values_written),
        ("aw", st.activities_written),
        ("uc", st.users_created),
        ("rs", st.rows_skipped),
        ("sw", k.outside_window),
        ("sn", k.no_object_id),
        ("sd", k.not_in_directory),
        ("su", k.end_user_unmatched),
        ("sx", k.unusable),
    ]
}

/// A mapping's status counters from its counters item (an item written before they existed
/// reads as zeros).
pub(super) fn counters_from(i: &Item) -> Result<MappingRunCounters, StoreError> {
    let c = |name: &str| counter(i, name);
    Ok(MappingRunCounters {
        chunks: c("chunks")?,
        open: c("open")?,
        failed: c("failed")?,
        not_done: c("notDone")?,
        stats: ChunkStats {
            rows_read: c("rr")?,
            values_written: c("vw")?,
            activities_written: c("aw")?,
            users_created: c("uc")?,
            rows_skipped: c("rs")?,
            skipped: SkippedRows {
                outside_window: c("sw")?,
                no_object_id: c("sn")?,
                not_in_directory: c("sd")?,
                end_user_unmatched: c("su")?,
                unusable: c("sx")?,
            },
        },
        error: opt_s(i, "err").filter(|e| !e.is_empty()),
        last_at: parse_time(i, "at")?,
    })
}

/// The update of a mapping's counters item by one chunk outcome: the counts and stats added,
/// the time (and a failure's error) set. The item stays well under 1 KB.
pub(super) fn mapping_update(
    table: &str,
    k: Item,
    outcome: &ChunkOutcome,
) -> Result<TransactWriteItem, StoreError> {
    let failed = outcome.status == ChunkStatus::Failed;
    let mut adds = vec![
        ("open", AttributeValue::N("-1".into())),
        ("notDone", n(u64::from(outcome.status != ChunkStatus::Done))),
        ("failed", n(u64::from(failed))),
    ];
    for (name, v) in stat_numbers(&outcome.stats) {
        adds.push((name, n(v)));
    }
    let mut sets = vec![("at", s(lease_time(outcome.at)))];
    if let Some(e) = outcome.error.as_ref().filter(|_| failed) {
        sets.push(("err", s(e.clone())));
    }
    let names: Vec<(String, &str)> = adds
        .iter()
        .chain(sets.iter())
        .enumerate()
        .map(|(i, (name, _))| (format!("#a{i}"), *name))
        .collect();
    let values: Vec<(String, AttributeValue)> = adds
        .iter()
        .chain(sets.iter())
        .enumerate()
        .map(|(i, (_, v))| (format!(":a{i}"), v.clone()))
        .collect();
    let clause = |range: std::ops::Range<usize>, sep: &str| {
        range
            .map(|i| format!("#a{i}{sep}:a{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let expression = format!(
        "ADD {} SET {}",
        clause(0..adds.len(), " "),
        clause(adds.len()..adds.len() + sets.len(), " = ")
    );
    let names: Vec<(&str, &str)> = names.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    let values: Vec<(&str, AttributeValue)> = values
        .iter()
        .map(|(p, v)| (p.as_str(), v.clone()))
        .collect();
    update(
        table,
        k,
        &expression,
        "attribute_exists(pk)",
        &names,
        values,
    )
}
