//! PES mappings: the `pes` pipeline for one app and a 30-day window ending on the synced day,
//! and the parsing of its rows. Pendo's real PES response shape is undocumented, so every
//! assumption about it lives in [`parse_pes_row`] (one function, tolerant of the plausible
//! variants, tested on its own).

use super::custom_rows::{DayAccumulator, Row};
use crate::domain::mapping::PesComponent;
use crate::pendo::{RowError, RowSink};
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};

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

/// One PES row as this service reads it: the account, the app if the row names one, and the
/// components under their canonical names (`score`, `adoption`, `stickiness`, `growth`).
#[derive(Debug, Clone, PartialEq)]
pub struct PesRow {
    /// `accountId` as a string.
    account: Value,
    /// `appId` as an integer.
    app: Option<Value>,
    /// score, adoption, stickiness, growth.
    components: [Option<Value>; 4],
}

const COMPONENTS: [&str; 4] = ["score", "adoption", "stickiness", "growth"];

impl PesRow {
    pub fn account(&self) -> &str {
        self.account.as_str().unwrap_or_default()
    }
    pub fn app(&self) -> Option<i64> {
        self.app.as_ref().and_then(Value::as_i64)
    }
}

impl Row for PesRow {
    fn get(&self, column: &str) -> Option<&Value> {
        match column {
            "accountId" => Some(&self.account),
            "appId" => self.app.as_ref(),
            c => COMPONENTS
                .iter()
                .position(|n| *n == c)
                .and_then(|i| self.components[i].as_ref()),
        }
    }
}

/// The keys of a PES row this service reads (every other key is skipped unparsed), and of the
/// objects nested in it.
const ROW_KEYS: [&str; 11] = [
    "accountId",
    "account",
    "appId",
    "pes",
    "score",
    "pesScore",
    "adoption",
    "stickiness",
    "growth",
    "components",
    "pesComponents",
];
const VALUE_KEYS: [&str; 2] = ["value", "score"];
const ID_KEY: [&str; 1] = ["id"];

/// The value names of [`ROW_KEYS`] (`pes` .. `growth`), in the order of [`ROW_KEYS`] from 3.
const VALUE_NAMES: std::ops::Range<usize> = 3..9;

/// A cell read as a number: `None` when absent or null, `Some(None)` when present but not a
/// number, a numeric string, or (with `objects`) an object holding one under `value`, else
/// `score`. Nothing is built for a cell that is none of these; it is never an error.
#[derive(Clone, Copy)]
struct NumSeed {
    objects: bool,
}

/// A key: its index in the list, if listed (no allocation either way).
struct KeySeed(&'static [&'static str]);

/// The account id: a non-empty string or a number, as text; `None` when null, `Some(None)` when
/// of another type or empty.
struct IdSeed;

/// A nested object's values by [`VALUE_NAMES`], or `None` when the cell is not an object.
struct NestedSeed;

/// An `account` object's `id`.
struct AccountSeed;

/// The whole row.
struct RowSeed;

#[derive(Default)]
struct RawPes {
    /// `accountId`: absent or null, or present (an id or not).
    account_id: Option<Option<String>>,
    /// `account.id`.
    account: Option<String>,
    app: Option<f64>,
    /// By [`VALUE_NAMES`]: absent or null, or present (a number or not).
    values: [Option<Option<f64>>; 6],
    /// `components` and `pesComponents`, when objects.
    nested: [Option<[Option<f64>; 6]>; 2],
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut a: A) -> Result<(), A::Error> {
    while a.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A visitor's answers to every cell that is not an object: `None`, without building anything.
macro_rules! no_object_is_a_value {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
            drain_seq(a).map(|()| None)
        }
    };
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|c| *c == k))
    }
}

