//! Custom aggregation pipelines (pure): unwrapping what a user pastes, finding the source
//! stage's `timeSeries`, inferring the output fields (and which look numeric), and the
//! validation of an Aggregation mapping against its target's id fields.

use crate::domain::mapping::FieldMetric;
use crate::domain::{FieldMappings, FieldRecord, Target};
use crate::error::ValidationError;
use serde_json::Value;

/// Raw event fields that are numeric when a pipeline's output is the source's rows.
const NUMERIC_SOURCE_FIELDS: &[&str] = &["numEvents", "numMinutes"];

/// One output field of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputField {
    pub name: String,
    pub numeric: bool,
}

/// The output of a pipeline: its fields and the stage that last defined them (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub fields: Vec<OutputField>,
    /// e.g. `source.pipeline[3].select`.
    pub defined_at: String,
}

impl Output {
    fn get(&self, name: &str) -> Option<&OutputField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Accepts a bare array of stages or the request envelope `{"request":{"pipeline":[…]}}`
/// (also `{"pipeline":[…]}`), and checks there is a source stage with a `timeSeries`.
pub fn unwrap_pipeline(raw: &Value) -> Result<Vec<Value>, ValidationError> {
    let stages = match raw {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("request")
            .and_then(|r| r.get("pipeline"))
            .or_else(|| o.get("pipeline"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ValidationError::new(
                    "source.pipeline",
                    "must be an array of stages or {\"request\":{\"pipeline\":[…]}}",
                )
            })?,
        _ => {
            return Err(ValidationError::new(
                "source.pipeline",
                "must be an array of stages or {\"request\":{\"pipeline\":[…]}}",
            ))
        }
    };
    if stages.is_empty() {
        return Err(ValidationError::new("source.pipeline", "has no stages"));
    }
    check_stages(stages, "source.pipeline")?;
    let Some(si) = stages.iter().position(|st| st.get("source").is_some()) else {
        return Err(ValidationError::new(
            "source.pipeline[0].source",
            "the pipeline must start from a source stage",
        ));
    };
    if stages[si]
        .get("source")
        .and_then(|s| s.get("timeSeries"))
        .is_none_or(|t| !t.is_object())
    {
        return Err(ValidationError::new(
            format!("source.pipeline[{si}].source.timeSeries"),
            "the source stage needs a timeSeries (it is re-anchored on each synced day)",
        ));
    }
    Ok(stages.clone())
}

/// The pipeline operators Pendo's aggregation API documents or is seen to run (the reference
/// `pendo-api.md` §3.3, core and specialised); a stage named otherwise is refused on save
/// instead of failing every chunk with Pendo's 400.
pub const OPERATORS: &[&str] = &[
    "source",
    "filter",
    "select",
    "eval",
    "identified",
    "sort",
    "limit",
    "skip",
    "count",
    "group",
    "reduce",
    "bulkExpand",
    "expand",
    "merge",
    "spawn",
    "fork",
    "join",
    "cat",
    "unwind",
    "segment",
    "switch",
    "unmarshal",
    "useragent",
    "set",
    "treeify",
    "path",
    "itemSeen",
    "expandList",
    "pages",
    "features",
    "matchRules",
    "retention",
    "pes",
];

/// The sources a `source` stage may read (`pendo-api.md` §3.1), besides its `timeSeries`.
pub const SOURCES: &[&str] = &[
    "events",
    "pageEvents",
    "featureEvents",
    "trackEvents",
    "guideEvents",
    "pollEvents",
    "singleEvents",
    "pollsSeen",
    "pollsSeenEver",
    "guidesSeen",
    "guidesSeenEver",
    "emailEvents",
    "recordingMetadata",
    "agenticEvents",
    "rawEvents",
    "visitors",
    "accounts",
    "pages",
    "features",
    "trackTypes",
    "guides",
    "apps",
    "groups",
    "timespan",
    "const",
];

/// Edit distance between two short names (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// "unknown …: did you mean 'x'?" when one known name is close, else the list.
fn unknown(what: &str, name: &str, known: &[&str]) -> String {
    let close = known
        .iter()
        .map(|k| (distance(&name.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    match close {
        Some((_, k)) => format!("'{name}' is not a {what} Pendo knows: did you mean '{k}'?"),
        None => format!(
            "'{name}' is not a {what} Pendo knows (they are: {})",
            known.join(", ")
        ),
    }
}

/// Each stage is an object with one key, naming an operator Pendo knows; a source stage names
/// a known source; the pipelines inside `spawn`, `fork` and `merge` follow the same rules.
fn check_stages(stages: &[Value], path: &str) -> Result<(), ValidationError> {
    for (i, st) in stages.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some((op, body)) = st
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return Err(ValidationError::new(
                at,
                "each stage must be an object with exactly one key",
            ));
        };
        if !OPERATORS.contains(&op.as_str()) {
            return Err(ValidationError::new(at, unknown("stage", op, OPERATORS)));
        }
        let at = format!("{at}.{op}");
        match (op.as_str(), body) {
            ("source", Value::Object(src)) => {
                for name in src.keys().filter(|k| *k != "timeSeries") {
                    if !SOURCES.contains(&name.as_str()) {
                        return Err(ValidationError::new(
                            format!("{at}.{name}"),
                            unknown("source", name, SOURCES),
                        ));
                    }
                }
            }
            ("spawn" | "fork", Value::Array(inner)) => {
                for (j, p) in inner.iter().enumerate() {
                    if let Value::Array(p) = p {
                        check_stages(p, &format!("{at}[{j}]"))?;
                    }
                }
            }
            ("merge", Value::Object(m)) => {
                if let Some(Value::Array(p)) = m.get("pipeline") {
                    check_stages(p, &format!("{at}.pipeline"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A Pendo object a pipeline names by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamedId {
    Feature(String),
    Page(String),
}

/// The feature and page ids a pipeline names: as a source's parameter
/// (`{"pageEvents": {"pageId": "…"}}`) or compared in an expression (`featureId == "…"`,
/// with `'` or `` ` `` quotes too), anywhere in it.
pub fn named_ids(stages: &[Value]) -> Vec<NamedId> {
    fn walk(v: &Value, out: &mut Vec<NamedId>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    match (k.as_str(), v) {
                        ("featureId", Value::String(id)) => out.push(NamedId::Feature(id.clone())),
                        ("pageId", Value::String(id)) => out.push(NamedId::Page(id.clone())),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::String(s) => compared_ids(s, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    stages.iter().for_each(|s| walk(s, &mut out));
    out.sort();
    out.dedup();
    out
}

/// `featureId == "x"` / `pageId=='x'` / ``pageId == `x` `` in an expression.
fn compared_ids(expr: &str, out: &mut Vec<NamedId>) {
    for (field, make) in [
        ("featureId", NamedId::Feature as fn(String) -> NamedId),
        ("pageId", NamedId::Page),
    ] {
        let mut rest = expr;
        while let Some(at) = rest.find(field) {
            rest = &rest[at + field.len()..];
            let Some(after) = rest.trim_start().strip_prefix("==") else {
                continue;
            };
            let after = after.trim_start();
            let Some(q) = after
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\'' | '`'))
            else {
                continue;
            };
            if let Some(end) = after[1..].find(q) {
                out.push(make(after[1..1 + end].to_string()));
            }
        }
    }
}

/// Whether a `select`/`eval` expression looks numeric given the fields before it.
fn expr_numeric(expr: &Value, before: Option<&Output>) -> bool {
    match expr {
        Value::Number(_) => true,
        Value::String(s) => {
            let s = s.trim();
            if s.parse::<f64>().is_ok() {
                return true;
            }
            let ident = s
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
            if ident {
                return match before {
                    Some(o) => o.get(s).is_some_and(|f| f.numeric),
                    None => NUMERIC_SOURCE_FIELDS.contains(&s),
                };
            }
            s.contains(['+', '-', '*', '/']) || s.starts_with("len(") || s.starts_with("count(")
        }
        _ => false,
    }
}

/// The fields a `group` stage outputs: its keys, then its aggregated fields (numeric, except
/// `first`/`last`/`list`-like aggregators, which keep the source field's kind).
fn group_fields(g: &Value, before: Option<&Output>) -> Vec<OutputField> {
    let mut out: Vec<OutputField> = Vec::new();
    let push = |out: &mut Vec<OutputField>, f: OutputField| {
        out.retain(|x| x.name != f.name);
        out.push(f);
    };
    let keys: Vec<&str> = match g.get("group") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    };
    for k in keys {
        push(
            &mut out,
            OutputField {
                name: k.to_string(),
                numeric: false,
            },
        );
    }
    let mut entries: Vec<(&String, &Value)> = Vec::new();
    match g.get("fields") {
        Some(Value::Object(o)) => entries.extend(o.iter()),
        Some(Value::Array(a)) => {
            for item in a.iter().filter_map(Value::as_object) {
                entries.extend(item.iter());
            }
        }
        _ => {}
    }
    for (name, agg) in entries {
        let numeric = match agg.as_object().and_then(|o| o.iter().next()) {
            Some((op, arg)) if matches!(op.as_str(), "first" | "last") => expr_numeric(arg, before),
            Some((op, _)) => matches!(
                op.as_str(),
                "sum" | "count" | "avg" | "max" | "min" | "distinctCount" | "median"
            ),
            None => false,
        };
        push(
            &mut out,
            OutputField {
                name: name.clone(),
                numeric,
            },
        );
    }
    out
}

/// Infers the output of a pipeline (stages already unwrapped). `None` when it cannot be known
/// (no `group` or `select` after the source).
pub fn output(stages: &[Value]) -> Option<Output> {
    let mut cur: Option<Output> = None;
    for (i, st) in stages.iter().enumerate() {
        let Some((kind, body)) = st.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "source" => cur = None,
            "group" => {
                cur = Some(Output {
                    fields: group_fields(body, cur.as_ref()),
                    defined_at: format!("source.pipeline[{i}].group"),
                })
            }
            "select" | "reduce" => {
                let Some(o) = body.as_object() else { continue };
                let fields = o
                    .iter()
                    .map(|(k, v)| OutputField {
                        name: k.clone(),
                        numeric: if kind == "reduce" {
                            true
                        } else {
                            expr_numeric(v, cur.as_ref())
                        },
                    })
                    .collect();
                cur = Some(Output {
                    fields,
                    defined_at: format!("source.pipeline[{i}].{kind}"),
                });
            }
            "eval" => {
                let (Some(c), Some(o)) = (cur.as_mut(), body.as_object()) else {
                    continue;
                };
                for (k, v) in o {
                    let numeric = expr_numeric(v, Some(c));
                    c.fields.retain(|f| &f.name != k);
                    c.fields.push(OutputField {
                        name: k.clone(),
                        numeric,
                    });
                }
            }
            _ => {}
        }
    }
    cur
}

/// The output fields of a pipeline a user may map (numeric-looking ones), for the API.
pub fn mappable_fields(pipeline: &Value) -> Result<Vec<String>, ValidationError> {
    let stages = unwrap_pipeline(pipeline)?;
    let out = output(&stages).ok_or_else(no_output)?;
    Ok(numeric_fields(&out))
}

/// The numeric-looking fields of an output, in order.
pub fn numeric_fields(out: &Output) -> Vec<String> {
    out.fields
        .iter()
        .filter(|f| f.numeric)
        .map(|f| f.name.clone())
        .collect()
}

/// The refusal of a pipeline whose output fields cannot be known.
pub fn no_output() -> ValidationError {
    ValidationError::new(
        "source.pipeline",
        "its output fields cannot be known: end it with a group or select stage",
    )
}

/// The row fields an Aggregation (or Report) mapping reads to resolve its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFields {
    pub company: String,
    /// End users: the external id column (if present in the output).
    pub end_user: Option<String>,
    /// End users: the email column (if present in the output).
    pub email: Option<String>,
    /// Assets/projects: their id column.
    pub object: Option<String>,
    /// End users: the columns holding the name and surname to fill in (if present).
    pub name: Option<String>,
    pub surname: Option<String>,
}

fn row_path(f: Option<&crate::domain::FieldRef>) -> Option<&str> {
    f.filter(|f| f.record == FieldRecord::Row)
        .map(|f| f.path.as_str())
}

/// The output column a mapped end-user field names, if the output has it: a row field by its
/// name (`visitor_agent_email`), a metadata field by the name Pendo's reports give its column
/// (`metadata.agent.email` of visitors is `visitor_agent_email`; of accounts,
/// `account_agent_…`).
pub fn column_of(f: Option<&crate::domain::FieldRef>, out: &Output) -> Option<String> {
    let f = f?;
    let name = match f.record {
        FieldRecord::Row => f.path.clone(),
        FieldRecord::Visitor => format!("visitor_{}", f.path.replace('.', "_")),
        FieldRecord::Account => format!("account_{}", f.path.replace('.', "_")),
    };
    out.get(&name).is_some().then_some(name)
}

/// Which output columns resolve `target`, checked against `out`.
pub fn id_fields(
    target: Target,
    fm: &FieldMappings,
    out: &Output,
) -> Result<IdFields, ValidationError> {
    let need = |name: &str, what: &str| -> Result<String, ValidationError> {
        if out.get(name).is_some() {
            Ok(name.to_string())
        } else {
            Err(ValidationError::new(
                out.defined_at.clone(),
                format!("the output must include '{name}' ({what})"),
            ))
        }
    };
    let company_col = row_path(Some(&fm.company_id)).unwrap_or("accountId");
    let company = need(company_col, "the company id")?;
    let mut ids = IdFields {
        company,
        end_user: None,
        email: None,
        object: None,
        name: None,
        surname: None,
    };
    match target {
        Target::Company => {}
        Target::EndUser => {
            let present = |f: Option<&crate::domain::FieldRef>| {
                row_path(f)
                    .filter(|p| out.get(p).is_some())
                    .map(str::to_string)
            };
            ids.end_user = present(fm.end_user_id.as_ref()).or_else(|| {
                (fm.end_user_id.is_some() && out.get("visitorId").is_some())
                    .then(|| "visitorId".to_string())
            });
            ids.email = column_of(fm.email.as_ref(), out);
            ids.name = column_of(fm.name.as_ref(), out);
            ids.surname = column_of(fm.surname.as_ref(), out);
            if ids.end_user.is_none() && ids.email.is_none() {
                return Err(ValidationError::new(
                    out.defined_at.clone(),
                    "the output must include 'visitorId' (or the mapped end-user id or email row field) to target end users",
                ));
            }
        }
        Target::Asset | Target::Project => {
            let f = if target == Target::Asset {
                fm.asset_id.as_ref()
            } else {
                fm.project_id.as_ref()
            };
            let Some(path) = row_path(f) else {
                return Err(ValidationError::new(
                    "target",
                    "pipelines can target assets/projects only when their id field is a row field",
                ));
            };
            ids.object = Some(need(path, "the target's id")?);
        }
    }
    Ok(ids)
}

/// Checks the mapped fields: at least one, each an output field that looks numeric.
pub fn check_fields(
    fields: &[FieldMetric],
    out: &Output,
    list: &str,
) -> Result<(), ValidationError> {
    if fields.is_empty() {
        return Err(ValidationError::new(
            format!("source.{list}"),
            "map at least one numeric output field to a metric",
        ));
    }
    for (i, f) in fields.iter().enumerate() {
        match out.get(f.field.trim()) {
            None => {
                return Err(ValidationError::new(
                    format!("source.{list}[{i}].field"),
                    format!("'{}' is not an output field of {}", f.field, out.defined_at),
                ))
            }
            Some(o) if !o.numeric => {
                return Err(ValidationError::new(
                    format!("source.{list}[{i}].field"),
                    format!("'{}' does not look numeric", f.field),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Validates an Aggregation mapping's pipeline and fields; returns the unwrapped stages.
pub fn validate_aggregation(
    pipeline: &Value,
    fields: &[FieldMetric],
    target: Target,
    fm: &FieldMappings,
) -> Result<Vec<Value>, ValidationError> {
    let stages = unwrap_pipeline(pipeline)?;
    let out = output(&stages).ok_or_else(no_output)?;
    id_fields(target, fm, &out)?;
    check_fields(fields, &out, "fields")?;
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The setup guide's example (pageEvents grouped per visitor, metric1/metric2).
    pub fn guide() -> Value {
        json!([
            {"source": {"timeSeries": {"first": "now()", "count": 1, "period": "dayRange"},
                "pageEvents": {"pageId": "p"}}},
            {"bulkExpand": {"account": {"account": "accountId"}}},
            {"group": {"group": ["visitorId"], "fields": {"numEvents": {"sum": "numEvents"},
                "accountId": {"first": "accountId"}, "visitorId": {"first": "visitorId"},
                "appId": {"first": "appId"}}}},
            {"select": {"accountId": "accountId", "metric1": "numEvents", "metric2": "numEvents",
                "appId": "appId", "visitorId": "visitorId"}}
        ])
    }

    fn fm(field: &str, metric: &str) -> FieldMetric {
        FieldMetric {
            field: field.into(),
            metric: metric.into(),
        }
    }

    #[test]
    fn guide_pipeline_is_accepted_bare_or_wrapped() {
        let f = FieldMappings::default();
        let fields = [fm("metric1", "M1"), fm("metric2", "M2")];
        for p in [guide(), json!({"request": {"pipeline": guide()}})] {
            for t in [Target::Company, Target::EndUser] {
                validate_aggregation(&p, &fields, t, &f).unwrap();
            }
        }
        assert_eq!(
            mappable_fields(&guide()).unwrap(),
            vec!["metric1", "metric2"]
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let f = FieldMappings::default();
        let fields = [fm("metric1", "M1")];
        let err = |p: Value, fields: &[FieldMetric]| {
            validate_aggregation(&p, fields, Target::EndUser, &f)
                .unwrap_err()
                .field
        };
        assert_eq!(err(json!("x"), &fields), "source.pipeline");
        assert_eq!(err(json!([]), &fields), "source.pipeline");
        assert_eq!(
            err(json!([{"a": 1, "b": 2}]), &fields),
            "source.pipeline[0]"
        );
        let mut p = guide();
        p[0]["source"].as_object_mut().unwrap().remove("timeSeries");
        assert_eq!(err(p, &fields), "source.pipeline[0].source.timeSeries");
        let mut p = guide();
        p[3]["select"].as_object_mut().unwrap().remove("accountId");
        assert_eq!(err(p, &fields), "source.pipeline[3].select");
        let mut p = guide();
        p[3]["select"].as_object_mut().unwrap().remove("visitorId");
        assert_eq!(err(p, &fields), "source.pipeline[3].select");
        assert_eq!(err(guide(), &[fm("nope", "x")]), "source.fields[0].field");
        assert_eq!(err(guide(), &[fm("appId", "x")]), "source.fields[0].field");
        assert_eq!(err(guide(), &[]), "source.fields");
        let no_output = json!([{"source": {"events": null, "timeSeries": {}}}]);
        assert_eq!(err(no_output, &fields), "source.pipeline");
    }

    #[test]
    fn group_without_select_and_eval() {
        let p = json!([
            {"source": {"events": null, "timeSeries": {"period": "dayRange", "first": 0, "count": 1}}},
            {"group": {"group": ["accountId", "appId"], "fields": [{"n": {"sum": "numEvents"}},
                {"v": {"count": "visitorId"}}]}},
            {"eval": {"perVisitor": "n / v", "label": "accountId"}}
        ]);
        assert_eq!(mappable_fields(&p).unwrap(), vec!["n", "v", "perVisitor"]);
        let out = output(&unwrap_pipeline(&p).unwrap()).unwrap();
        assert_eq!(out.defined_at, "source.pipeline[1].group");
    }

    /// Issue 32, defect 2: a stage or source Pendo does not know is refused on save, naming
    /// it (with the close name), also inside spawn, fork and merge.
    #[test]
    fn unknown_stages_and_sources_are_refused_naming_them() {
        let refused = |p: Value| {
            let e = unwrap_pipeline(&p).unwrap_err();
            (e.field, e.reason)
        };
        let mut p = guide();
        p[2] = json!({"grup": {"group": ["accountId"]}});
        assert_eq!(
            refused(p),
            (
                "source.pipeline[2]".to_string(),
                "'grup' is not a stage Pendo knows: did you mean 'group'?".to_string()
            )
        );
        let mut p = guide();
        p[0]["source"] = json!({"pageEvent": {"pageId": "p"}, "timeSeries": {"first": 0, "count": 1, "period": "dayRange"}});
        assert_eq!(
            refused(p),
            (
                "source.pipeline[0].source.pageEvent".to_string(),
                "'pageEvent' is not a source Pendo knows: did you mean 'pageEvents'?".to_string()
            )
        );
        let p = json!([{"source": {"events": null, "timeSeries": {}}},
            {"merge": {"fields": ["visitorId"], "pipeline": [{"source": {"visitors": null}}, {"zzzzzz": 1}]}}]);
        assert_eq!(refused(p).0, "source.pipeline[1].merge.pipeline[1]");
        let p = json!([{"spawn": [[{"source": {"events": null, "timeSeries": {}}}], [{"filtr": "x"}]]}]);
        assert_eq!(refused(p).0, "source.pipeline[0].spawn[1][0]");
        assert!(unwrap_pipeline(&guide()).is_ok());
    }

    #[test]
    fn the_ids_a_pipeline_names_are_found_in_sources_and_expressions() {
        let p = json!([
            {"source": {"featureEvents": {"featureId": "f1"}, "timeSeries": {}}},
            {"filter": "featureId == \"f2\" || pageId=='p1' || pageId == `p2` || featureId != \"f9\""},
            {"eval": {"x": "featureId"}}
        ]);
        assert_eq!(
            named_ids(p.as_array().unwrap()),
            vec![
                NamedId::Feature("f1".into()),
                NamedId::Feature("f2".into()),
                NamedId::Page("p1".into()),
                NamedId::Page("p2".into()),
            ]
        );
        assert_eq!(
            named_ids(guide().as_array().unwrap()),
            vec![NamedId::Page("p".into())]
        );
    }
}
