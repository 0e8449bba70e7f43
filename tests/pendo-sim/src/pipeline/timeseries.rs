//! `timeSeries` windows: evaluate `first`/`last`/`count`, snap to local period boundaries.
//!
//! `count > 0`: from the start of the period containing `first`, forward `count` periods.
//! `count < 0`: ends at the start of the period containing `first`, back `|count|` periods
//! (`{"first":"now()","count":-1}` with `dayRange` = yesterday).
//! `last`: the window covers every period intersecting `[first, last)` (a `last` exactly on a
//! boundary is exclusive; a mid-period `last` includes its period).

use chrono::NaiveDate;
use serde_json::Value;

use crate::expr::{eval::eval, parse_value, EvalCtx};
use crate::timeutil::{
    add_days, add_months, day_start_ms, hour_floor_ms, local_date, month_start, week_start, HOUR_MS,
};

/// Granularity of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `hourRange`.
    Hour,
    /// `dayRange`.
    Day,
    /// `weekRange` (Sunday-aligned).
    Week,
    /// `monthRange`.
    Month,
}

/// An evaluated time window `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Period kind.
    pub period: Period,
    /// Inclusive start (ms).
    pub start_ms: i64,
    /// Exclusive end (ms).
    pub end_ms: i64,
    /// First local date touched.
    pub first_date: NaiveDate,
    /// Last local date touched (inclusive); before `first_date` when empty.
    pub last_date: NaiveDate,
}

const MAX_PERIODS: i64 = 100_000;

/// Evaluate a `first`/`last` bound to epoch ms.
pub fn eval_time(v: &Value, ctx: &EvalCtx, what: &str) -> Result<i64, String> {
    if let Value::String(s) = v {
        if let Ok(n) = s.trim().parse::<i64>() {
            return Ok(n);
        }
    }
    let e = parse_value(v).map_err(|e| format!("timeSeries.{what}: {e}"))?;
    let r = eval(&e, &Value::Null, ctx);
    r.as_f64()
        .filter(|f| f.is_finite() && f.abs() < 1e15)
        .map(|f| f as i64)
        .ok_or_else(|| format!("timeSeries.{what} does not evaluate to a time: {v}"))
}

fn floor_to(period: Period, ms: i64, ctx: &EvalCtx) -> (i64, NaiveDate) {
    let tz = ctx.tz;
    let d = local_date(tz, ms);
    match period {
        Period::Hour => (hour_floor_ms(tz, ms), d),
        Period::Day => (day_start_ms(tz, d), d),
        Period::Week => {
            let w = week_start(d);
            (day_start_ms(tz, w), w)
        }
        Period::Month => {
            let m = month_start(d);
            (day_start_ms(tz, m), m)
        }
    }
}

fn step(period: Period, ms: i64, date: NaiveDate, n: i64, ctx: &EvalCtx) -> (i64, NaiveDate) {
    match period {
        Period::Hour => {
            let t = ms + n * HOUR_MS;
            (t, local_date(ctx.tz, t))
        }
        Period::Day => {
            let d = add_days(date, n);
            (day_start_ms(ctx.tz, d), d)
        }
        Period::Week => {
            let d = add_days(date, 7 * n);
            (day_start_ms(ctx.tz, d), d)
        }
        Period::Month => {
            let d = add_months(date, n);
            (day_start_ms(ctx.tz, d), d)
        }
    }
}

