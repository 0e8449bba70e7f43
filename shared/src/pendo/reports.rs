//! Report discovery (pure): which saved reports can feed metrics, and why the others cannot.
//! Refused: a fixed date range, no numeric column, a relative window over 180 days. A window
//! over 30 days is allowed with a warning. Only numeric columns are offered.

use serde::Serialize;
use serde_json::Value;

pub const MAX_WINDOW_DAYS: i64 = 180;
pub const WARN_WINDOW_DAYS: i64 = 30;

/// A column of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportColumn {
    pub field: String,
    pub title: String,
}

/// A report as discovery shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportInfo {
    pub id: String,
    pub name: String,
    /// `visitor` or `account` (as Pendo labels it; empty when unknown).
    pub level: String,
    pub window_days: Option<i64>,
    pub compatible: bool,
    /// Why the report cannot be mapped.
    pub reason: Option<String>,
    pub warning: Option<String>,
    pub numeric_columns: Vec<ReportColumn>,
}

fn source_time_series(report: &Value) -> Option<&Value> {
    super::pipelines::source_time_series(report.pointer("/aggregation/pipeline")?.as_array()?)
}

/// Pendo's id columns: numbers sometimes (`appId`), never metrics.
const ID_COLUMNS: [&str; 4] = ["accountId", "visitorId", "appId", "day"];

fn is_relative(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains("now()"))
}

/// Classifies one object of `GET /api/v1/report`.
pub fn classify(report: &Value) -> ReportInfo {
    let text = |p: &str| {
        report
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let numeric_columns: Vec<ReportColumn> = report
        .pointer("/aggregation/fields")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter(|f| {
                    matches!(
                        f.get("type").and_then(Value::as_str),
                        Some("number" | "integer" | "float")
                    )
                })
                .filter_map(|f| {
                    let field = f.get("field")?.as_str()?.to_string();
                    if ID_COLUMNS.contains(&field.as_str()) {
                        return None;
                    }
                    let title = f
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or(&field)
                        .to_string();
                    Some(ReportColumn { field, title })
                })
                .collect()
        })
        .unwrap_or_default();
    let ts = source_time_series(report);
    let declared_fixed = text("/definition/dateRanges/primaryDateRange/type") == "fixed";
    let window_days = ts.and_then(|t| {
        let count = t.get("count").and_then(Value::as_i64).map(i64::abs);
        count.filter(|_| t.get("period").and_then(Value::as_str) == Some("dayRange"))
    });
    let fixed = declared_fixed || ts.is_some_and(|t| !t.get("first").is_some_and(is_relative));
    let reason = if ts.is_none() {
        Some("the report has no time window this service can re-anchor".to_string())
    } else if fixed {
        Some("the report has a fixed date range, not a relative time window".to_string())
    } else if numeric_columns.is_empty() {
        Some("the report has no numeric column".to_string())
    } else if window_days.is_none() {
        Some("the report's time window is not a day range".to_string())
    } else if window_days.is_some_and(|d| d > MAX_WINDOW_DAYS) {
        Some(format!(
            "the report's window is over {MAX_WINDOW_DAYS} days"
        ))
    } else {
        None
    };
    let warning = window_days
        .filter(|d| reason.is_none() && *d > WARN_WINDOW_DAYS)
        .map(|d| format!("a {d}-day window is slow to sync; 30 days or less is recommended"));
    ReportInfo {
        id: text("/id"),
        name: text("/name"),
        level: text("/level"),
        window_days,
        compatible: reason.is_none(),
        reason,
        warning,
        numeric_columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(ts: Value, range: &str, fields: Value) -> Value {
        json!({"id": "r", "name": "R", "level": "visitor",
            "definition": {"dateRanges": {"primaryDateRange": {"type": range}}},
            "aggregation": {"fields": fields, "pipeline": [{"source": {"events": null, "timeSeries": ts}}]}})
    }

    fn num() -> Value {
        json!([{"field": "visitorId", "title": "Visitor", "type": "string"},
               {"field": "appId", "title": "App", "type": "number"},
               {"field": "numEvents", "title": "Events", "type": "number"}])
    }

    #[test]
    fn classification() {
        let ok = classify(&report(
            json!({"period": "dayRange", "first": "now()", "count": -7}),
            "relative",
            num(),
        ));
        assert!(ok.compatible && ok.warning.is_none());
        assert_eq!(ok.window_days, Some(7));
        assert_eq!(
            ok.numeric_columns,
            vec![ReportColumn {
                field: "numEvents".into(),
                title: "Events".into()
            }]
        );
        let warn = classify(&report(
            json!({"period": "dayRange", "first": "now()", "count": -90}),
            "relative",
            num(),
        ));
        assert!(warn.compatible && warn.warning.is_some());
        let long = classify(&report(
            json!({"period": "dayRange", "first": "now()", "count": -365}),
            "relative",
            num(),
        ));
        assert_eq!(
            long.reason.as_deref(),
            Some("the report's window is over 180 days")
        );
        let fixed = classify(&report(
            json!({"period": "dayRange", "first": 1700000000000i64, "last": 1710000000000i64}),
            "fixed",
            num(),
        ));
        assert!(fixed.reason.unwrap().contains("fixed"));
        let none = classify(&report(
            json!({"period": "dayRange", "first": "now()", "count": -7}),
            "relative",
            json!([{"field": "visitorId", "title": "Visitor", "type": "string"}]),
        ));
        assert_eq!(
            none.reason.as_deref(),
            Some("the report has no numeric column")
        );
        assert!(!classify(&json!({"id": 3})).compatible);
    }
}
