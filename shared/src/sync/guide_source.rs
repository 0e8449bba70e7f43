//! The source of a Guide mapping (pure, apart from the row sink): the guide as Pendo lists it
//! (its steps), the metrics its day writes, and the reader that turns a guide pipeline's rows
//! (counts per visitor, account, app, event type and step; `pipelines::guide_stages`) into
//! those metrics' columns.

use super::custom_rows::{number, parse_columns, DayAccumulator, ParsedRow};
use crate::domain::mapping::FieldMetric;
use crate::domain::{GuidePart, Mapping, MappingKind};
use crate::pendo::pipelines::guide_col;
use crate::pendo::{RowError, RowSink};
use serde_json::Value;

/// The columns the reader gives each metric of a Guide mapping.
pub mod column {
    /// Times the guide (any step) was seen.
    pub const SEEN: &str = "seen";
    pub const ADVANCED: &str = "advanced";
    pub const DISMISSED: &str = "dismissed";
    pub const COMPLETED: &str = "completed";
}

fn part_column(p: GuidePart) -> &'static str {
    match p {
        GuidePart::Advanced => column::ADVANCED,
        GuidePart::Dismissed => column::DISMISSED,
        GuidePart::Completed => column::COMPLETED,
    }
}

/// The guide `id` in a list of guides as `GET /api/v1/guide` returns them.
///
/// # Errors
/// A message naming the guide when the list does not have it.
pub fn find<'a>(guides: &'a [Value], id: &str) -> Result<&'a Value, String> {
    guides
        .iter()
        .find(|g| g.get("id").and_then(Value::as_str) == Some(id))
        .ok_or_else(|| format!("guide {id} is not among the subscription's guides"))
}

/// The ids of a guide's steps, in order.
pub fn steps(guide: &Value) -> Vec<&str> {
    guide
        .get("steps")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|st| st.get("id").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The step whose sight completes a guide: its last, for a guide of several steps (a guide of
/// one step is completed by being seen, which its seen metric already counts).
pub fn completing_step(guide: &Value) -> Option<String> {
    match steps(guide).as_slice() {
        [_, .., last] => Some((*last).to_string()),
        _ => None,
    }
}

/// The metrics of a Guide mapping's day, by the reader's column: seen under the mapping's
/// metric name, then each optional metric under its own name. Empty for another kind.
pub fn fields(mapping: &Mapping) -> Vec<FieldMetric> {
    let Some(parts) = mapping.source.guide_parts() else {
        return Vec::new();
    };
    let seen = FieldMetric {
        field: column::SEEN.into(),
        metric: mapping.metric_name.clone(),
    };
    std::iter::once(seen)
        .chain(parts.into_iter().map(|(p, name)| FieldMetric {
            field: part_column(p).into(),
            metric: name.to_string(),
        }))
        .collect()
}

/// The guide a Guide mapping reads.
pub fn guide_id(mapping: &Mapping) -> Option<&str> {
    match &mapping.source {
        MappingKind::Guide { guide_id, .. } => Some(guide_id),
        _ => None,
    }
}

/// Reads the rows of a guide pipeline into a [`DayAccumulator`] whose fields are the
/// [`column`]s: a row's count goes to the column of its event type (seen, advanced, dismissed),
/// and a sight of the completing step to `completed` as well.
pub struct GuideSink<'a, 'd> {
    acc: &'a mut DayAccumulator<'d>,
    completing: Option<String>,
    columns: Vec<String>,
}

impl<'a, 'd> GuideSink<'a, 'd> {
    pub fn new(acc: &'a mut DayAccumulator<'d>, completing: Option<String>) -> Self {
        let columns = acc.columns_with(&[guide_col::TYPE, guide_col::STEP, guide_col::COUNT]);
        Self {
            acc,
            completing,
            columns,
        }
    }

    /// The row's count under the column(s) of its event type; the counted columns removed.
    fn convert<'c>(&self, mut row: ParsedRow<'c>) -> ParsedRow<'c> {
        let count = number(row.take(guide_col::COUNT).as_ref()).unwrap_or(0.0);
        let kind = row.take(guide_col::TYPE);
        let step = row.take(guide_col::STEP);
        let n = Value::from(count);
        match kind.as_ref().and_then(Value::as_str) {
            Some("guideSeen") => {
                row.set(column::SEEN, n.clone());
                let completes = self
                    .completing
                    .as_deref()
                    .is_some_and(|last| step.as_ref().and_then(Value::as_str) == Some(last));
                if completes {
                    row.set(column::COMPLETED, n);
                }
            }
            Some("guideAdvanced") => {
                row.set(column::ADVANCED, n);
            }
            Some("guideDismissed") => {
                row.set(column::DISMISSED, n);
            }
            _ => {}
        }
        row
    }
}