/// Parse and evaluate a `timeSeries` object.
pub fn parse_window(ts: &Value, ctx: &EvalCtx) -> Result<Window, String> {
    let obj = ts.as_object().ok_or("timeSeries must be an object")?;
    let period = match obj.get("period").and_then(Value::as_str) {
        Some("dayRange") => Period::Day,
        Some("hourRange") => Period::Hour,
        Some("weekRange") => Period::Week,
        Some("monthRange") => Period::Month,
        Some(p @ ("daily" | "hourly" | "weekly" | "monthly")) => {
            return Err(format!(
                "timeSeries.period {p:?} (iterative) is not supported by the simulator; use a *Range period"
            ))
        }
        Some(p) => return Err(format!("unknown timeSeries.period {p:?}")),
        None => return Err("timeSeries.period is required".into()),
    };
    let first = obj.get("first").ok_or("timeSeries.first is required")?;
    let first = eval_time(first, ctx, "first")?;
    let (f_ms, f_date) = floor_to(period, first, ctx);
    let count = obj.get("count").filter(|v| !v.is_null());
    let last = obj.get("last").filter(|v| !v.is_null());
    let (start, end) = match (count, last) {
        (Some(c), None) => {
            let c = c
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_PERIODS as f64)
                .ok_or("timeSeries.count must be an integer within ±100000")?
                as i64;
            if c >= 0 {
                ((f_ms, f_date), step(period, f_ms, f_date, c, ctx))
            } else {
                (step(period, f_ms, f_date, c, ctx), (f_ms, f_date))
            }
        }
        (None, Some(l)) => {
            let l = eval_time(l, ctx, "last")?;
            let (l_ms, l_date) = floor_to(period, l, ctx);
            let end = if l_ms == l {
                (l_ms, l_date)
            } else {
                step(period, l_ms, l_date, 1, ctx)
            };
            if end.0 < f_ms {
                ((f_ms, f_date), (f_ms, f_date))
            } else {
                ((f_ms, f_date), end)
            }
        }
        (Some(_), Some(_)) => return Err("timeSeries takes count or last, not both".into()),
        (None, None) => return Err("timeSeries needs count or last".into()),
    };
    let (start_ms, first_date) = start;
    let end_ms = end.0;
    let last_date = if end_ms > start_ms {
        local_date(ctx.tz, end_ms - 1)
    } else {
        add_days(first_date, -1)
    };
    Ok(Window {
        period,
        start_ms,
        end_ms,
        first_date,
        last_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> EvalCtx {
        EvalCtx {
            now_ms: 1_795_176_000_000, // 2026-11-20T12:00:00Z = 07:00 EST
            tz: chrono_tz::America::New_York,
            app_ids: vec![],
        }
    }

    fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, dd).unwrap()
    }

    #[test]
    fn yesterday() {
        let w = parse_window(
            &json!({"period":"dayRange","first":"now()","count":-1}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            (w.first_date, w.last_date),
            (d(2026, 11, 19), d(2026, 11, 19))
        );
        assert_eq!(w.start_ms, 1_795_064_400_000);
        assert_eq!(w.end_ms, 1_795_150_800_000);
    }

    #[test]
    fn forward_count_and_last() {
        let w = parse_window(
            &json!({"period":"dayRange","first":"date(2026,10,31)","count":3}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            (w.first_date, w.last_date),
            (d(2026, 10, 31), d(2026, 11, 2))
        );
        // 25-hour day on Nov 1: 3 days = 73 hours.
        assert_eq!(w.end_ms - w.start_ms, 73 * HOUR_MS);
        let w = parse_window(
            &json!({"period":"dayRange","first":"date(2026,11,1)","last":"date(2026,11,3)"}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            (w.first_date, w.last_date),
            (d(2026, 11, 1), d(2026, 11, 2))
        );
        let w = parse_window(
            &json!({"period":"hourRange","first":"now() - 2 * 60 * 60 * 1000","count":2}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(w.end_ms - w.start_ms, 2 * HOUR_MS);
    }

    #[test]
    fn errors() {
        assert!(parse_window(&json!({"period":"dayRange","first":"now()"}), &ctx()).is_err());
        assert!(parse_window(&json!({"period":"x","first":1,"count":1}), &ctx()).is_err());
        assert!(parse_window(
            &json!({"period":"dayRange","first":"`a`","count":1}),
            &ctx()
        )
        .is_err());
        assert!(parse_window(&json!({"period":"dayRange","first":1,"count":1e9}), &ctx()).is_err());
    }
}
