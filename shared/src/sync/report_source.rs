//! Report mappings (pure): from a saved report of `GET /api/v1/report` to the per-day pipeline
//! this service runs — the report's own `aggregation.pipeline`, re-anchored so its relative
//! window of N days ends on the synced day — and the checks of a Report mapping.

use crate::domain::aggregation::{self, IdFields};
use crate::domain::mapping::FieldMetric;
use crate::domain::{FieldMappings, FieldRecord, Target};
use crate::error::ValidationError;
use crate::pendo::reports::classify;
use serde_json::{json, Value};

/// A compatible report, ready to run per day.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSource {
    /// The saved pipeline (plus the company-id expansion when needed), not yet re-anchored.
    pub stages: Vec<Value>,
    pub window_days: u32,
    pub ids: IdFields,
}

/// Finds `report_id` among the reports Pendo lists.
pub fn find<'a>(reports: &'a [Value], report_id: &str) -> Result<&'a Value, ValidationError> {
    reports
        .iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(report_id))
        .ok_or_else(|| {
            ValidationError::new(
                "source.reportId",
                format!("report {report_id} is not among the subscription's saved reports"),
            )
        })
}

/// Checks a report against a mapping (compatible, columns among its numeric columns, the
/// target's id fields present) and returns its per-day form.
///
/// A visitor-level report has no company column; when the company id is the row field
/// `accountId` and the report outputs `visitorId`, each row's account is added from the
/// visitor's `metadata.auto.accountid`, so its rows can roll up to companies and resolve end
/// users.
pub fn prepare(
    report: &Value,
    columns: &[FieldMetric],
    target: Target,
    fm: &FieldMappings,
) -> Result<ReportSource, ValidationError> {
    let info = classify(report);
    if !info.compatible {
        return Err(ValidationError::new(
            "source.reportId",
            format!(
                "report {} cannot be mapped: {}",
                info.id,
                info.reason.unwrap_or_default()
            ),
        ));
    }
    let window_days = info
        .window_days
        .and_then(|d| u32::try_from(d).ok())
        .filter(|d| *d >= 1)
        .ok_or_else(|| {
            ValidationError::new("source.reportId", "the report has no day-range window")
        })?;
    if columns.is_empty() {
        return Err(ValidationError::new(
            "source.columns",
            "map at least one numeric column to a metric",
        ));
    }
    for (i, c) in columns.iter().enumerate() {
        if !info.numeric_columns.iter().any(|n| n.field == c.field) {
            let offered: Vec<&str> = info
                .numeric_columns
                .iter()
                .map(|n| n.field.as_str())
                .collect();
            return Err(ValidationError::new(
                format!("source.columns[{i}].field"),
                format!(
                    "'{}' is not a numeric column of the report (numeric columns: {})",
                    c.field,
                    offered.join(", ")
                ),
            ));
        }
    }
    let mut stages = report
        .pointer("/aggregation/pipeline")
        .map(aggregation::unwrap_pipeline)
        .transpose()?
        .ok_or_else(|| ValidationError::new("source.reportId", "the report has no pipeline"))?;
    let mut out = aggregation::output(&stages).ok_or_else(|| {
        ValidationError::new("source.reportId", "the report's output cannot be known")
    })?;
    let company_is_account =
        fm.company_id.record == FieldRecord::Row && fm.company_id.path == "accountId";
    let has = |o: &aggregation::Output, n: &str| o.fields.iter().any(|f| f.name == n);
    if company_is_account && !has(&out, "accountId") && has(&out, "visitorId") {
        stages.push(json!({ "bulkExpand": { "visitor": { "visitor": "visitorId" } } }));
        stages.push(json!({ "eval": { "accountId": "visitor.auto.accountid" } }));
        out = aggregation::output(&stages).ok_or_else(|| {
            ValidationError::new("source.reportId", "the report's output cannot be known")
        })?;
    }
    let ids = aggregation::id_fields(target, fm, &out).map_err(|e| {
        ValidationError::new(
            "source.reportId",
            format!("the report cannot feed this target: {}", e.reason),
        )
    })?;
    Ok(ReportSource {
        stages,
        window_days,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(level_cols: &[&str], count: i64, first: Value) -> Value {
        let select: serde_json::Map<String, Value> = level_cols
            .iter()
            .map(|c| (c.to_string(), Value::String(c.to_string())))
            .collect();
        json!({"id": "r", "name": "R", "level": "visitor",
        "definition": {"dateRanges": {"primaryDateRange": {"type": "relative"}}},
        "aggregation": {
            "fields": [{"field": "visitorId", "type": "string"},
                       {"field": "numEvents", "type": "number"}],
            "pipeline": [
                {"source": {"events": null, "timeSeries": {"period": "dayRange", "first": first, "count": count}}},
                {"group": {"group": ["visitorId"], "fields": [{"numEvents": {"sum": "numEvents"}}]}},
                {"select": select}
            ]}})
    }

    fn cols(f: &str) -> Vec<FieldMetric> {
        vec![FieldMetric {
            field: f.into(),
            metric: "M".into(),
        }]
    }

    #[test]
    fn visitor_report_gains_the_account_of_its_visitors() {
        let r = report(&["visitorId", "numEvents"], -7, json!("now()"));
        let fm = FieldMappings::default();
        let s = prepare(&r, &cols("numEvents"), Target::Company, &fm).unwrap();
        assert_eq!(s.window_days, 7);
        assert_eq!(s.ids.company, "accountId");
        assert_eq!(s.stages.len(), 5);
        assert_eq!(s.stages[4]["eval"]["accountId"], "visitor.auto.accountid");
        let s = prepare(&r, &cols("numEvents"), Target::EndUser, &fm).unwrap();
        assert_eq!(s.ids.end_user.as_deref(), Some("visitorId"));
    }

    #[test]
    fn refusals_name_the_field() {
        let fm = FieldMappings::default();
        let r = report(&["visitorId", "numEvents"], -7, json!("now()"));
        let e = prepare(&r, &cols("visitorId"), Target::Company, &fm).unwrap_err();
        assert_eq!(e.field, "source.columns[0].field");
        let e = prepare(&r, &[], Target::Company, &fm).unwrap_err();
        assert_eq!(e.field, "source.columns");
        let fixed = report(&["visitorId", "numEvents"], 7, json!(1_700_000_000_000i64));
        let e = prepare(&fixed, &cols("numEvents"), Target::Company, &fm).unwrap_err();
        assert_eq!(e.field, "source.reportId");
        assert!(e.reason.contains("fixed"), "{}", e.reason);
        let no_ids = report(&["numEvents"], -7, json!("now()"));
        let e = prepare(&no_ids, &cols("numEvents"), Target::Company, &fm).unwrap_err();
        assert_eq!(e.field, "source.reportId");
        assert!(find(&[r], "zz").is_err());
    }
}