impl RowSink for GuideSink<'_, '_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row = parse_columns(raw, &self.columns)?;
        let row = self.convert(row);
        self.acc.add_parsed(&row);
        Ok(())
    }
    fn reset(&mut self) {
        self.acc.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_guide_of_several_steps_has_a_completing_step() {
        let g = json!({"id": "g", "steps": [{"id": "s1"}, {"id": "s2"}, {"id": "s3"}]});
        assert_eq!(steps(&g), vec!["s1", "s2", "s3"]);
        assert_eq!(completing_step(&g).as_deref(), Some("s3"));
        assert_eq!(completing_step(&json!({"steps": [{"id": "s1"}]})), None);
        assert_eq!(completing_step(&json!({"id": "g"})), None);
        let list = vec![json!({"id": "a"}), g.clone()];
        assert_eq!(find(&list, "g"), Ok(&g));
        assert_eq!(
            find(&list, "x"),
            Err("guide x is not among the subscription's guides".to_string())
        );
    }

    /// Each row's count lands on its event type's column; a sight of the last step is also a
    /// completion; the metrics are seen, then the optional ones in order.
    #[test]
    fn rows_become_seen_advanced_dismissed_and_completed() {
        use crate::domain::aggregation::IdFields;
        use crate::domain::{AppsTable, DirectoryObject, Target};
        use crate::sync::custom_rows::DaySpec;
        use crate::sync::identity::Directory;
        let input: crate::domain::MappingInput = serde_json::from_value(json!({"source":
            {"kind": "guide", "guideId": "g", "completedMetric": "Tour done",
             "dismissedMetric": "Tour dismissed"}, "target": "company", "metricName": "Tour seen"}))
        .unwrap();
        let i = crate::domain::Integration::new(crate::domain::TenantId::parse("t").unwrap());
        let id = crate::domain::MappingId::parse("m").unwrap();
        let mapping = input.validate(&i, id, &[], chrono::Utc::now()).unwrap();
        let fields: Vec<(String, String)> = super::fields(&mapping)
            .into_iter()
            .map(|f| (f.field, f.metric))
            .collect();
        assert_eq!(
            fields,
            [
                ("seen", "Tour seen"),
                ("dismissed", "Tour dismissed"),
                ("completed", "Tour done")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let company = DirectoryObject {
            external_id: "a".into(),
            name: None,
            company_id: None,
        };
        let dir = Directory::new(vec![company], vec![], vec![], vec![]);
        let spec = DaySpec {
            target: Target::Company,
            ids: IdFields {
                company: "company".into(),
                end_user: None,
                email: None,
                object: None,
                name: None,
                surname: None,
            },
            fields,
            multi_app: false,
            email_mapped: false,
            may_create: false,
            auto_create: false,
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            apps: AppsTable::default(),
            activity: None,
            derived: Vec::new(),
        };
        let mut acc = DayAccumulator::new(spec, &dir);
        let mut sink = GuideSink::new(&mut acc, Some("s3".into()));
        for (t, step, n) in [
            ("guideSeen", "s1", 4),
            ("guideAdvanced", "s1", 3),
            ("guideSeen", "s3", 2),
            ("guideDismissed", "s2", 1),
            ("guideTimeout", "s2", 9),
        ] {
            let row = json!({"company": "a", "appId": 1, "type": t, "guideStepId": step,
                "count": n, "other": [1]});
            sink.row(row.to_string().as_bytes()).unwrap();
        }
        let got: Vec<(String, f64)> = acc
            .finish(&[])
            .into_iter()
            .map(|v| (v.metric, v.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Tour seen".to_string(), 6.0),
                ("Tour dismissed".to_string(), 1.0),
                ("Tour done".to_string(), 2.0)
            ]
        );
    }
}
