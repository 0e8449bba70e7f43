//! The source of a Poll mapping (pure, apart from the row sink): the poll as its guide lists
//! it, what the mapping computes from its type and target ([`PollPlan`]), and the reader that
//! turns raw poll responses (`pipelines::poll_stages`) into the day's rows: each visitor's
//! latest response of the window for an NPS poll, every response for another poll.

use super::custom_rows::{number, parse_columns, DayAccumulator, Derived, ParsedRow, Row};
use crate::domain::mapping::DEFAULT_POLL_WINDOW_DAYS;
use crate::domain::{Mapping, MappingKind, Target};
use crate::pendo::pipelines::poll_col;
use crate::pendo::{RowError, RowSink};
use chrono::NaiveDate;
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value;

/// The `attributes.type` of an NPS rating poll (0–10).
pub const NPS_RATING: &str = "NPSRating";

/// The poll `id` of a guide, as `GET /api/v1/guide` lists it.
pub fn poll<'a>(guide: &'a Value, id: &str) -> Option<&'a Value> {
    guide
        .get("polls")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str) == Some(id))
}

/// A poll's type (`NPSRating`, `PositiveNegative`, `NumberScale`, …), from its attributes.
pub fn poll_type(poll: &Value) -> Option<&str> {
    poll.get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
}

/// What a Poll mapping computes of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollPlan {
    /// An NPS poll on end users: each one's latest rating of the day.
    Ratings,
    /// An NPS poll on companies, assets or projects: the NPS over each visitor's latest
    /// response in the `window` days ending on the day.
    Nps { window: u32 },
    /// Another poll: the day's responses, and the mean of its numeric answers.
    Responses,
}

impl PollPlan {
    /// The plan of a mapping whose poll has type `kind`.
    pub fn of(mapping: &Mapping, kind: Option<&str>) -> Self {
        let window = match &mapping.source {
            MappingKind::Poll { window_days, .. } => {
                window_days.unwrap_or(DEFAULT_POLL_WINDOW_DAYS)
            }
            _ => DEFAULT_POLL_WINDOW_DAYS,
        };
        match (kind, mapping.target) {
            (Some(NPS_RATING), Target::EndUser) => Self::Ratings,
            (Some(NPS_RATING), _) => Self::Nps { window },
            _ => Self::Responses,
        }
    }

    /// The local days the day's request reads, ending on the day.
    pub fn days(self) -> u32 {
        match self {
            Self::Nps { window } => window,
            Self::Ratings | Self::Responses => 1,
        }
    }
}

/// The columns the reader gives each row it hands on.
pub mod column {
    /// NPS on end users: the rating.
    pub const RATING: &str = "rating";
    /// NPS: 1 for a promoter's (9–10) or a detractor's (0–6) latest response.
    pub const PROMOTER: &str = "promoter";
    pub const DETRACTOR: &str = "detractor";
    /// 1 for each response counted (NPS: each visitor's latest in the window).
    pub const RESPONSES: &str = "responses";
    /// 1 for a response given on the day itself (its respondent's activity).
    pub const TODAY: &str = "today";
    /// Another poll: a numeric answer, and 1 when the answer is numeric.
    pub const ANSWER: &str = "answer";
    pub const NUMERIC: &str = "numeric";
    /// The response as text (the activity record's label says it).
    pub const RESPONSE: &str = "response";
}

