//! Local-calendar helpers in the subscription time zone (days, hours, weeks, months).

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// Epoch ms of a local wall-clock time; in a DST gap the first valid instant after it.
pub fn local_ms(tz: Tz, naive: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, _) => a.timestamp_millis(),
        LocalResult::None => {
            // Gap (spring forward): walk forward by minutes until valid.
            let mut n = naive;
            for _ in 0..180 {
                n += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&n).earliest() {
                    return t.timestamp_millis();
                }
            }
            naive.and_utc().timestamp_millis()
        }
    }
}

/// Epoch ms of local midnight starting `date`.
pub fn day_start_ms(tz: Tz, date: NaiveDate) -> i64 {
    local_ms(tz, date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// Epoch ms of local `hour`:00 on `date`.
pub fn hour_start_ms(tz: Tz, date: NaiveDate, hour: u32) -> i64 {
    local_ms(tz, date.and_hms_opt(hour.min(23), 0, 0).unwrap_or_default())
}

/// The local wall-clock time of an epoch ms.
pub fn local_naive(tz: Tz, ms: i64) -> NaiveDateTime {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    utc.with_timezone(&tz).naive_local()
}

/// The local calendar date containing an epoch ms.
pub fn local_date(tz: Tz, ms: i64) -> NaiveDate {
    local_naive(tz, ms).date()
}

/// Start (ms) of the local hour containing `ms`.
pub fn hour_floor_ms(tz: Tz, ms: i64) -> i64 {
    let n = local_naive(tz, ms);
    let floored = n.date().and_hms_opt(n.time().hour_of(), 0, 0).unwrap_or(n);
    let candidate = local_ms(tz, floored);
    if candidate > ms {
        // Repeated hour after fall back: stay within absolute hour alignment.
        ms - ms.rem_euclid(HOUR_MS)
    } else {
        candidate
    }
}

trait HourOf {
    fn hour_of(&self) -> u32;
}

impl HourOf for chrono::NaiveTime {
    fn hour_of(&self) -> u32 {
        use chrono::Timelike;
        self.hour()
    }
}

/// Sunday on or before `date` (weeks are Sunday-aligned).
pub fn week_start(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_sunday()))
}

/// First day of the month of `date`.
pub fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// `date` shifted by `n` calendar months, day clamped to the month's length.
pub fn add_months(date: NaiveDate, n: i64) -> NaiveDate {
    let total = i64::from(date.year()) * 12 + i64::from(date.month0()) + n;
    let year = total.div_euclid(12) as i32;
    let month0 = total.rem_euclid(12) as u32;
    let mut day = date.day();
    loop {
        if let Some(d) = NaiveDate::from_ymd_opt(year, month0 + 1, day) {
            return d;
        }
        if day <= 28 {
            return date;
        }
        day -= 1;
    }
}

/// Shift a local date by days, saturating at chrono's range.
pub fn add_days(date: NaiveDate, n: i64) -> NaiveDate {
    date.checked_add_signed(Duration::days(n)).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_york_midnights_follow_dst() {
        let tz = chrono_tz::America::New_York;
        let summer = NaiveDate::from_ymd_opt(2018, 7, 9).unwrap();
        assert_eq!(day_start_ms(tz, summer), 1_531_108_800_000);
        let winter = NaiveDate::from_ymd_opt(2018, 12, 2).unwrap();
        assert_eq!(day_start_ms(tz, winter), 1_543_726_800_000);
        assert_eq!(local_date(tz, 1_543_726_800_000), winter);
    }

    #[test]
    fn month_and_week_math() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(
            add_months(d, 1),
            NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
        );
        assert_eq!(
            add_months(d, -2),
            NaiveDate::from_ymd_opt(2025, 11, 30).unwrap()
        );
        let thu = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        assert_eq!(
            week_start(thu),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
    }

    #[test]
    fn hour_floor_local() {
        let tz = chrono_tz::America::New_York;
        let d = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        let h9 = hour_start_ms(tz, d, 9);
        assert_eq!(hour_floor_ms(tz, h9 + 1_234_567), h9);
    }
}
