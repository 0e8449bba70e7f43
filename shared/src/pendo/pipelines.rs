//! Aggregation requests per mapping kind (pure). Every request asks only for the columns the
//! transform reads, under fixed names, so the row shape is the same whatever the field mappings.

use crate::domain::aggregation::IdFields;
use crate::domain::Window;
use crate::domain::{FieldMappings, FieldRecord, FieldRef};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

/// Output column names of an event pipeline.
pub mod col {
    pub const DAY: &str = "day";
    pub const APP: &str = "appId";
    pub const EVENTS: &str = "numEvents";
    pub const MINUTES: &str = "numMinutes";
    pub const COMPANY: &str = "company";
    pub const END_USER: &str = "endUser";
    pub const ASSET: &str = "asset";
    pub const PROJECT: &str = "project";
    pub const EMAIL: &str = "email";
    pub const NAME: &str = "name";
    pub const SURNAME: &str = "surname";
    /// The page or feature id of a row of a shared call (see `event_request`).
    pub const ITEM: &str = "item";
}

/// A string literal of Pendo's expression language (`"` and `\` escaped).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub use crate::domain::EventSource;

fn expr(f: &FieldRef) -> String {
    match f.record {
        FieldRecord::Row => f.path.clone(),
        FieldRecord::Visitor => format!("visitor.{}", f.path),
        FieldRecord::Account => format!("account.{}", f.path),
    }
}

/// `featureEvents`/`pageEvents`/`trackEvents` for the ids of one or several mappings, all apps, the
/// window's local days (optionally one segment), grouped by visitor, account, app and day;
/// visitor/account metadata attached only when a mapped field needs it. One id is the source's
/// own parameter (the request of one mapping); several are a shared call: the source without an
/// id, a filter keeping those ids (`featureId == "a" || featureId == "b"`), and the id as one
/// more group key, in column [`col::ITEM`], so that each row can be routed to its mapping.
pub fn event_request(
    source: EventSource,
    ids: &[&str],
    window: Window,
    tz: Option<Tz>,
    segment: Option<&str>,
    fields: &FieldMappings,
    request_id: &str,
) -> Value {
    let (source_name, id_param) = match source {
        EventSource::Feature => ("featureEvents", "featureId"),
        EventSource::Page => ("pageEvents", "pageId"),
        EventSource::Track => ("trackEvents", "trackTypeId"),
    };
    let shared = ids.len() > 1;
    let mut params = Map::new();
    if let [one] = ids {
        params.insert(id_param.into(), Value::String((*one).to_string()));
    }
    params.insert("appId".into(), json!("expandAppIds(\"*\")"));
    let mut src = Map::new();
    src.insert(source_name.into(), Value::Object(params));
    src.insert(
        "timeSeries".into(),
        json!({
            "period": "dayRange",
            "first": crate::time::anchor_ms(window.from, tz),
            "count": window.days(),
        }),
    );
    let mut pipeline = vec![json!({ "source": Value::Object(src) })];
    if shared {
        let kept: Vec<String> = ids
            .iter()
            .map(|id| format!("{id_param} == {}", quoted(id)))
            .collect();
        pipeline.push(json!({ "filter": kept.join(" || ") }));
    }
    if let Some(seg) = segment {
        pipeline.push(json!({ "segment": { "id": seg } }));
    }
    let mut keys = vec!["visitorId", "accountId", "appId", "day"];
    if shared {
        keys.insert(0, id_param);
    }
    pipeline.push(json!({ "group": {
        "group": keys,
        "fields": [ { col::EVENTS: { "sum": "numEvents" } }, { col::MINUTES: { "sum": "numMinutes" } } ],
    }}));
    let item = [(col::ITEM, id_param)];
    let renamed: &[(&str, &str)] = if shared { &item } else { &[] };
    pipeline.extend(mapped_projection(
        fields,
        &[col::DAY, col::APP, col::EVENTS, col::MINUTES],
        renamed,
    ));
    json!({
        "response": { "mimeType": "application/json" },
        "request": { "name": "pendo-sync", "requestId": request_id, "pipeline": pipeline },
    })
}

