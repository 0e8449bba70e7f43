//! When the daily sync runs: at a time of day in UTC (the local runner's `--daily-at`; on AWS,
//! the EventBridge schedule). Pure: the caller brings "now" from the clock port.

use crate::error::ValidationError;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use std::fmt;

/// A time of day (UTC, to the minute) at which the daily sync starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAt(NaiveTime);

impl DailyAt {
    /// The default: 02:00 UTC.
    pub const DEFAULT: DailyAt = DailyAt(match NaiveTime::from_hms_opt(2, 0, 0) {
        Some(t) => t,
        None => NaiveTime::MIN,
    });

    /// Parses `HH:MM` (24-hour, two digits each).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = || {
            ValidationError::new(
                "dailyAt",
                "must be a time of day as HH:MM (00:00 to 23:59), in UTC",
            )
        };
        let (h, m) = raw.trim().split_once(':').ok_or_else(bad)?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        NaiveTime::from_hms_opt(h, m, 0).map(Self).ok_or_else(bad)
    }

    /// The first run strictly after `now`: today at this time if that is still ahead, else
    /// tomorrow.
    pub fn next_after(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.date_naive().and_time(self.0).and_utc();
        if today > now {
            today
        } else {
            today + Duration::days(1)
        }
    }
}

impl Default for DailyAt {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for DailyAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} UTC", self.0.format("%H:%M"))
    }
}

impl std::str::FromStr for DailyAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).map_err(|e| e.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_hh_mm_and_refuses_the_rest() {
        assert_eq!(DailyAt::parse("02:00").unwrap(), DailyAt::DEFAULT);
        assert_eq!(DailyAt::parse("23:59").unwrap().to_string(), "23:59 UTC");
        assert_eq!(DailyAt::parse(" 00:00 ").unwrap().to_string(), "00:00 UTC");
        for bad in [
            "24:00", "2:00", "02:60", "0200", "02:00:00", "", "ab:cd", "-1:00", "+1:00",
        ] {
            let e = DailyAt::parse(bad).unwrap_err();
            assert_eq!(e.field, "dailyAt", "{bad}");
        }
    }

    #[test]
    fn the_next_run_is_today_if_still_ahead_else_tomorrow() {
        let d = DailyAt::DEFAULT;
        assert_eq!(
            d.next_after(at("2026-12-01T01:59:59Z")),
            at("2026-12-01T02:00:00Z")
        );
        // Exactly at the time: that run is due now, the next one is tomorrow.
        assert_eq!(
            d.next_after(at("2026-12-01T02:00:00Z")),
            at("2026-12-02T02:00:00Z")
        );
        assert_eq!(
            d.next_after(at("2026-12-31T23:00:00Z")),
            Utc.with_ymd_and_hms(2027, 1, 1, 2, 0, 0).unwrap()
        );
        let late = DailyAt::parse("23:30").unwrap();
        assert_eq!(
            late.next_after(at("2026-12-01T02:00:00Z")),
            at("2026-12-01T23:30:00Z")
        );
    }
}
