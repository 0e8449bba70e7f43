//! Property tests on hostile input: the pipeline validator and output inference, expression
//! and field-path handling, the Pendo response stream scanner, the report classifier, PES row
//! parsing and the id/setting parsers never panic, whatever JSON, text or bytes they are given,
//! and what they accept keeps its invariants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::domain::aggregation;
use crate::domain::mapping::FieldMetric;
use crate::domain::{FieldMappings, FieldMappingsInput, FieldRef, FieldRole, Target};
use crate::pendo::rows::RowScanner;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Text that looks like what a user or Pendo would send, plus the awkward characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_.]{0,12}",
        "[ -~]{0,16}",
        any::<String>(),
        Just("numEvents".to_string()),
        Just("visitorId".to_string()),
        Just("accountId".to_string()),
        Just("metadata.agent.email".to_string()),
        Just("numEvents + numMinutes".to_string()),
        Just("len(".to_string()),
        Just("-".to_string()),
        Just("#/\n\u{0}%".to_string()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
    ]
}

/// Any JSON value, biased towards the keys pipelines and reports use.
fn value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("source".to_string()),
        Just("timeSeries".to_string()),
        Just("period".to_string()),
        Just("first".to_string()),
        Just("count".to_string()),
        Just("group".to_string()),
        Just("fields".to_string()),
        Just("select".to_string()),
        Just("eval".to_string()),
        Just("reduce".to_string()),
        Just("filter".to_string()),
        Just("pipeline".to_string()),
        Just("request".to_string()),
        Just("aggregation".to_string()),
        Just("level".to_string()),
        Just("definition".to_string()),
        Just("featureEvents".to_string()),
        text(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A pipeline-shaped value: a source stage with a time series, then random stages.
fn pipeline() -> impl Strategy<Value = Value> {
    let stage_kind = prop_oneof![
        Just("group"),
        Just("select"),
        Just("eval"),
        Just("reduce"),
        Just("filter"),
        Just("identified"),
        Just("sort"),
        Just("limit"),
    ];
    let stage = (stage_kind, value()).prop_map(|(k, v)| json!({ k: v }));
    (value(), prop::collection::vec(stage, 0..6), any::<u8>()).prop_map(|(ts, rest, wrap)| {
        let mut stages =
            vec![json!({"source": {"featureEvents": {"featureId": "f"}, "timeSeries": ts}})];
        stages.extend(rest);
        match wrap % 3 {
            0 => Value::Array(stages),
            1 => json!({"request": {"pipeline": stages}}),
            _ => json!({"pipeline": stages}),
        }
    })
}

fn targets() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::Company),
        Just(Target::EndUser),
        Just(Target::Asset),
        Just(Target::Project),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_pipeline_validator_never_panics(
        raw in prop_oneof![value(), pipeline()],
        fields in prop::collection::vec((text(), text()), 0..3),
        target in targets(),
    ) {
        let fields: Vec<FieldMetric> = fields
            .into_iter()
            .map(|(field, metric)| FieldMetric { field, metric })
            .collect();
        let fm = FieldMappings::default();
        if let Ok(stages) = aggregation::unwrap_pipeline(&raw) {
            prop_assert!(!stages.is_empty());
            if let Some(out) = aggregation::output(&stages) {
                let _ = aggregation::id_fields(target, &fm, &out);
                let _ = aggregation::check_fields(&fields, &out, "fields");
            }
        }
        let _ = aggregation::mappable_fields(&raw);
        if let Ok(stages) = aggregation::validate_aggregation(&raw, &fields, target, &fm) {
            // Accepted: every mapped field is among the pipeline's numeric outputs.
            let out = aggregation::output(&stages).unwrap();
            for f in &fields {
                prop_assert!(out.fields.iter().any(|o| o.name == f.field.trim() || o.name == f.field), "{:?}", f);
            }
        }
    }

    #[test]
    fn re_anchoring_never_panics(raw in prop_oneof![value(), pipeline()], day in 0i64..40_000) {
        if let Ok(stages) = aggregation::unwrap_pipeline(&raw) {
            let day = chrono::NaiveDate::from_num_days_from_ce_opt(700_000 + (day as i32)).unwrap();
            let ts = crate::pendo::pipelines::day_time_series(day, Some(chrono_tz::America::New_York));
            if let Some(p) = crate::pendo::pipelines::reanchor(&stages, ts) {
                let _ = crate::pendo::pipelines::custom_request(p, "r");
            }
        }
    }

    #[test]
    fn the_report_classifier_never_panics(report in value(), pipeline in pipeline(), name in text()) {
        let info = crate::pendo::reports::classify(&report);
        prop_assert!(info.compatible || info.reason.is_some());
        let shaped = json!({"id": "r1", "name": name, "level": "visitor",
            "definition": {"kind": "aggregation"}, "aggregation": pipeline});
        let info = crate::pendo::reports::classify(&shaped);
        prop_assert!(info.compatible || info.reason.is_some());
    }

    #[test]
    fn the_stream_scanner_never_panics_on_json_like_bytes(
        body in prop_oneof![
            value().prop_map(|v| v.to_string().into_bytes()),
            value().prop_map(|v| json!({"results": [v]}).to_string().into_bytes()),
            prop::collection::vec(prop_oneof![Just(b'{'), Just(b'}'), Just(b'['), Just(b']'),
                Just(b'"'), Just(b'\\'), Just(b':'), Just(b','), any::<u8>()], 0..200),
        ],
        piece in 1usize..16,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut rows = 0u64;
        let mut scanner = RowScanner::new();
        let cut_at = cut.index(body.len() + 1);
        let mut ok = true;
        for chunk in body[..cut_at].chunks(piece) {
            if scanner.feed(chunk, |_row| { rows += 1; Ok(()) }).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            if let Ok(n) = scanner.finish() {
                // A body accepted as complete is a whole JSON document.
                prop_assert!(serde_json::from_slice::<Value>(&body[..cut_at]).is_ok(),
                    "accepted {:?}", String::from_utf8_lossy(&body[..cut_at]));
                prop_assert_eq!(n, rows);
            }
        }
    }

    #[test]
    fn pes_rows_never_panic(raw in prop_oneof![
        value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]) {
        let _ = crate::sync::pes::parse_pes_row(&raw);
    }

    #[test]
    fn field_paths_and_settings_never_panic(raw in text(), role in any::<bool>()) {
        let role = if role { FieldRole::EndUser } else { FieldRole::Object };
        if let Ok(f) = FieldRef::parse("email", &raw, role) {
            // Accepted paths are stored trimmed, without control characters.
            let s: String = f.into();
            prop_assert!(!s.chars().any(char::is_control), "{:?}", s);
        }
        let input = FieldMappingsInput { email: Some(raw.clone()), name: Some(raw.clone()), ..Default::default() };
        let _ = input.apply(&FieldMappings::default());
        let _ = crate::domain::TenantId::parse(&raw);
        let _ = crate::domain::MappingId::parse(&raw);
        let _ = crate::domain::Timezone::parse(&raw);
        let _ = crate::domain::PendoDomain::parse(&raw);
        let _ = crate::domain::IntegrationKey::parse(&raw);
    }

    /// A request body is exactly one JSON value: whatever follows it but whitespace makes it a
    /// 400 `bad_json` naming where the extra bytes start, and whitespace alone changes nothing.
    #[cfg(feature = "api")]
    #[test]
    fn a_body_with_anything_after_its_value_is_refused(
        body in value(),
        gap in "[ \t\r]{1,3}",
        extra in prop_oneof![value().prop_map(|v| v.to_string()), "[^ \t\r\n]{1,4}".prop_map(String::from), Just("\0".to_string())],
    ) {
        let one = body.to_string();
        let whole: Value = crate::api::error::parse_json(format!("{one}{gap}").as_bytes()).unwrap();
        let alone: Value = serde_json::from_str(&one).unwrap();
        prop_assert_eq!(whole, alone);
        let sent = format!("{one}{gap}{extra}");
        let e = crate::api::error::parse_json::<Value>(sent.as_bytes()).unwrap_err();
        prop_assert_eq!((e.status.as_u16(), e.code), (400, "bad_json"));
        let col = one.len() + gap.len() + 1;
        prop_assert!(e.message.ends_with(&format!("trailing characters at line 1 column {col}")), "{}: {}", sent, e.message);
    }
}