/// The last stages of a generated pipeline: the visitor and account records attached when a
/// mapped field reads them, then a `select` of the columns `kept` (under their own names),
/// `renamed` (column ← row field) and every mapped field under its fixed column name
/// ([`col::COMPANY`], [`col::END_USER`], …).
fn mapped_projection(
    fields: &FieldMappings,
    kept: &[&str],
    renamed: &[(&str, &str)],
) -> Vec<Value> {
    let mapped: Vec<(&str, &FieldRef)> = [
        (col::COMPANY, Some(&fields.company_id)),
        (col::END_USER, fields.end_user_id.as_ref()),
        (col::ASSET, fields.asset_id.as_ref()),
        (col::PROJECT, fields.project_id.as_ref()),
        (col::EMAIL, fields.email.as_ref()),
        (col::NAME, fields.name.as_ref()),
        (col::SURNAME, fields.surname.as_ref()),
    ]
    .into_iter()
    .filter_map(|(c, f)| f.map(|f| (c, f)))
    .collect();
    let mut out = Vec::new();
    if mapped.iter().any(|(_, f)| f.record == FieldRecord::Visitor) {
        out.push(json!({ "bulkExpand": { "visitor": { "visitor": "visitorId" } } }));
    }
    if mapped.iter().any(|(_, f)| f.record == FieldRecord::Account) {
        out.push(json!({ "bulkExpand": { "account": { "account": "accountId" } } }));
    }
    let mut select = Map::new();
    for c in kept {
        select.insert((*c).into(), Value::String((*c).into()));
    }
    for (c, f) in mapped {
        select.insert(c.into(), Value::String(expr(f)));
    }
    for (c, field) in renamed {
        select.insert((*c).into(), Value::String((*field).into()));
    }
    out.push(json!({ "select": Value::Object(select) }));
    out
}

/// The id columns of a pipeline projected by [`mapped_projection`], for a target: each mapped
/// field under its fixed column name.
pub fn projected_ids(target: crate::domain::Target, fields: &FieldMappings) -> IdFields {
    use crate::domain::Target;
    let named = |f: Option<&FieldRef>, c: &str| f.map(|_| c.to_string());
    IdFields {
        company: col::COMPANY.into(),
        end_user: named(fields.end_user_id.as_ref(), col::END_USER),
        email: named(fields.email.as_ref(), col::EMAIL),
        object: match target {
            Target::Asset => named(fields.asset_id.as_ref(), col::ASSET),
            Target::Project => named(fields.project_id.as_ref(), col::PROJECT),
            Target::Company | Target::EndUser => None,
        },
        name: named(fields.name.as_ref(), col::NAME),
        surname: named(fields.surname.as_ref(), col::SURNAME),
    }
}

/// Output columns of a guide pipeline ([`guide_stages`]), besides the mapped ones.
pub mod guide_col {
    /// The event's type (`guideSeen`, `guideAdvanced`, `guideDismissed`).
    pub const TYPE: &str = "type";
    /// The guide step the events were on.
    pub const STEP: &str = "guideStepId";
    /// How many such events.
    pub const COUNT: &str = "count";
}

/// The guide event types a Guide mapping counts.
pub const GUIDE_EVENT_TYPES: [&str; 3] = ["guideSeen", "guideAdvanced", "guideDismissed"];

/// The stages of one local day of one guide's events, all apps: `guideEvents` rows are raw
/// events, so they are counted per visitor, account, app, event type and step
/// (`filter` + `group` with `count`, operators Pendo documents), then projected like an event
/// request's rows ([`mapped_projection`]). The reader turns the types into its metrics.
pub fn guide_stages(
    guide_id: &str,
    day: chrono::NaiveDate,
    tz: Option<Tz>,
    fields: &FieldMappings,
) -> Vec<Value> {
    let types: Vec<String> = GUIDE_EVENT_TYPES
        .iter()
        .map(|t| format!("type == {}", quoted(t)))
        .collect();
    let mut out = vec![
        json!({ "source": {
            "guideEvents": { "guideId": guide_id, "appId": "expandAppIds(\"*\")" },
            "timeSeries": day_time_series(day, tz),
        }}),
        json!({ "filter": types.join(" || ") }),
        json!({ "group": {
            "group": ["visitorId", "accountId", "appId", guide_col::TYPE, guide_col::STEP],
            "fields": [ { guide_col::COUNT: { "count": null } } ],
        }}),
    ];
    out.extend(mapped_projection(
        fields,
        &[col::APP, guide_col::TYPE, guide_col::STEP, guide_col::COUNT],
        &[],
    ));
    out
}