/// The fields (column, metric name; `""`: only an input), the derived values and the index of
/// the activity field of a Poll mapping's day under `plan`.
pub fn fields(mapping: &Mapping, plan: PollPlan) -> (Vec<(String, String)>, Vec<Derived>, usize) {
    let (responses, mean) = match &mapping.source {
        MappingKind::Poll {
            responses_metric,
            mean_metric,
            ..
        } => (responses_metric.clone(), mean_metric.clone()),
        _ => (None, None),
    };
    let name = mapping.metric_name.clone();
    let f = |c: &str, m: Option<String>| (c.to_string(), m.unwrap_or_default());
    match plan {
        PollPlan::Ratings => (
            vec![
                f(column::RATING, Some(name)),
                f(column::RESPONSES, responses),
                f(column::TODAY, None),
            ],
            Vec::new(),
            2,
        ),
        PollPlan::Nps { .. } => (
            vec![
                f(column::RESPONSES, responses),
                f(column::PROMOTER, None),
                f(column::DETRACTOR, None),
                f(column::TODAY, None),
            ],
            vec![Derived::Nps {
                metric: name,
                promoters: 1,
                detractors: 2,
                respondents: 0,
            }],
            3,
        ),
        PollPlan::Responses => (
            vec![
                f(column::RESPONSES, Some(name)),
                f(column::ANSWER, None),
                f(column::NUMERIC, None),
                f(column::TODAY, None),
            ],
            mean.map(|metric| Derived::Mean {
                metric,
                sum: 1,
                count: 2,
            })
            .into_iter()
            .collect(),
            3,
        ),
    }
}

/// Reads raw poll responses into a [`DayAccumulator`] whose fields are [`fields`]': under an
/// NPS plan each visitor's latest response (per app) is kept and handed on by
/// [`PollSink::finish`]; under [`PollPlan::Responses`] every response at once.
pub struct PollSink<'a, 'd> {
    acc: &'a mut DayAccumulator<'d>,
    how: HandOn,
    columns: Vec<String>,
    /// (visitor, app) → (time, row values) of its latest response.
    latest: HashMap<(String, i64), Latest>,
}

/// A response's time and row values ([`ParsedRow::into_values`]).
type Latest = (i64, Vec<Option<Value>>);

/// What a response becomes: the plan, and the day (in `tz`) its activity is of.
struct HandOn {
    plan: PollPlan,
    day: NaiveDate,
    tz: Option<Tz>,
}

impl<'a, 'd> PollSink<'a, 'd> {
    pub fn new(
        acc: &'a mut DayAccumulator<'d>,
        plan: PollPlan,
        day: NaiveDate,
        tz: Option<Tz>,
    ) -> Self {
        let columns = acc.columns_with(&[poll_col::VISITOR, poll_col::TIME, poll_col::RESPONSE]);
        Self {
            acc,
            how: HandOn { plan, day, tz },
            columns,
            latest: HashMap::default(),
        }
    }

    /// Hands the kept latest responses on (in a fixed order); call once the rows are in.
    pub fn finish(&mut self) {
        let mut kept: Vec<_> = self.latest.drain().collect();
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, (time, values)) in kept {
            let row = ParsedRow::with(&self.columns, values);
            self.how.hand_on(self.acc, row, time);
        }
    }
}

impl HandOn {
    /// The row with the reader's columns, to the accumulator; a response with no usable
    /// answer for its plan counts as unusable.
    fn hand_on(&self, acc: &mut DayAccumulator<'_>, mut row: ParsedRow<'_>, time: i64) {
        let response = row.take(poll_col::RESPONSE);
        row.take(poll_col::TIME);
        let answer = number(response.as_ref());
        let today = crate::time::local_date_of_time(time, self.tz) == Some(self.day);
        let one = |b: bool| Value::from(u8::from(b));
        match self.plan {
            PollPlan::Ratings | PollPlan::Nps { .. } => {
                let Some(r) = answer.filter(|r| (0.0..=10.0).contains(r)) else {
                    acc.skipped.unusable += 1;
                    return;
                };
                if self.plan == PollPlan::Ratings {
                    row.set(column::RATING, Value::from(r));
                }
                row.set(column::PROMOTER, one(r >= 9.0));
                row.set(column::DETRACTOR, one(r <= 6.0));
            }
            PollPlan::Responses => {
                if let Some(a) = answer {
                    row.set(column::ANSWER, Value::from(a));
                    row.set(column::NUMERIC, one(true));
                }
            }
        }
        row.set(column::RESPONSES, one(true));
        row.set(column::TODAY, one(today));
        if let Some(text) = response.as_ref().and_then(response_text) {
            row.set(column::RESPONSE, Value::String(text));
        }
        acc.add_parsed(&row);
    }
}