impl<'de> DeserializeSeed<'de> for NumSeed {
    type Value = Option<Option<f64>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumSeed {
    type Value = Option<Option<f64>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a PES value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Some(v as f64)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Some(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(finite(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.trim().parse::<f64>().ok().and_then(finite)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        drain_seq(a).map(|()| Some(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut found: [Option<Option<f64>>; 2] = [None, None];
        while let Some(k) = a.next_key_seed(KeySeed(&VALUE_KEYS))? {
            match k {
                Some(i) if self.objects => {
                    found[i] = a.next_value_seed(NumSeed { objects: false })?;
                }
                _ => a.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        let [value, score] = found;
        Ok(Some(value.or(score).flatten().filter(|_| self.objects)))
    }
}

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = Option<Option<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed {
    type Value = Option<Option<String>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an account id")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(serde_json::Number::from_f64(v).map(|n| n.to_string())))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Some(v.to_string()).filter(|s| !s.is_empty())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Some(v).filter(|s| !s.is_empty())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        drain_seq(a).map(|()| Some(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(None))
    }
}

impl<'de> DeserializeSeed<'de> for AccountSeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AccountSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an account")
    }
    no_object_is_a_value!();
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(k) = a.next_key_seed(KeySeed(&ID_KEY))? {
            match k {
                Some(_) => id = a.next_value_seed(IdSeed)?.flatten(),
                None => a.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(id)
    }
}

impl<'de> DeserializeSeed<'de> for NestedSeed {
    type Value = Option<[Option<f64>; 6]>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed {
    type Value = Option<[Option<f64>; 6]>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("PES components")
    }
    no_object_is_a_value!();
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; 6];
        while let Some(k) = a.next_key_seed(KeySeed(&ROW_KEYS))? {
            match k.filter(|i| VALUE_NAMES.contains(i)) {
                Some(i) => {
                    out[i - VALUE_NAMES.start] =
                        a.next_value_seed(NumSeed { objects: true })?.flatten();
                }
                None => a.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(Some(out))
    }
}

impl<'de> DeserializeSeed<'de> for RowSeed {
    type Value = RawPes;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed {
    type Value = RawPes;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a PES row object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut row = RawPes::default();
        while let Some(k) = a.next_key_seed(KeySeed(&ROW_KEYS))? {
            match k {
                Some(0) => row.account_id = a.next_value_seed(IdSeed)?,
                Some(1) => row.account = a.next_value_seed(AccountSeed)?,
                Some(2) => row.app = a.next_value_seed(NumSeed { objects: false })?.flatten(),
                Some(i) if VALUE_NAMES.contains(&i) => {
                    row.values[i - VALUE_NAMES.start] =
                        a.next_value_seed(NumSeed { objects: true })?;
                }
                Some(i @ (9 | 10)) => row.nested[i - 9] = a.next_value_seed(NestedSeed)?,
                _ => a.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(row)
    }
}

/// Parses one PES row.
///
/// Accepted variants: the score as `pes`, `score` or `pesScore`; the components at the top
/// level or under `components`/`pesComponents`; each value a number, a numeric string, or an
/// object holding it under `value`/`score`; the account as `accountId` or `account.id`.
/// `Ok(None)` for a row without an account (skipped); `Err` only for a row that is not a JSON
/// object. Only the keys above are parsed; a row is read without building a JSON value.
pub fn parse_pes_row(raw: &[u8]) -> Result<Option<PesRow>, String> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let row = RowSeed
        .deserialize(&mut de)
        .and_then(|row| de.end().map(|()| row))
        .map_err(|e| format!("bad PES row: {e}"))?;
    let Some(account) = row.account_id.unwrap_or(row.account) else {
        return Ok(None);
    };
    let nested = row.nested.iter().flatten().next();
    let value_of = |names: std::ops::Range<usize>| {
        names
            .into_iter()
            .find_map(|i| match row.values[i] {
                Some(v) => v,
                None => nested.and_then(|n| n[i]),
            })
            .map(Value::from)
    };
    Ok(Some(PesRow {
        account: Value::String(account),
        app: row.app.map(|a| Value::from(a as i64)),
        components: [
            value_of(0..3),
            value_of(3..4),
            value_of(4..5),
            value_of(5..6),
        ],
    }))
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
            Some(row) if row.app().is_none_or(|a| a == self.app_id) => {
                self.acc.add_parsed(&row);
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

    fn parse(v: Value) -> Option<PesRow> {
        parse_pes_row(v.to_string().as_bytes()).unwrap()
    }

    /// A parsed row's columns as a JSON object, absent ones left out.
    fn columns(r: &PesRow) -> Value {
        let mut out = serde_json::Map::new();
        for c in [
            "accountId",
            "appId",
            "score",
            "adoption",
            "stickiness",
            "growth",
        ] {
            if let Some(v) = r.get(c) {
                out.insert(c.into(), v.clone());
            }
        }
        Value::Object(out)
    }

    #[test]
    fn simulator_shape() {
        let r = columns(
            &parse(json!({"accountId": "a", "appId": -323232, "adoption": 12.5,
            "stickiness": 3, "growth": 0, "pes": 5.17, "visitors": [{"id": "v"}], "note": "x"}))
            .unwrap(),
        );
        assert_eq!(r["accountId"], "a");
        assert_eq!(r["appId"], -323232);
        assert_eq!(r["score"], 5.17);
        assert_eq!(r["stickiness"], 3.0);
        assert_eq!(r["growth"], 0.0);
    }

    #[test]
    fn plausible_variants() {
        let r = columns(
            &parse(
                json!({"account": {"id": 42, "metadata": {"a": [1]}}, "pesScore": "7.5",
            "components": {"adoption": {"value": 1}, "stickiness": "2", "growth": {"score": 3}}}),
            )
            .unwrap(),
        );
        assert_eq!(r["accountId"], "42");
        assert_eq!(r["score"], 7.5);
        assert_eq!(
            (&r["adoption"], &r["stickiness"], &r["growth"]),
            (&json!(1.0), &json!(2.0), &json!(3.0))
        );
        let r =
            columns(&parse(json!({"accountId": "a", "score": null, "adoption": "n/a"})).unwrap());
        assert_eq!(r, json!({"accountId": "a"}));
        assert!(r.get("score").is_none() && r.get("adoption").is_none());
        assert!(parse(json!({"accountId": "", "pes": 1})).is_none());
        assert!(parse(json!({"pes": 1})).is_none());
        assert!(parse_pes_row(b"[1,2").is_err());
        assert!(parse_pes_row(b"[]").is_err(), "a row is an object");
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

    /// The parsing rule written over a JSON value: the reference the streaming parser must
    /// agree with (a null counts as absent; the first of `components` / `pesComponents` that
    /// is an object is read; of a key given twice, the last counts).
    fn oracle(row: &Value) -> Option<(String, Option<i64>, [Option<f64>; 4])> {
        let present = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
        let scalar = |v: &Value| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        };
        let num = |v: &Value| match v {
            Value::Object(o) => present(o.get("value"))
                .or(present(o.get("score")))
                .and_then(|v| scalar(&v)),
            v => scalar(v),
        };
        let id = |v: &Value| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let account = match present(row.get("accountId")) {
            Some(a) => id(&a),
            None => present(row.get("account").and_then(|a| a.get("id"))).and_then(|a| id(&a)),
        }?;
        let nested = ["components", "pesComponents"]
            .iter()
            .find_map(|k| row.get(*k).and_then(Value::as_object));
        let value_of = |names: &[&str]| {
            names.iter().find_map(|n| match present(row.get(*n)) {
                Some(v) => num(&v),
                None => nested
                    .and_then(|m| present(m.get(*n)))
                    .and_then(|v| num(&v)),
            })
        };
        Some((
            account,
            row.get("appId").and_then(scalar).map(|a| a as i64),
            [
                value_of(&["pes", "score", "pesScore"]),
                value_of(&["adoption"]),
                value_of(&["stickiness"]),
                value_of(&["growth"]),
            ],
        ))
    }

    fn cell() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            prop_oneof![
                Just(" 7.5 "),
                Just("n/a"),
                Just(""),
                Just("acct-1"),
                Just("1e999")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::vec((key(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::sample::select(
            ["value", "score", "id", "other"]
                .iter()
                .chain(ROW_KEYS.iter())
                .map(|k| k.to_string())
                .collect::<Vec<_>>(),
        )
    }

    proptest::proptest! {
        /// Any object of the keys a PES row may carry, keys repeated included, parses as the
        /// rule over its JSON value says.
        #[test]
        fn streaming_parse_agrees_with_the_rule(
            pairs in proptest::collection::vec((key(), cell()), 0..8)
        ) {
            let raw = format!(
                "{{{}}}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let reference: Value = serde_json::from_str(&raw).unwrap();
            let got = parse_pes_row(raw.as_bytes()).unwrap().map(|r| {
                let c = |i: usize| r.components[i].as_ref().and_then(Value::as_f64);
                (r.account().to_string(), r.app(), [c(0), c(1), c(2), c(3)])
            });
            proptest::prop_assert_eq!(got, oracle(&reference), "{}", raw);
        }
    }
}
