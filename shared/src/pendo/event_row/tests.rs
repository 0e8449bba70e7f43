//! The event row parser's unit tests: the fast path gives exactly the serde result (on the
//! usual shape, unusual rows, and generated and mangled rows), and its stop-byte scan.

use super::*;
use proptest::prelude::*;

fn serde(raw: &[u8]) -> Result<EventRow<'_>, serde_json::Error> {
    serde_json::from_slice(raw)
}

/// Debug text compares floats exactly (`-0.0` and `0.0` differ) and strings by content.
fn same(a: &EventRow<'_>, b: &EventRow<'_>) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn the_usual_shape_takes_the_fast_path() {
    let raw = br#"{"appId":-323,"company":"account-00012","day":1700000000000,"endUser":"visitor-000123","numEvents":12,"numMinutes":3,"email":"A@b.io","name":"Zo\u00eb","x":[1]}"#;
    // Escapes and nested values are the slow path's...
    assert!(fast(raw).is_none());
    let raw = r#"{"appId":-323,"company":"account-00012","day":1700000000000,"endUser":"visitor-000123","numEvents":12,"numMinutes":3,"email":"A@b.io","name":"Zoë","x":null,"y":true}"#.as_bytes();
    // ...the usual flat row is the fast path's, with the serde result.
    let f = fast(raw).unwrap();
    assert!(same(&f, &serde(raw).unwrap()));
    assert_eq!(f.app_id, Some(-323));
    assert_eq!(f.day, Some(1_700_000_000_000));
    assert_eq!(f.num_events, Some(12.0));
    assert_eq!(f.name, Some(Loose(Cow::Borrowed("Zoë"))));
    assert_eq!(f.project, None);
    assert!(fast(b" { } ").is_some());
}

#[test]
fn unusual_rows_fall_back_with_serde_results() {
    for raw in [
        r#"{"day":-0}"#,
        r#"{"numEvents":-0}"#,
        r#"{"company":-0}"#,
        r#"{"numEvents":1.5}"#,
        r#"{"numEvents":1e3}"#,
        r#"{"day":1.0}"#,
        r#"{"day":9223372036854775808}"#,
        r#"{"company":12345678901234567890}"#,
        r#"{"company":"a\"b"}"#,
        r#"{"day":1,"day":2}"#,
        r#"{"day":01}"#,
        r#"{"company":{"a":1}}"#,
        r#"{"day":"1"}"#,
        r#"{"day":1"#,
        r#"{"day":1}x"#,
    ] {
        assert!(fast(raw.as_bytes()).is_none(), "{raw}");
    }
    let r = EventRow::parse(br#"{"numEvents":-0,"company":1.5e1,"day":-7}"#).unwrap();
    assert_eq!(format!("{:?}", r.num_events), "Some(-0.0)");
    assert_eq!(r.company, Some(Loose(Cow::Owned("15".into()))));
    assert_eq!(r.day, Some(-7));
    assert!(EventRow::parse(br#"{"day":1,"day":2}"#)
        .unwrap_err()
        .0
        .contains("duplicate field `day`"));
}

/// The first byte that ends a plain string, as the byte loop sees it.
fn first_stop(bytes: [u8; 8]) -> Option<usize> {
    bytes
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

#[test]
fn stop_bytes_finds_the_first_stop_in_a_word() {
    for b in 0..=255u8 {
        for at in 0..8 {
            let mut w = *b"abcdefgh";
            w[at] = b;
            let stops = stop_bytes(u64::from_le_bytes(w));
            let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
            assert_eq!(found, first_stop(w), "byte {b:#04x} at {at}");
        }
    }
}

const KEYS: [&str; 15] = [
    "day",
    "appId",
    "numEvents",
    "numMinutes",
    "company",
    "endUser",
    "asset",
    "project",
    "email",
    "name",
    "surname",
    "item",
    "other",
    "d\\u0061y",
    "Day",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        (0i64..1000).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        prop::sample::select(vec![
            "-0",
            "0",
            "-0.0",
            "1.0",
            "1e3",
            "1E+3",
            "2e-2",
            "01",
            "-",
            "1.",
            "00",
            "nul",
            "tru",
            "[1,2]",
            "{\"a\":1}",
            "{}",
            "[]",
            "\"\"",
            "\"\\\"\"",
            "\"\\u00e9\"",
            "\"\\ud800\"",
            "1.7976931348623157e309",
            "123456789012345678901234",
        ])
        .prop_map(str::to_string),
        "[ -~é日\\\\\"\u{1}]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ]
}

fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n\t", "\r"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fast_path_equals_serde(
        fields in prop::collection::vec((prop::sample::select(KEYS.to_vec()), value(), space(), space()), 0..9),
        lead in space(),
        trail in space(),
    ) {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v, a, b)| format!("{a}\"{k}\"{b}:{a}{v}{b}"))
            .collect();
        let raw = format!("{lead}{{{}}}{trail}", body.join(","));
        if let Some(f) = fast(raw.as_bytes()) {
            let s = serde(raw.as_bytes());
            prop_assert!(s.is_ok(), "fast path took a row serde rejects: {raw}: {s:?}");
            if let Ok(s) = s {
                prop_assert!(same(&f, &s), "{raw}: fast {f:?} serde {s:?}");
            }
        }
        // Read from a stream: the row followed by more bytes, or cut short.
        let object = format!("{{{}}}", body.join(","));
        let stream = format!("{object}{trail},{{\"day\":1}}]}}");
        let prefix = EventRow::parse_prefix(stream.as_bytes());
        let whole = prefix.as_ref().is_some_and(|(_, len)| *len == object.len());
        match (fast(object.as_bytes()), prefix) {
            (Some(f), Some((p, len))) => {
                prop_assert_eq!(len, object.len());
                prop_assert!(same(&f, &p), "{object}: fast {f:?} prefix {p:?}");
            }
            (None, None) => {}
            // Not a row, but it starts with one (`{"company":""}"}`): the prefix is that row,
            // and the scanner then finds the bytes after it out of place.
            (None, Some((_, len))) if len < object.len() => {}
            (f, p) => prop_assert!(false, "{object}: fast {f:?} prefix {p:?}"),
        }
        // Cut short, a row is never read: nothing is, or (for an object that only starts with
        // a row, as above) that shorter row, ending before the cut does.
        let cut = &object.as_bytes()[..object.len() - 1];
        match EventRow::parse_prefix(cut) {
            None => {}
            Some((_, len)) => prop_assert!(!whole && len < cut.len(), "{object}: cut read {len} bytes"),
        }
    }

    #[test]
    fn stop_bytes_matches_the_byte_loop(w in any::<[u8; 8]>()) {
        let stops = stop_bytes(u64::from_le_bytes(w));
        let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
        prop_assert_eq!(found, first_stop(w));
    }

    #[test]
    fn mangled_rows_match_serde(
        fields in prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 1..6),
        cut in any::<prop::sample::Index>(),
        insert in any::<u8>(),
    ) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let mut raw = format!("{{{}}}", body.join(",")).into_bytes();
        let at = cut.index(raw.len());
        raw.insert(at, insert);
        if let Some(f) = fast(&raw) {
            let s = serde(&raw);
            prop_assert!(s.is_ok(), "fast path took a row serde rejects: {:?}", String::from_utf8_lossy(&raw));
            if let Ok(s) = s {
                prop_assert!(same(&f, &s));
            }
        }
        raw.truncate(at);
        prop_assert!(fast(&raw).is_none() || serde(&raw).is_ok());
    }
}