/// A response as the activity record says it (a number or a short text).
fn response_text(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => Some(format!("{}…", &text[..cut])),
        None => (!text.is_empty()).then_some(text),
    }
}

impl RowSink for PollSink<'_, '_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row = parse_columns(raw, &self.columns)?;
        let time = row.get(poll_col::TIME).and_then(Value::as_i64).unwrap_or(0);
        if self.how.plan == PollPlan::Responses {
            self.how.hand_on(self.acc, row, time);
            return Ok(());
        }
        let visitor = row
            .get(poll_col::VISITOR)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let app = row.get("appId").and_then(Value::as_i64).unwrap_or(0);
        match self.latest.entry((visitor, app)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                // The later response wins; of two at one time, the one Pendo gave last.
                if time >= e.get().0 {
                    e.insert((time, row.into_values()));
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((time, row.into_values()));
            }
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.latest.clear();
        self.acc.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aggregation::IdFields;
    use crate::domain::{AppsTable, DirectoryObject, EndUser, MappingInput};
    use crate::sync::custom_rows::{DayActivity, DaySpec};
    use crate::sync::identity::Directory;
    use serde_json::json;

    fn mapping(target: Target, source: Value) -> Mapping {
        let input: MappingInput = serde_json::from_value(json!({"source": source,
            "target": target, "metricName": "NPS"}))
        .unwrap();
        let i = crate::domain::Integration::new(crate::domain::TenantId::parse("t").unwrap());
        let id = crate::domain::MappingId::parse("m").unwrap();
        input.validate(&i, id, &[], chrono::Utc::now()).unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 10).unwrap()
    }

    /// Noon UTC of `days` before the day.
    fn at(days: i64) -> i64 {
        crate::time::anchor_ms(day() - chrono::Duration::days(days), None)
    }

    fn directory() -> Directory {
        let company = |id: &str| DirectoryObject {
            external_id: id.into(),
            name: None,
            company_id: None,
        };
        let user = |id: &str, v: &str, c: &str| EndUser {
            id: id.into(),
            company_id: c.into(),
            external_id: Some(v.into()),
            email: None,
            name: None,
            surname: None,
        };
        Directory::new(
            vec![company("a"), company("b")],
            vec![],
            vec![],
            vec![
                user("u1", "v1", "a"),
                user("u2", "v2", "a"),
                user("u3", "v3", "b"),
            ],
        )
    }

    /// (metric or end user, object or label, value or events).
    type Triples = Vec<(String, String, f64)>;

    /// (metric, object, value) of the day, and the activity labels and events.
    fn run(m: &Mapping, kind: &str, rows: &[Value]) -> (Triples, Triples) {
        let plan = PollPlan::of(m, Some(kind));
        let (fields, derived, today) = fields(m, plan);
        let spec = DaySpec {
            target: m.target,
            ids: IdFields {
                company: "company".into(),
                end_user: Some("endUser".into()),
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
            day: day(),
            apps: AppsTable::default(),
            activity: Some(DayActivity {
                mapping_id: m.id.clone(),
                label: m.metric_name.clone(),
                field: today,
                passive: false,
                detail: Some(column::RESPONSE.into()),
            }),
            derived,
        };
        let dir = directory();
        let mut acc = DayAccumulator::new(spec, &dir);
        let mut sink = PollSink::new(&mut acc, plan, day(), None);
        for r in rows {
            sink.row(r.to_string().as_bytes()).unwrap();
        }
        sink.finish();
        let activity = acc
            .activities(&[])
            .into_iter()
            .map(|a| (a.end_user_id, a.label, a.events))
            .collect();
        let values = acc
            .finish(&[])
            .into_iter()
            .map(|v| (v.metric, v.object.id, v.value))
            .collect();
        (values, activity)
    }

    fn response(v: &str, c: &str, days_ago: i64, answer: Value) -> Value {
        json!({"company": c, "endUser": v, "visitorId": v, "appId": 1,
            "browserTime": at(days_ago), "pollResponse": answer})
    }

    /// Each visitor's latest response in the window counts once: v1 answered 3 then 10
    /// (a promoter), v2 answered 8 (passive), v3 answered 2 (a detractor) today; the NPS of
    /// company a is (1 − 0) / 2, of b (0 − 1) / 1; only today's respondent has an activity.
    #[test]
    fn an_nps_counts_each_visitors_latest_response_in_the_window() {
        let m = mapping(
            Target::Company,
            json!({"kind": "poll", "guideId": "g", "pollId": "p", "responsesMetric": "Answers"}),
        );
        let rows = [
            response("v1", "a", 40, json!(3)),
            response("v1", "a", 5, json!(10)),
            response("v2", "a", 80, json!("8")),
            response("v3", "b", 0, json!(2)),
            response("v4", "b", 1, json!("n/a")),
        ];
        let (values, activity) = run(&m, NPS_RATING, &rows);
        assert_eq!(
            values,
            vec![
                ("Answers".into(), "a".into(), 2.0),
                ("NPS".into(), "a".into(), 50.0),
                ("Answers".into(), "b".into(), 1.0),
                ("NPS".into(), "b".into(), -100.0),
            ]
        );
        assert_eq!(activity, vec![("u3".into(), "NPS: 2".into(), 1.0)]);
        assert_eq!(PollPlan::of(&m, Some(NPS_RATING)).days(), 90);
    }

    /// On end users: each one's latest rating of the day, and the response as activity.
    #[test]
    fn on_end_users_an_nps_poll_is_each_ones_latest_rating_of_the_day() {
        let m = mapping(
            Target::EndUser,
            json!({"kind": "poll", "guideId": "g", "pollId": "p"}),
        );
        let mut late = response("v1", "a", 0, json!(9));
        late["browserTime"] = json!(at(0) + 60_000);
        let rows = [
            response("v1", "a", 0, json!(4)),
            late,
            response("v2", "a", 0, json!(0)),
        ];
        let (values, activity) = run(&m, NPS_RATING, &rows);
        assert_eq!(
            values,
            vec![
                ("NPS".into(), "u1".into(), 9.0),
                ("NPS".into(), "u2".into(), 0.0)
            ]
        );
        assert_eq!(
            activity,
            vec![
                ("u1".into(), "NPS: 9".into(), 1.0),
                ("u2".into(), "NPS: 0".into(), 1.0)
            ]
        );
        assert_eq!(PollPlan::of(&m, Some(NPS_RATING)), PollPlan::Ratings);
    }

    /// Another poll: every response of the day counts, the mean of the numeric ones.
    #[test]
    fn another_poll_counts_responses_and_averages_numeric_answers() {
        let m = mapping(
            Target::Company,
            json!({"kind": "poll", "guideId": "g", "pollId": "p", "meanMetric": "Mean"}),
        );
        let rows = [
            response("v1", "a", 0, json!(4)),
            response("v1", "a", 0, json!("5")),
            response("v2", "a", 0, json!("yes")),
            response("v3", "b", 0, json!("no")),
        ];
        let (values, activity) = run(&m, "NumberScale", &rows);
        assert_eq!(
            values,
            vec![
                ("NPS".into(), "a".into(), 3.0),
                ("Mean".into(), "a".into(), 4.5),
                ("NPS".into(), "b".into(), 1.0),
            ]
        );
        let labels: Vec<&str> = activity.iter().map(|a| a.1.as_str()).collect();
        assert_eq!(labels, vec!["NPS: 5", "NPS: yes", "NPS: no"]);
        assert_eq!(activity[0].2, 2.0);
        assert_eq!(PollPlan::of(&m, Some("NumberScale")).days(), 1);
    }
}
