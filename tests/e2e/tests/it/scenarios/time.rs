//! Day bucketing in the subscription's zone across a DST change, and the trailing day with and
//! without a zone.

use crate::helpers::*;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::{MappingKind, Target};
use pendo_sync::store::prelude::*;

#[tokio::test]
async fn company_values_equal_a_direct_pipeline_across_the_dst_change() {
    let s = Stack::start().await;
    s.ny_days(20).await;
    let companies = s.add_companies(&[]).await;
    let f = s.feature(-323232);
    s.mapping(
        MappingKind::Feature {
            feature_id: f.clone(),
            minutes_metric: None,
        },
        Target::Company,
        "Clicks",
        |_| {},
    )
    .await;
    s.resync().await;

    // With a zone, the last complete day is yesterday in New York (now = 2026-11-05T15:00Z).
    let (from, to) = (d("2026-10-16"), d("2026-11-04"));
    let rows = s.feature_rows(&f, from, to, NY, vec![]);
    // The raw buckets of Nov 1 and Nov 2 are 25 hours apart: the window crosses the DST change.
    let buckets: std::collections::BTreeSet<i64> =
        rows.iter().map(|r| r["day"].as_i64().unwrap()).collect();
    let nov1 = NY.with_ymd_and_hms_opt(2026, 11, 1).timestamp_millis();
    assert!(buckets.contains(&nov1) && buckets.contains(&(nov1 + 25 * 3_600_000)));

    let want = sum_by(&rows, NY, "numEvents", |r| {
        r["accountId"]
            .as_str()
            .filter(|a| companies.contains(&a.to_string()))
            .map(str::to_string)
    });
    let got: std::collections::BTreeMap<(String, chrono::NaiveDate), f64> = s
        .values()
        .await
        .into_iter()
        .map(|((o, _, _, day), v)| ((o, day), v))
        .collect();
    assert!(want.len() > 100, "too few expected values: {}", want.len());
    assert_eq!(got, want);
    assert!(got.keys().any(|(_, day)| *day == d("2026-11-01")));
    assert_eq!(got.keys().map(|(_, day)| *day).max(), Some(to));
}

trait Midnight {
    fn with_ymd_and_hms_opt(&self, y: i32, m: u32, d: u32) -> chrono::DateTime<chrono_tz::Tz>;
}
impl Midnight for chrono_tz::Tz {
    fn with_ymd_and_hms_opt(&self, y: i32, m: u32, d: u32) -> chrono::DateTime<chrono_tz::Tz> {
        chrono::TimeZone::with_ymd_and_hms(self, y, m, d, 0, 0, 0).unwrap()
    }
}

#[tokio::test]
async fn without_a_zone_values_trail_one_more_day_but_land_on_the_same_dates() {
    let with_tz = Stack::start().await;
    let without = Stack::start().await;
    with_tz
        .settings(SettingsUpdate {
            days_to_sync: Some(10),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        })
        .await;
    without
        .settings(SettingsUpdate {
            days_to_sync: Some(10),
            ..Default::default()
        })
        .await;
    let mut maps = Vec::new();
    for s in [&with_tz, &without] {
        s.add_companies(&[]).await;
        let f = s.feature(-323232);
        maps.push(
            s.mapping(
                MappingKind::Feature {
                    feature_id: f,
                    minutes_metric: None,
                },
                Target::Company,
                "Clicks",
                |_| {},
            )
            .await,
        );
        s.resync().await;
    }
    let st = |s: &Stack, i: usize| {
        let (store, t, id) = (s.store.clone(), s.tenant.clone(), maps[i].id.clone());
        async move {
            store
                .get_mapping_state(&t, &id)
                .await
                .unwrap()
                .unwrap()
                .last_synced_day
        }
    };
    // now = 2026-11-05T15:00Z: yesterday in New York is Nov 4; two days ago in UTC is Nov 3.
    assert_eq!(st(&with_tz, 0).await, Some(d("2026-11-04")));
    assert_eq!(st(&without, 1).await, Some(d("2026-11-03")));
    let a = with_tz.values().await;
    let b = without.values().await;
    // Every value the zone-less run has is the same value on the same date as with the zone.
    assert!(!b.is_empty());
    for (k, v) in &b {
        if k.3 >= d("2026-10-27") {
            assert_eq!(a.get(k), Some(v), "{k:?}");
        }
    }
    assert!(b.keys().all(|k| k.3 <= d("2026-11-03")));
}
