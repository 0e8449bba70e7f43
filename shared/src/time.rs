//! Local days, the rule for Pendo's `day` buckets and the last complete day (DESIGN §3).
//! Pure functions only.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

const DAY_MS: i64 = 86_400_000;

/// The local calendar date of a Pendo `day` bucket (epoch ms of local midnight in the
/// subscription's zone). With a zone: the date of `ms` in that zone. Without: the date of the
/// UTC midnight nearest to `ms` (right for every zone within ±12 h; naively taking the UTC date
/// would put every day of an Asian or Australian subscription one day early).
pub fn local_date_of_bucket(ms: i64, tz: Option<Tz>) -> Option<NaiveDate> {
    match tz {
        Some(tz) => DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz).date_naive()),
        None => {
            let days = (ms + DAY_MS / 2).div_euclid(DAY_MS);
            DateTime::from_timestamp_millis(days * DAY_MS).map(|t| t.date_naive())
        }
    }
}

/// The local calendar date of an event's time (epoch ms, e.g. a raw event's `browserTime`): in
/// the subscription's zone, or in UTC without one.
pub fn local_date_of_time(ms: i64, tz: Option<Tz>) -> Option<NaiveDate> {
    let t = DateTime::from_timestamp_millis(ms)?;
    Some(match tz {
        Some(tz) => t.with_timezone(&tz).date_naive(),
        None => t.date_naive(),
    })
}

/// The last day whose data is complete: yesterday in the zone, or two days ago in UTC.
pub fn last_complete_day(now: DateTime<Utc>, tz: Option<Tz>) -> NaiveDate {
    match tz {
        Some(tz) => now.with_timezone(&tz).date_naive() - Duration::days(1),
        None => now.date_naive() - Duration::days(2),
    }
}

/// The instant sent as a `timeSeries.first` for a local date: local noon with a zone, UTC noon
/// without. Pendo snaps `first` to the containing local day, and noon falls on the same local
/// date in every zone within ±12 h, so the request never shifts by a day.
pub fn anchor_ms(day: NaiveDate, tz: Option<Tz>) -> i64 {
    let noon = day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN));
    match tz {
        Some(tz) => tz
            .from_local_datetime(&noon)
            .earliest()
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| noon.and_utc().timestamp_millis()),
        None => noon.and_utc().timestamp_millis(),
    }
}

/// Days from `from` to `to` inclusive (0 when `to < from`).
pub fn days_inclusive(from: NaiveDate, to: NaiveDate) -> u32 {
    let d = (to - from).num_days() + 1;
    d.clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn buckets_across_dst_in_new_york() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // Pendo's own samples: 04:00 UTC in summer, 05:00 UTC in winter.
        assert_eq!(
            local_date_of_bucket(1531108800000, Some(ny)),
            Some(d("2018-07-09"))
        );
        assert_eq!(
            local_date_of_bucket(1543726800000, Some(ny)),
            Some(d("2018-12-02"))
        );
        assert_eq!(
            local_date_of_bucket(1531108800000, None),
            Some(d("2018-07-09"))
        );
        assert_eq!(
            local_date_of_bucket(1543726800000, None),
            Some(d("2018-12-02"))
        );
    }

    #[test]
    fn eastern_zones_are_not_a_day_early_without_a_zone() {
        // Local midnight 2024-03-10 in Tokyo is 2024-03-09T15:00Z.
        let tokyo_midnight = Utc
            .with_ymd_and_hms(2024, 3, 9, 15, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            local_date_of_bucket(tokyo_midnight, None),
            Some(d("2024-03-10"))
        );
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(
            local_date_of_bucket(tokyo_midnight, Some(tokyo)),
            Some(d("2024-03-10"))
        );
    }

    #[test]
    fn last_complete_day_with_and_without_zone() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        // 03:00Z is 22:00 on the 19th in New York: yesterday there is the 18th.
        assert_eq!(last_complete_day(now, Some(ny)), d("2026-11-18"));
        assert_eq!(last_complete_day(now, None), d("2026-11-18"));
        let later = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        assert_eq!(last_complete_day(later, Some(ny)), d("2026-11-19"));
        assert_eq!(last_complete_day(later, None), d("2026-11-18"));
    }

    #[test]
    fn anchors_fall_on_the_same_local_day() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let a = anchor_ms(d("2026-11-01"), Some(ny)); // DST ends that day
        assert_eq!(local_date_of_bucket(a, Some(ny)), Some(d("2026-11-01")));
        assert_eq!(anchor_ms(d("2026-11-01"), None), 1_793_534_400_000);
    }

    proptest! {
        #[test]
        fn nearest_midnight_rule_is_right_for_every_zone_within_12h(
            days in 0i64..40_000, offset_h in -11i64..=12
        ) {
            // A local midnight in a zone at UTC+offset is UTC midnight minus the offset.
            let utc_midnight = days * DAY_MS;
            let bucket = utc_midnight - offset_h * 3_600_000;
            let expected = DateTime::from_timestamp_millis(utc_midnight).unwrap().date_naive();
            prop_assert_eq!(local_date_of_bucket(bucket, None), Some(expected));
        }
    }
}
