//! Unmatched identities (pure): the Pendo ids whose rows a chunk could not use, why, with their
//! rows, the value those rows carried and the days they fell on; bounded per chunk and per
//! mapping to the identities with the most rows, with exact totals for the rest.

pub use crate::domain::unmatched::{
    UnmatchedEntry, UnmatchedIdentity, UnmatchedReason, UnmatchedTotals, MAX_IDENTITIES,
};
use crate::domain::Window;
use crate::domain::{DirectoryObject, EndUser, Target};
use chrono::{Duration, NaiveDate};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
/// A kept identity's rows per day in a chunk (a few days: a short list).
type ChunkDays = Vec<(NaiveDate, Sums)>;

/// Distinct identities a chunk keeps apart per reason; the rows of any identity seen after them
/// are summed per day with the rest (totals stay exact). Ten times the identities a mapping
/// lists: the listed ones are the chunk's top ones unless one chunk meets more than this many
/// distinct identities of one reason (such as 140,000 visitors without an account), when the
/// first ones seen are kept. Memory stays about 1 MB per reason whatever the chunk's size.
pub const KEPT_PER_CHUNK: usize = 10 * MAX_IDENTITIES;

/// A chunk's unmatched rows as they are read.
#[derive(Debug, Default, Clone)]
pub struct UnmatchedTally {
    /// Per reason, each kept identity's rows per day.
    by_reason: BTreeMap<UnmatchedReason, HashMap<Box<str>, ChunkDays>>,
    /// Per reason, the rows of identities past [`KEPT_PER_CHUNK`], per day.
    overflow: BTreeMap<UnmatchedReason, Days>,
}

