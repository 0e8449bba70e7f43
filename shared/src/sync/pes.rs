//! PES mappings: the `pes` pipeline for one app and a 30-day window ending on the synced day,
//! and the parsing of its rows. Pendo's real PES response shape is undocumented, so every
//! assumption about it lives in [`parse_pes_row`] (one function, tolerant of the plausible
//! variants, tested on its own).

use super::custom_rows::{number, DayAccumulator};
use crate::domain::mapping::PesComponent;
use crate::pendo::{RowError, RowSink};
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

/// PES windows are 30 days ending on the synced day.
pub const PES_WINDOW_DAYS: i64 = 30;

/// The canonical column of a component, as [`parse_pes_row`] outputs it.
pub fn column(c: PesComponent) -> &'static str {
    match c {
        PesComponent::Score => "score",
        PesComponent::Adoption => "adoption",
        PesComponent::Stickiness => "stickiness",
        PesComponent::Growth => "growth",
    }
}

/// The `pes` pipeline: the 30 local days ending on `day` (Pendo's negative count ends just
/// before the day containing `firstDay`, so `firstDay` is the day after, at local noon).
pub fn pes_pipeline(
    app_id: i64,
    day: NaiveDate,
    tz: Option<Tz>,
    segment: Option<&str>,
) -> Vec<Value> {
    let next = day.succ_opt().unwrap_or(day);
    let mut pes = json!({
        "appId": app_id,
        "firstDay": crate::time::anchor_ms(next, tz),
        "dayCount": -PES_WINDOW_DAYS,
        "blacklist": "apply",
    });
    if let (Some(seg), Some(o)) = (segment, pes.as_object_mut()) {
        o.insert("segment".into(), json!({ "id": seg }));
    }
    vec![json!({ "pes": pes })]
}

/// One PES row as this service reads it: `accountId`, optional `appId`, and the components
/// under their canonical names (`score`, `adoption`, `stickiness`, `growth`).
///
/// Accepted variants: the score as `pes`, `score` or `pesScore`; the components at the top
/// level or under `components`/`pesComponents`; each value a number, a numeric string, or an
/// object holding it under `value`/`score`; the account as `accountId` or `account.id`.
/// `Ok(None)` for a row without an account (skipped); `Err` only for a row that is not JSON.
pub fn parse_pes_row(raw: &[u8]) -> Result<Option<Map<String, Value>>, String> {
    let row: Map<String, Value> =
        serde_json::from_slice(raw).map_err(|e| format!("bad PES row: {e}"))?;
    let account = row
        .get("accountId")
        .or_else(|| row.get("account").and_then(|a| a.get("id")))
        .and_then(|a| match a {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let Some(account) = account else {
        return Ok(None);
    };
    let nested = ["components", "pesComponents"]
        .iter()
        .find_map(|k| row.get(*k).and_then(Value::as_object));
    let value_of = |names: &[&str]| -> Option<f64> {
        names.iter().find_map(|n| {
            let v = row.get(*n).or_else(|| nested.and_then(|m| m.get(*n)))?;
            match v {
                Value::Object(o) => number(o.get("value").or_else(|| o.get("score"))),
                other => number(Some(other)),
            }
        })
    };
    let mut out = Map::new();
    out.insert("accountId".into(), Value::String(account));
    if let Some(app) = number(row.get("appId")) {
        out.insert("appId".into(), json!(app as i64));
    }
    for (col, names) in [
        ("score", &["pes", "score", "pesScore"][..]),
        ("adoption", &["adoption"][..]),
        ("stickiness", &["stickiness"][..]),
        ("growth", &["growth"][..]),
    ] {
        if let Some(v) = value_of(names) {
            out.insert(col.into(), json!(v));
        }
    }
    Ok(Some(out))
}

/// Feeds parsed PES rows of one app into a [`DayAccumulator`] (whose fields are the canonical
/// component columns).
pub struct PesSink<'a, 'd> {
    pub app_id: i64,
    pub acc: &'a mut DayAccumulator<'d>,
}

impl RowSink for PesSink<'_, '_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        match parse_pes_row(raw)? {
            Some(row)
                if row
                    .get("appId")
                    .and_then(Value::as_i64)
                    .is_none_or(|a| a == self.app_id) =>
            {
                self.acc.add_map(&row);
            }
            _ => self.acc.skipped.unusable += 1,
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.acc.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Option<Map<String, Value>> {
        parse_pes_row(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn simulator_shape() {
        let r = parse(json!({"accountId": "a", "appId": -323232, "adoption": 12.5,
            "stickiness": 3, "growth": 0, "pes": 5.17}))
        .unwrap();
        assert_eq!(r["accountId"], "a");
        assert_eq!(r["appId"], -323232);
        assert_eq!(r["score"], 5.17);
        assert_eq!(r["stickiness"], 3.0);
        assert_eq!(r["growth"], 0.0);
    }

    #[test]
    fn plausible_variants() {
        let r = parse(json!({"account": {"id": 42}, "pesScore": "7.5",
            "components": {"adoption": {"value": 1}, "stickiness": "2", "growth": {"score": 3}}}))
        .unwrap();
        assert_eq!(r["accountId"], "42");
        assert_eq!(r["score"], 7.5);
        assert_eq!(
            (&r["adoption"], &r["stickiness"], &r["growth"]),
            (&json!(1.0), &json!(2.0), &json!(3.0))
        );
        let r = parse(json!({"accountId": "a", "score": null, "adoption": "n/a"})).unwrap();
        assert!(r.get("score").is_none() && r.get("adoption").is_none());
        assert!(parse(json!({"accountId": "", "pes": 1})).is_none());
        assert!(parse(json!({"pes": 1})).is_none());
        assert!(parse_pes_row(b"[1,2").is_err());
    }

    #[test]
    fn pipeline_window_ends_on_the_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 4).unwrap();
        let p = pes_pipeline(7, day, None, Some("seg"));
        let next = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        assert_eq!(p[0]["pes"]["firstDay"], crate::time::anchor_ms(next, None));
        assert_eq!(p[0]["pes"]["dayCount"], -30);
        assert_eq!(p[0]["pes"]["appId"], 7);
        assert_eq!(p[0]["pes"]["segment"]["id"], "seg");
    }
}