/// Output columns of a poll pipeline ([`poll_stages`]), besides the mapped ones.
pub mod poll_col {
    /// The visitor who answered (each one's latest response counts for NPS).
    pub const VISITOR: &str = "visitorId";
    /// When (`browserTime`, ms).
    pub const TIME: &str = "browserTime";
    /// The answer (`pollResponse`).
    pub const RESPONSE: &str = "pollResponse";
}

/// The stages of one poll's responses over `time_series`, all apps: raw `pollEvents` rows
/// (one per response), projected like an event request's rows with the visitor, the time and
/// the answer kept ([`mapped_projection`]).
pub fn poll_stages(
    guide_id: &str,
    poll_id: &str,
    time_series: Value,
    fields: &FieldMappings,
) -> Vec<Value> {
    let mut out = vec![json!({ "source": {
        "pollEvents": {
            "guideId": guide_id,
            "pollId": poll_id,
            "appId": "expandAppIds(\"*\")",
        },
        "timeSeries": time_series,
    }})];
    out.extend(mapped_projection(
        fields,
        &[
            col::APP,
            poll_col::VISITOR,
            poll_col::TIME,
            poll_col::RESPONSE,
        ],
        &[],
    ));
    out
}

/// The `timeSeries` of a per-day custom aggregation: the single local day `day`.
pub fn day_time_series(day: chrono::NaiveDate, tz: Option<Tz>) -> Value {
    json!({ "period": "dayRange", "first": crate::time::anchor_ms(day, tz), "count": 1 })
}

/// The `timeSeries` of a custom aggregation for local day `day`, from the user's own: a
/// `dayRange` (or a missing period) becomes the single day `day`; any other period (`hourRange`,
/// `weekRange`, an iterative one…) is kept with its `count` (1 when it had none or used `last`),
/// and only `first` moves to `day`'s anchor (local noon). Pendo snaps `first` to the period
/// containing it, so a `weekRange` of count 1 gives every day of a week that week's value.
pub fn custom_time_series(user: Option<&Value>, day: chrono::NaiveDate, tz: Option<Tz>) -> Value {
    let period = user
        .and_then(|t| t.get("period"))
        .and_then(Value::as_str)
        .filter(|p| *p != "dayRange");
    match period {
        None => day_time_series(day, tz),
        Some(p) => {
            let count = user
                .and_then(|t| t.get("count"))
                .and_then(Value::as_i64)
                .filter(|c| *c != 0)
                .unwrap_or(1);
            json!({ "period": p, "first": crate::time::anchor_ms(day, tz), "count": count })
        }
    }
}

/// The `timeSeries` of the pipeline's source stage, if any.
pub fn source_time_series(pipeline: &[Value]) -> Option<&Value> {
    pipeline
        .iter()
        .filter_map(|st| st.get("source"))
        .find_map(|src| src.get("timeSeries"))
}

/// The `timeSeries` of a relative window of `days` local days ending on `day` (inclusive).
/// Pendo's negative count means "the |count| periods ending just before the period containing
/// `first`", so the window is anchored on the day after: `first = anchor(day + 1)`,
/// `count = -days`.
pub fn window_ending_on(day: chrono::NaiveDate, tz: Option<Tz>, days: u32) -> Value {
    let next = day.succ_opt().unwrap_or(day);
    json!({
        "period": "dayRange",
        "first": crate::time::anchor_ms(next, tz),
        "count": -i64::from(days.max(1)),
    })
}

