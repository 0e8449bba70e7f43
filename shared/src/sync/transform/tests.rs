//! The transform's unit tests: the merged sums, and any order of rows giving the plain sums.

use super::sums::{SumsOf, FIRST_MERGE};
use super::*;
use crate::domain::{DirectoryObject, EndUser};
use crate::store::{ChunkRecords, Text};
use proptest::prelude::*;
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

fn day(offset: u8) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 2).unwrap() + chrono::Days::new(u64::from(offset))
}

/// Companies c0..c2; end users u0..u5 (`v{j}` in company `c{j % 3}`).
fn directory() -> Directory {
    let obj = |id: String| DirectoryObject {
        external_id: id,
        name: None,
        company_id: None,
    };
    let users = (0..6)
        .map(|j| EndUser {
            id: format!("u{j}"),
            company_id: format!("c{}", j % 3),
            external_id: Some(format!("v{j}")),
            email: None,
            name: None,
            surname: None,
        })
        .collect();
    Directory::new(
        (0..3).map(|c| obj(format!("c{c}"))).collect(),
        Vec::new(),
        Vec::new(),
        users,
    )
}

pub(super) fn spec(target: Target) -> TransformSpec {
    TransformSpec {
        mapping_id: MappingId::parse("m").unwrap(),
        target,
        metric: "clicks".into(),
        minutes_metric: Some("minutes".into()),
        multi_app: false,
        passive: false,
        auto_create: false,
        rules: IdentityRules {
            email_mapped: false,
            may_create: false,
        },
        tz: None,
        window: Window {
            from: day(0),
            to: day(3),
        },
        apps: AppsTable::default(),
    }
}

/// (company, visitor, day offset, app, events, minutes)
type Row = (u8, u8, u8, u8, u32, u32);
/// (object id, metric, day) → value.
type Values = BTreeMap<(String, String, NaiveDate), f64>;
/// (end user id, day) → (events, minutes).
type Activities = BTreeMap<(String, NaiveDate), (f64, f64)>;

fn json(&(c, v, d, app, e, m): &Row) -> String {
    let ms = (day(d) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() * DAY_MS;
    format!(
        r#"{{"day":{ms},"appId":{app},"company":"c{c}","endUser":"v{v}","numEvents":{e},"numMinutes":{m}}}"#
    )
}

/// Every value and activity record of the rows, through the accumulator.
fn through_accumulator(rows: &[Row], target: Target) -> (Values, Activities) {
    let dir = directory();
    let mut acc = ChunkAccumulator::new(spec(target), &dir);
    for r in rows {
        acc.row(json(r).as_bytes()).unwrap();
    }
    let prepared = acc.prepare(Vec::new());
    let mut values = BTreeMap::new();
    prepared
        .for_each_value(Text::Every, &mut |v, _| {
            let old = values.insert((v.object.id.clone(), v.metric.clone(), v.day), v.value);
            assert!(old.is_none(), "one value per key");
            Ok(())
        })
        .unwrap();
    let mut activity = BTreeMap::new();
    prepared
        .for_each_activity(Text::Every, &mut |a, _| {
            let old = activity.insert((a.end_user_id.clone(), a.day), (a.events, a.minutes));
            assert!(old.is_none(), "one record per key");
            Ok(())
        })
        .unwrap();
    assert_eq!(prepared.value_count(), values.len() as u64);
    assert_eq!(prepared.activity_count(), activity.len() as u64);
    (values, activity)
}

#[test]
fn merged_sums_merge_each_key_into_one_sorted_entry_however_they_come() {
    let mut m = MergedSums::default();
    let s = |events: f64| Sums {
        events,
        minutes: 1.0,
    };
    // 200,000 additions over 50,000 keys in a scrambled order: three merges on the way.
    for i in 0..200_000u32 {
        let k = i.wrapping_mul(7919) % 50_000;
        let key = (k, k % 3);
        m.add_sums(key, s(1.0));
    }
    m.merge();
    let got = m.sorted();
    assert_eq!(got.len(), 50_000);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(got.iter().all(|(_, s)| s.events == 4.0 && s.minutes == 4.0));
    // Bounded: never more than twice the distinct keys (or the first merge's size).
    assert!(m.entries.capacity() <= 4 * 50_000 + FIRST_MERGE);
    m.clear();
    assert!(m.sorted().is_empty());
}

proptest! {
    /// Rows in any order, with identities changing or repeating from row to row, give the
    /// plain per-key sums (values per object and day over every app; activity per known
    /// end user and day).
    #[test]
    fn any_row_order_gives_the_plain_sums(
        rows in proptest::collection::vec((0u8..4, 0u8..8, 0u8..4, 0u8..2, 0u32..50, 0u32..10), 0..200)
    ) {
        // A visitor is a known end user only in its own company.
        let user = |c: u8, v: u8| (v < 6 && c == v % 3).then(|| format!("u{v}"));
        for target in [Target::Company, Target::EndUser] {
            let mut want_values = Values::new();
            let mut want_activity = Activities::new();
            for &(c, v, d, _, e, m) in &rows {
                if let Some(u) = user(c, v) {
                    let a = want_activity.entry((u, day(d))).or_default();
                    a.0 += f64::from(e);
                    a.1 += f64::from(m);
                }
                let object = match target {
                    Target::Company => (c < 3).then(|| format!("c{c}")),
                    _ => user(c, v),
                };
                if let Some(o) = object {
                    *want_values.entry((o.clone(), "clicks".into(), day(d))).or_default() += f64::from(e);
                    *want_values.entry((o, "minutes".into(), day(d))).or_default() += f64::from(m);
                }
            }
            let (values, activity) = through_accumulator(&rows, target);
            prop_assert_eq!(&values, &want_values);
            prop_assert_eq!(&activity, &want_activity);
        }
    }
}

#[test]
fn a_visitor_seen_again_after_others_adds_to_its_sums() {
    // v0's rows are split by v1's; the sums are those of all its rows.
    let rows = [
        (0, 0, 0, 0, 3, 1),
        (0, 0, 1, 0, 4, 1),
        (1, 1, 0, 0, 5, 2),
        (0, 0, 0, 1, 6, 2),
    ];
    let (values, activity) = through_accumulator(&rows, Target::EndUser);
    assert_eq!(
        values.get(&("u0".into(), "clicks".into(), day(0))),
        Some(&9.0)
    );
    assert_eq!(
        values.get(&("u0".into(), "minutes".into(), day(0))),
        Some(&3.0)
    );
    assert_eq!(
        values.get(&("u0".into(), "clicks".into(), day(1))),
        Some(&4.0)
    );
    assert_eq!(
        values.get(&("u1".into(), "clicks".into(), day(0))),
        Some(&5.0)
    );
    assert_eq!(values.len(), 6);
    assert_eq!(activity.get(&("u0".into(), day(0))), Some(&(9.0, 3.0)));
    assert_eq!(activity.len(), 3);
}
