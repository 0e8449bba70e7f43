//! Unmatched identities (pure): the Pendo ids whose rows a chunk could not use, why, with their
//! rows, the value those rows carried and the days they fell on; bounded per chunk and per
//! mapping to the identities with the most rows, with exact totals for the rest.

pub use crate::domain::unmatched::{
    UnmatchedEntry, UnmatchedIdentity, UnmatchedReason, UnmatchedTotals, MAX_IDENTITIES,
};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    rows: u64,
    value: f64,
}

impl Sums {
    fn add(&mut self, rows: u64, value: f64) {
        self.rows += rows;
        self.value += value;
    }
}

/// An identity's rows per day.
type Days = BTreeMap<NaiveDate, Sums>;

/// A chunk's unmatched rows as they are read.
#[derive(Debug, Default, Clone)]
pub struct UnmatchedTally {
    by_identity: HashMap<(UnmatchedReason, String), Days>,
}

impl UnmatchedTally {
    /// One row of `identity` that could not be used for `reason`, carrying `value`.
    pub fn note(&mut self, reason: UnmatchedReason, identity: &str, day: NaiveDate, value: f64) {
        let days = match self.by_identity.get_mut(&(reason, identity.to_string())) {
            Some(days) => days,
            None => self
                .by_identity
                .entry((reason, identity.to_string()))
                .or_default(),
        };
        days.entry(day).or_default().add(1, value);
    }

    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_identity.clear();
    }

    /// The entries to store: per reason, the `MAX_IDENTITIES` identities with the most rows (then
    /// value, then id), each per day; the rest summed per day without an identity. Sorted by
    /// reason, identity (the sum last), day.
    pub fn entries(&self) -> Vec<UnmatchedEntry> {
        let mut by_reason: BTreeMap<UnmatchedReason, Vec<(&String, &Days)>> = BTreeMap::new();
        for ((reason, id), days) in &self.by_identity {
            by_reason.entry(*reason).or_default().push((id, days));
        }
        let mut out = Vec::new();
        for (reason, mut ids) in by_reason {
            let total = |days: &Days| {
                days.values().fold(Sums::default(), |mut a, s| {
                    a.add(s.rows, s.value);
                    a
                })
            };
            ids.sort_by(|a, b| rank(&total(b.1), b.0).cmp_to(&rank(&total(a.1), a.0)));
            let mut rest: Days = BTreeMap::new();
            let mut listed = Vec::new();
            for (i, (id, days)) in ids.into_iter().enumerate() {
                if i < MAX_IDENTITIES {
                    for (day, s) in days {
                        listed.push(UnmatchedEntry {
                            reason,
                            identity: Some(id.clone()),
                            day: *day,
                            rows: s.rows,
                            value: s.value,
                        });
                    }
                } else {
                    for (day, s) in days {
                        rest.entry(*day).or_default().add(s.rows, s.value);
                    }
                }
            }
            listed.sort_by(|a, b| (&a.identity, a.day).cmp(&(&b.identity, b.day)));
            out.extend(listed);
            out.extend(rest.into_iter().map(|(day, s)| UnmatchedEntry {
                reason,
                identity: None,
                day,
                rows: s.rows,
                value: s.value,
            }));
        }
        out
    }
}

/// How identities are ranked: most rows, then most value, then the id (ascending).
struct Rank<'a> {
    rows: u64,
    value: f64,
    id: &'a str,
}

fn rank<'a>(s: &Sums, id: &'a str) -> Rank<'a> {
    Rank {
        rows: s.rows,
        value: s.value,
        id,
    }
}

impl Rank<'_> {
    /// `Greater` when `self` ranks before `other`.
    fn cmp_to(&self, other: &Rank<'_>) -> std::cmp::Ordering {
        self.rows
            .cmp(&other.rows)
            .then(self.value.total_cmp(&other.value))
            .then_with(|| other.id.cmp(self.id))
    }
}