/// Replaces the `timeSeries` of the pipeline's source stage (the first `source` stage that has
/// one). `None` when no source stage carries a `timeSeries`.
pub fn reanchor(pipeline: &[Value], time_series: Value) -> Option<Vec<Value>> {
    let mut out = pipeline.to_vec();
    let source = out
        .iter_mut()
        .filter_map(|st| st.get_mut("source").and_then(Value::as_object_mut))
        .find(|src| src.contains_key("timeSeries"))?;
    source.insert("timeSeries".into(), time_series);
    Some(out)
}

/// A complete aggregation request around `pipeline`.
pub fn custom_request(pipeline: Vec<Value>, request_id: &str) -> Value {
    json!({
        "response": { "mimeType": "application/json" },
        "request": { "name": "pendo-sync", "requestId": request_id, "pipeline": pipeline },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FieldMappings, FieldMappingsInput};
    use chrono::NaiveDate;

    #[test]
    fn feature_request_with_metadata_and_segment() {
        let fm = FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            asset_id: Some("metadata.custom.assetid".into()),
            ..Default::default()
        }
        .apply(&FieldMappings::default())
        .unwrap();
        let w = Window {
            from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 11, 7).unwrap(),
        };
        let r = event_request(
            EventSource::Feature,
            &["f1"],
            w,
            None,
            Some("seg"),
            &fm,
            "rq",
        );
        let p = &r["request"]["pipeline"];
        assert_eq!(p[0]["source"]["featureEvents"]["featureId"], "f1");
        assert_eq!(
            p[0]["source"]["featureEvents"]["appId"],
            "expandAppIds(\"*\")"
        );
        assert_eq!(p[0]["source"]["timeSeries"]["count"], 7);
        assert_eq!(p[0]["source"]["timeSeries"]["first"], 1_793_534_400_000i64);
        assert_eq!(p[1]["segment"]["id"], "seg");
        assert_eq!(p[3]["bulkExpand"]["visitor"]["visitor"], "visitorId");
        assert_eq!(p[4]["bulkExpand"]["account"]["account"], "accountId");
        assert_eq!(p[5]["select"]["email"], "visitor.agent.email");
        assert_eq!(p[5]["select"]["asset"], "account.custom.assetid");
        assert_eq!(p[5]["select"]["company"], "accountId");
        assert_eq!(p[5]["select"]["endUser"], "visitorId");
        assert!(p[5]["select"].get("name").is_none());
    }

    #[test]
    fn no_expansion_without_metadata_fields() {
        let w = Window {
            from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        };
        let r = event_request(
            EventSource::Page,
            &["p"],
            w,
            None,
            None,
            &FieldMappings::default(),
            "rq",
        );
        let p = r["request"]["pipeline"].as_array().unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0]["source"]["pageEvents"]["pageId"], "p");
    }

    #[test]
    fn a_track_request_reads_track_events_of_its_type_and_shares_by_track_type_id() {
        let w = Window {
            from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(),
        };
        let one = |ids: &[&str]| {
            event_request(
                EventSource::Track,
                ids,
                w,
                None,
                None,
                &FieldMappings::default(),
                "rq",
            )
        };
        let r = one(&["t1"]);
        assert_eq!(
            r["request"]["pipeline"][0]["source"]["trackEvents"],
            json!({"trackTypeId": "t1", "appId": "expandAppIds(\"*\")"})
        );
        let r = one(&["t1", "t2"]);
        let p = r["request"]["pipeline"].as_array().unwrap();
        assert_eq!(
            p[1]["filter"],
            r#"trackTypeId == "t1" || trackTypeId == "t2""#
        );
        assert_eq!(
            p[2]["group"]["group"],
            json!(["trackTypeId", "visitorId", "accountId", "appId", "day"])
        );
    }

    #[test]
    fn a_shared_call_filters_its_ids_and_groups_by_them() {
        let w = Window {
            from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        };
        let r = event_request(
            EventSource::Page,
            &["p1", "p\"2"],
            w,
            None,
            Some("seg"),
            &FieldMappings::default(),
            "rq",
        );
        let p = r["request"]["pipeline"].as_array().unwrap();
        assert_eq!(
            p[0]["source"]["pageEvents"],
            json!({"appId": "expandAppIds(\"*\")"})
        );
        assert_eq!(p[1]["filter"], r#"pageId == "p1" || pageId == "p\"2""#);
        assert_eq!(p[2]["segment"]["id"], "seg");
        assert_eq!(
            p[3]["group"]["group"],
            json!(["pageId", "visitorId", "accountId", "appId", "day"])
        );
        assert_eq!(p[4]["select"]["item"], "pageId");
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn a_guide_day_counts_its_event_types_per_visitor_account_app_and_step() {
        let fm = FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            ..Default::default()
        }
        .apply(&FieldMappings::default())
        .unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let p = guide_stages("g\"1", day, None, &fm);
        assert_eq!(
            p[0]["source"]["guideEvents"],
            json!({"guideId": "g\"1", "appId": "expandAppIds(\"*\")"})
        );
        assert_eq!(p[0]["source"]["timeSeries"], day_time_series(day, None));
        assert_eq!(
            p[1]["filter"],
            r#"type == "guideSeen" || type == "guideAdvanced" || type == "guideDismissed""#
        );
        assert_eq!(
            p[2]["group"],
            json!({"group": ["visitorId", "accountId", "appId", "type", "guideStepId"],
                   "fields": [{"count": {"count": null}}]})
        );
        assert_eq!(p[3]["bulkExpand"]["visitor"]["visitor"], "visitorId");
        assert_eq!(
            p[4]["select"],
            json!({"appId": "appId", "type": "type", "guideStepId": "guideStepId",
                   "count": "count", "company": "accountId", "endUser": "visitorId",
                   "email": "visitor.agent.email"})
        );
        assert_eq!(p.len(), 5);
        let ids = projected_ids(crate::domain::Target::EndUser, &fm);
        assert_eq!(
            (
                ids.company.as_str(),
                ids.end_user.as_deref(),
                ids.email.as_deref()
            ),
            ("company", Some("endUser"), Some("email"))
        );
        assert_eq!((ids.object, ids.name), (None, None));
    }

    #[test]
    fn day_and_window_anchoring() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let tz: Option<Tz> = Some(chrono_tz::America::New_York);
        let t = day_time_series(day, tz);
        assert_eq!(t["first"], crate::time::anchor_ms(day, tz));
        assert_eq!(t["count"], 1);
        assert_eq!(t["period"], "dayRange");
        let user = |p: Value| {
            let stages = vec![json!({"source": {"events": null, "timeSeries": p}})];
            custom_time_series(source_time_series(&stages), day, tz)
        };
        assert_eq!(
            user(json!({"period": "dayRange", "first": "now()", "count": -30})),
            t
        );
        assert_eq!(user(json!({"first": "now()"})), t);
        assert_eq!(
            user(json!({"period": "weekRange", "first": "now()", "count": -2})),
            json!({"period": "weekRange", "first": crate::time::anchor_ms(day, tz), "count": -2})
        );
        assert_eq!(
            user(json!({"period": "hourRange", "first": 1, "last": 2})),
            json!({"period": "hourRange", "first": crate::time::anchor_ms(day, tz), "count": 1})
        );
        let w = window_ending_on(day, tz, 7);
        let next = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(w["first"], crate::time::anchor_ms(next, tz));
        assert_eq!(w["count"], -7);
        // A zero-day window is still one day.
        assert_eq!(window_ending_on(day, None, 0)["count"], -1);
    }

    #[test]
    fn reanchor_replaces_only_the_source_time_series() {
        let p = vec![
            json!({"source": {"events": null, "timeSeries": {"period": "dayRange", "first": "now()", "count": -30}}}),
            json!({"group": {"group": ["visitorId"]}}),
        ];
        let out = reanchor(&p, json!({"x": 1})).unwrap();
        assert_eq!(out[0]["source"]["timeSeries"], json!({"x": 1}));
        assert_eq!(out[0]["source"]["events"], Value::Null);
        assert_eq!(out[1], p[1]);
        assert!(reanchor(&[json!({"source": {"events": null}})], json!({})).is_none());
        assert!(reanchor(&[], json!({})).is_none());
    }
}