impl UnmatchedTally {
    /// One row of `identity` that could not be used for `reason`, carrying `value`.
    pub fn note(&mut self, reason: UnmatchedReason, identity: &str, day: NaiveDate, value: f64) {
        let ids = self.by_reason.entry(reason).or_default();
        let first = (day, Sums { rows: 1, value });
        if let Some(days) = ids.get_mut(identity) {
            match days.iter_mut().find(|(d, _)| *d == day) {
                Some((_, s)) => s.add(1, value),
                None => days.push(first),
            }
        } else if ids.len() < KEPT_PER_CHUNK {
            ids.insert(identity.into(), vec![first]);
        } else {
            let rest = self.overflow.entry(reason).or_default();
            rest.entry(day).or_default().add(1, value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_reason.values().all(HashMap::is_empty) && self.overflow.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_reason.clear();
        self.overflow.clear();
    }

    /// The entries to store: per reason, the `MAX_IDENTITIES` identities with the most rows (then
    /// value, then id), each per day; the rest summed per day without an identity. Sorted by
    /// reason, identity (the sum last), day.
    pub fn entries(&self) -> Vec<UnmatchedEntry> {
        let reasons: BTreeSet<UnmatchedReason> = self
            .by_reason
            .keys()
            .chain(self.overflow.keys())
            .copied()
            .collect();
        let mut out = Vec::new();
        for reason in reasons {
            let total = |days: &[(NaiveDate, Sums)]| {
                days.iter().fold(Sums::default(), |mut a, (_, s)| {
                    a.add(s.rows, s.value);
                    a
                })
            };
            let mut ids: Vec<(&Box<str>, &ChunkDays)> = self
                .by_reason
                .get(&reason)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            ids.sort_by(|a, b| rank(&total(b.1), b.0).cmp_to(&rank(&total(a.1), a.0)));
            let mut rest: Days = self.overflow.get(&reason).cloned().unwrap_or_default();
            let mut listed = Vec::new();
            for (i, (id, days)) in ids.into_iter().enumerate() {
                if i < MAX_IDENTITIES {
                    for (day, s) in days {
                        listed.push(UnmatchedEntry {
                            reason,
                            identity: Some(id.to_string()),
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

/// What the directory knows, for telling which unmatched identities it now resolves.
pub struct Known<'a> {
    companies: HashSet<&'a str>,
    objects: HashSet<&'a str>,
    end_users: HashSet<&'a str>,
}

impl<'a> Known<'a> {
    /// The companies, the mapping target's assets or projects (`objects`), and the end users
    /// (by external id and by email).
    pub fn new(
        companies: &'a [DirectoryObject],
        objects: &'a [DirectoryObject],
        end_users: &'a [EndUser],
    ) -> Self {
        Self {
            companies: companies.iter().map(|c| c.external_id.as_str()).collect(),
            objects: objects.iter().map(|o| o.external_id.as_str()).collect(),
            end_users: end_users
                .iter()
                .flat_map(|u| [u.external_id.as_deref(), u.email.as_deref()])
                .flatten()
                .collect(),
        }
    }

    /// Whether a row of `identity` unmatched for `reason` would now be matched (only a
    /// directory change can fix the first three reasons).
    pub fn resolves(&self, reason: UnmatchedReason, identity: &str) -> bool {
        match reason {
            UnmatchedReason::CompanyNotInDirectory => self.companies.contains(identity),
            UnmatchedReason::NotInDirectory => self.objects.contains(identity),
            UnmatchedReason::EndUserNotFound => self.end_users.contains(identity),
            UnmatchedReason::NoCompanyId
            | UnmatchedReason::AnonymousVisitor
            | UnmatchedReason::NoId => false,
        }
    }
}

/// Which directory holds the objects a target's unmatched rows name, besides companies.
pub fn objects_of(target: Target) -> Option<Target> {
    matches!(target, Target::Asset | Target::Project).then_some(target)
}

/// The days of `entries` with an identity the directory now resolves (the identities summed
/// past the bound are not known one by one, so they are never recovered).
pub fn recoverable_days(entries: &[UnmatchedEntry], known: &Known<'_>) -> BTreeSet<NaiveDate> {
    entries
        .iter()
        .filter(|e| {
            e.identity
                .as_deref()
                .is_some_and(|id| known.resolves(e.reason, id))
        })
        .map(|e| e.day)
        .collect()
}

/// The identities of `entries` the directory now resolves, by reason.
pub fn recoverable_identities(
    entries: &[UnmatchedEntry],
    known: &Known<'_>,
) -> BTreeMap<UnmatchedReason, BTreeSet<String>> {
    let mut out: BTreeMap<UnmatchedReason, BTreeSet<String>> = BTreeMap::new();
    for e in entries {
        if let Some(id) = e
            .identity
            .as_deref()
            .filter(|id| known.resolves(e.reason, id))
        {
            out.entry(e.reason).or_default().insert(id.to_string());
        }
    }
    out
}

/// Consecutive days as windows.
pub fn windows(days: &BTreeSet<NaiveDate>) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some(w) if w.to + Duration::days(1) == d => w.to = d,
            _ => out.push(Window { from: d, to: d }),
        }
    }
    out
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
    fn a_chunk_keeps_at_most_its_bound_of_identities_and_sums_the_later_ones() {
        let mut t = UnmatchedTally::default();
        let r = UnmatchedReason::NoCompanyId;
        // 25,000 distinct visitors, each 1 row; then the first one again (kept: 2 rows).
        for i in 0..25_000 {
            t.note(r, &format!("v{i:05}"), d(1 + (i % 2) as u32), 1.0);
        }
        t.note(r, "v00000", d(1), 1.0);
        assert_eq!(t.by_reason[&r].len(), KEPT_PER_CHUNK);
        assert_eq!(t.overflow[&r].values().map(|s| s.rows).sum::<u64>(), 15_000);
        let entries = t.entries();
        assert_eq!(entries.iter().map(|e| e.rows).sum::<u64>(), 25_001);
        assert_eq!(
            entries.iter().filter(|e| e.identity.is_some()).count(),
            MAX_IDENTITIES
        );
        // The kept identity with 2 rows ranks first; the sum is one entry per day.
        assert_eq!(entries[0].identity.as_deref(), Some("v00000"));
        assert_eq!(entries[0].rows, 2);
        let rest: Vec<(NaiveDate, u64)> = entries
            .iter()
            .filter(|e| e.identity.is_none())
            .map(|e| (e.day, e.rows))
            .collect();
        assert_eq!(rest, vec![(d(1), 12_000), (d(2), 12_000)]);
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
    fn days_are_recovered_for_identities_the_directory_now_knows() {
        let e = |reason, id: Option<&str>, day| UnmatchedEntry {
            reason,
            identity: id.map(str::to_string),
            day: d(day),
            rows: 1,
            value: 1.0,
        };
        let entries = [
            e(UnmatchedReason::CompanyNotInDirectory, Some("acct-1"), 1),
            e(UnmatchedReason::CompanyNotInDirectory, Some("acct-1"), 2),
            e(UnmatchedReason::CompanyNotInDirectory, Some("acct-2"), 4),
            e(UnmatchedReason::CompanyNotInDirectory, None, 6),
            e(UnmatchedReason::EndUserNotFound, Some("ann@x.io"), 5),
            e(UnmatchedReason::NoCompanyId, Some("acct-1"), 7),
        ];
        let companies = [DirectoryObject {
            external_id: "acct-1".into(),
            name: None,
            company_id: None,
        }];
        let users = [EndUser {
            id: "acct-1|e:ann@x.io".into(),
            company_id: "acct-1".into(),
            external_id: None,
            email: Some("ann@x.io".into()),
            name: None,
            surname: None,
        }];
        let known = Known::new(&companies, &[], &users);
        let days = recoverable_days(&entries, &known);
        assert_eq!(days, [d(1), d(2), d(5)].into());
        assert_eq!(
            windows(&days),
            vec![
                Window {
                    from: d(1),
                    to: d(2)
                },
                Window {
                    from: d(5),
                    to: d(5)
                }
            ]
        );
        let ids = recoverable_identities(&entries, &known);
        assert_eq!(
            ids[&UnmatchedReason::CompanyNotInDirectory],
            ["acct-1".to_string()].into()
        );
        assert_eq!(ids.len(), 2);
        assert!(windows(&BTreeSet::new()).is_empty());
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