/// A mapping's stored entries summed per identity over the days: per reason, the
/// `MAX_IDENTITIES` identities with the most rows, and exact totals.
pub fn summarize(
    entries: impl IntoIterator<Item = UnmatchedEntry>,
) -> (
    Vec<UnmatchedIdentity>,
    BTreeMap<UnmatchedReason, UnmatchedTotals>,
) {
    let mut ids: HashMap<(UnmatchedReason, String), (Sums, NaiveDate, NaiveDate)> = HashMap::new();
    let mut totals: BTreeMap<UnmatchedReason, UnmatchedTotals> = BTreeMap::new();
    for e in entries {
        let t = totals.entry(e.reason).or_default();
        t.rows += e.rows;
        t.value += e.value;
        match e.identity {
            None => {
                t.other_rows += e.rows;
                t.other_value += e.value;
            }
            Some(id) => {
                let slot = ids
                    .entry((e.reason, id))
                    .or_insert((Sums::default(), e.day, e.day));
                slot.0.add(e.rows, e.value);
                slot.1 = slot.1.min(e.day);
                slot.2 = slot.2.max(e.day);
            }
        }
    }
    let mut listed: Vec<UnmatchedIdentity> = ids
        .into_iter()
        .map(
            |((reason, identity), (s, first_day, last_day))| UnmatchedIdentity {
                reason,
                identity,
                rows: s.rows,
                value: s.value,
                first_day,
                last_day,
            },
        )
        .collect();
    listed.sort_by(|a, b| {
        a.reason.cmp(&b.reason).then_with(|| {
            rank(
                &Sums {
                    rows: b.rows,
                    value: b.value,
                },
                &b.identity,
            )
            .cmp_to(&rank(
                &Sums {
                    rows: a.rows,
                    value: a.value,
                },
                &a.identity,
            ))
        })
    });
    let mut kept = Vec::with_capacity(listed.len());
    let mut per_reason: HashMap<UnmatchedReason, usize> = HashMap::new();
    for i in listed {
        let n = per_reason.entry(i.reason).or_default();
        *n += 1;
        let t = totals.entry(i.reason).or_default();
        if *n <= MAX_IDENTITIES {
            t.identities += 1;
            kept.push(i);
        } else {
            t.other_rows += i.rows;
            t.other_value += i.value;
        }
    }
    (kept, totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    #[test]
    fn a_tally_keeps_each_identity_per_day() {
        let mut t = UnmatchedTally::default();
        t.note(UnmatchedReason::CompanyNotInDirectory, "acct-9", d(2), 3.0);
        t.note(UnmatchedReason::CompanyNotInDirectory, "acct-9", d(2), 4.0);
        t.note(UnmatchedReason::CompanyNotInDirectory, "acct-9", d(1), 1.0);
        t.note(UnmatchedReason::NoCompanyId, "v7", d(1), 2.0);
        let e = |reason, id: &str, day, rows, value| UnmatchedEntry {
            reason,
            identity: Some(id.into()),
            day: d(day),
            rows,
            value,
        };
        assert_eq!(
            t.entries(),
            vec![
                e(UnmatchedReason::CompanyNotInDirectory, "acct-9", 1, 1, 1.0),
                e(UnmatchedReason::CompanyNotInDirectory, "acct-9", 2, 2, 7.0),
                e(UnmatchedReason::NoCompanyId, "v7", 1, 1, 2.0),
            ]
        );
    }

    #[test]
    fn past_the_bound_identities_are_summed_and_totals_stay_exact() {
        let mut t = UnmatchedTally::default();
        let r = UnmatchedReason::EndUserNotFound;
        // 1,002 identities: "u0000" with 3 rows, "u0001" with 2, the others with 1 row each.
        for i in 0..(MAX_IDENTITIES + 2) {
            let id = format!("u{i:04}");
            let n = match i {
                0 => 3,
                1 => 2,
                _ => 1,
            };
            for _ in 0..n {
                t.note(r, &id, d(1 + (i % 3) as u32), 1.5);
            }
        }
        let entries = t.entries();
        let listed: Vec<&UnmatchedEntry> =
            entries.iter().filter(|e| e.identity.is_some()).collect();
        assert_eq!(listed.len(), MAX_IDENTITIES);
        // The two with the fewest rows and the highest ids are summed.
        let rest: Vec<&UnmatchedEntry> = entries.iter().filter(|e| e.identity.is_none()).collect();
        assert_eq!(rest.iter().map(|e| e.rows).sum::<u64>(), 2);
        assert!(!listed
            .iter()
            .any(|e| e.identity.as_deref() == Some("u1001")));
        let (ids, totals) = summarize(entries.clone());
        assert_eq!(ids[0].identity, "u0000");
        assert_eq!((ids[0].rows, ids[0].value), (3, 4.5));
        let want_rows = (MAX_IDENTITIES + 2) as u64 + 3;
        assert_eq!(
            totals[&r],
            UnmatchedTotals {
                rows: want_rows,
                value: want_rows as f64 * 1.5,
                identities: MAX_IDENTITIES as u64,
                other_rows: 2,
                other_value: 3.0,
            }
        );
    }

    #[test]
    fn reasons_have_stable_names() {
        for r in UnmatchedReason::ALL {
            assert_eq!(UnmatchedReason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(UnmatchedReason::parse("other"), None);
    }

    proptest! {
        /// Whatever the rows, the stored entries and the summary keep every row and value.
        #[test]
        fn no_row_is_lost_or_doubled(rows in proptest::collection::vec((0u8..3, 0u16..1500, 1u32..8, 0u16..100), 0..400)) {
            let mut t = UnmatchedTally::default();
            let mut want: BTreeMap<UnmatchedReason, (u64, f64)> = BTreeMap::new();
            for (r, id, day, v) in &rows {
                let reason = UnmatchedReason::ALL[*r as usize];
                t.note(reason, &format!("id{id}"), d(*day), f64::from(*v));
                let w = want.entry(reason).or_default();
                w.0 += 1;
                w.1 += f64::from(*v);
            }
            let entries = t.entries();
            let (_, totals) = summarize(entries);
            let got: BTreeMap<UnmatchedReason, (u64, f64)> =
                totals.into_iter().map(|(r, t)| (r, (t.rows, t.value))).collect();
            prop_assert_eq!(got, want);
        }
    }
}
