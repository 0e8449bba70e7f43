//! Planning: which local days a mapping must fetch now, cut into chunks (DESIGN §3). Pure.

use super::waves;
use crate::domain::{ChunkRecord, Mapping, Settings, SyncRun, Window};
use crate::queue::messages::FetchMessage;
use chrono::{Duration, NaiveDate};

/// Days re-fetched before the cursor on every daily run, because Pendo reprocesses recent data.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 3;

/// The window of a sync.
/// - First sync (no cursor) or a reset: `days_to_sync` days ending on the last complete day.
/// - Otherwise: from the day after the cursor minus the look-back, up to the last complete day,
///   never starting before the `days_to_sync` horizon.
///
/// `None` when there is nothing to fetch.
pub fn plan_window(
    cursor: Option<NaiveDate>,
    last_complete: NaiveDate,
    days_to_sync: u32,
    lookback_days: u32,
) -> Option<Window> {
    let horizon = last_complete - Duration::days(i64::from(days_to_sync.max(1)) - 1);
    let from = match cursor {
        None => horizon,
        Some(c) => (c + Duration::days(1) - Duration::days(i64::from(lookback_days))).max(horizon),
    };
    (from <= last_complete).then_some(Window {
        from,
        to: last_complete,
    })
}

/// Cuts a window into consecutive chunks of at most `max_days` days.
pub fn chunks(window: Window, max_days: u32) -> Vec<Window> {
    let step = i64::from(max_days.max(1));
    let mut out = Vec::new();
    let mut from = window.from;
    while from <= window.to {
        let to = (from + Duration::days(step - 1)).min(window.to);
        out.push(Window { from, to });
        from = to + Duration::days(1);
    }
    out
}

/// The end of the longest run of done chunks of `mapping` from the start of its window in `run`
/// (chunks may finish in any order; a failed one stops the cursor before it).
pub fn done_prefix_end(
    run: &crate::domain::SyncRun,
    mapping: &crate::domain::MappingId,
) -> Option<NaiveDate> {
    let mut mine: Vec<&crate::domain::ChunkRecord> = run
        .chunks
        .iter()
        .filter(|c| &c.mapping_id == mapping)
        .collect();
    mine.sort_by_key(|c| c.from);
    let mut reached = None;
    for c in mine {
        if c.status != crate::domain::ChunkStatus::Done {
            break;
        }
        reached = Some(c.to);
    }
    reached
}

/// Plans a run (a daily or on-demand run, a recovery and a Re-sync all alike): each
/// `(mapping, window)` cut into chunks of at most the mapping's chunk length, recorded in `run`
/// in that order; the chunks of the mappings that must wait for the end users an auto-creating
/// mapping of `mappings` creates are deferred (`waves`); the event chunks of one wave that can
/// share a Pendo call do, at most `max_shared` to a call (`share`). Returns the fetch messages
/// to send now.
pub fn plan_run(
    run: &mut SyncRun,
    settings: &Settings,
    mappings: &[Mapping],
    windows: &[(&Mapping, Window)],
    max_shared: usize,
) -> Vec<FetchMessage> {
    let mut messages = Vec::new();
    for (mapping, window) in windows {
        for w in chunks(*window, mapping.source.max_chunk_days()) {
            let chunk = ChunkRecord::pending(mapping.id.clone(), w.from, w.to);
            messages.push(waves::message_for(run, run.chunks.len(), &chunk));
            run.chunks.push(chunk);
        }
    }
    let creating = mappings
        .iter()
        .filter(|m| waves::creates_users(settings, m))
        .map(|m| m.id.clone())
        .collect();
    let now = waves::defer_after_creators(run, &creating, messages);
    super::share::assign(run, mappings, max_shared);
    super::share::fold(run, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn first_sync_takes_days_to_sync() {
        let w = plan_window(None, d("2026-11-19"), 90, 3).unwrap();
        assert_eq!(
            w,
            Window {
                from: d("2026-08-22"),
                to: d("2026-11-19")
            }
        );
        assert_eq!(w.days(), 90);
    }

    #[test]
    fn daily_run_looks_back() {
        let w = plan_window(Some(d("2026-11-18")), d("2026-11-19"), 90, 3).unwrap();
        assert_eq!(
            w,
            Window {
                from: d("2026-11-16"),
                to: d("2026-11-19")
            }
        );
        let w = plan_window(Some(d("2026-11-19")), d("2026-11-19"), 90, 0);
        assert_eq!(w, None);
        // A cursor far in the past never reaches beyond the horizon.
        let w = plan_window(Some(d("2020-01-01")), d("2026-11-19"), 10, 3).unwrap();
        assert_eq!(w.from, d("2026-11-10"));
    }

    #[test]
    fn chunks_of_seven() {
        let c = chunks(
            Window {
                from: d("2026-11-01"),
                to: d("2026-11-16"),
            },
            7,
        );
        assert_eq!(
            c,
            vec![
                Window {
                    from: d("2026-11-01"),
                    to: d("2026-11-07")
                },
                Window {
                    from: d("2026-11-08"),
                    to: d("2026-11-14")
                },
                Window {
                    from: d("2026-11-15"),
                    to: d("2026-11-16")
                },
            ]
        );
    }

    #[test]
    fn halves() {
        let w = Window {
            from: d("2026-11-01"),
            to: d("2026-11-07"),
        };
        let (a, b) = w.halves().unwrap();
        assert_eq!((a.days(), b.days()), (4, 3));
        assert_eq!(b.from, d("2026-11-05"));
        assert!(Window {
            from: d("2026-11-01"),
            to: d("2026-11-01")
        }
        .halves()
        .is_none());
    }

    proptest! {
        #[test]
        fn chunks_tile_the_window(start in 0i64..3000, len in 1i64..400, max in 1u32..10) {
            let from = d("2020-01-01") + Duration::days(start);
            let w = Window { from, to: from + Duration::days(len - 1) };
            let c = chunks(w, max);
            prop_assert_eq!(c[0].from, w.from);
            prop_assert_eq!(c[c.len() - 1].to, w.to);
            for pair in c.windows(2) {
                prop_assert_eq!(pair[0].to + Duration::days(1), pair[1].from);
            }
            prop_assert!(c.iter().all(|x| x.days() >= 1 && x.days() <= max));
            prop_assert_eq!(c.iter().map(Window::days).sum::<u32>(), w.days());
        }

        #[test]
        fn window_ends_on_last_complete_and_respects_horizon(
            cur in proptest::option::of(0i64..500), dts in 1u32..366, lb in 0u32..10
        ) {
            let last = d("2026-11-19");
            let cursor = cur.map(|c| last - Duration::days(c));
            if let Some(w) = plan_window(cursor, last, dts, lb) {
                prop_assert_eq!(w.to, last);
                prop_assert!(w.days() <= dts);
            }
        }
    }
}
