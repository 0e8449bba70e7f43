//! The transform of per-day pipeline rows (custom aggregations, reports): each row carries id
//! columns and numeric columns; values per (object, metric, app, day) are the sums of each
//! mapped column over the rows resolved to that object. Rows stream in through [`RowSink`];
//! end users are resolved and, when the mapping may create them, queued for creation with the
//! Feature/Page identity rules, and their name, surname and email are taken from the row's
//! columns the field mappings name, only where the user's field is empty (email only on a
//! mapping with "Auto-create users?" on). A kind with activity (a Guide mapping) also sums one
//! column per end user of the day, on any target, as an event mapping does. No I/O.

use super::identity::{Directory, IdentityRules, NewUsers, UserMatch};
use super::transform::Fill;
use super::unmatched::{UnmatchedReason, UnmatchedTally};
use crate::domain::aggregation::IdFields;
use crate::domain::apps::multi_app_metric_name;
use crate::domain::{AppsTable, MetricValue, ObjectRef, SkippedRows, Target};
use crate::pendo::{RowError, RowSink};
use chrono::NaiveDate;
use rustc_hash::FxHashMap as HashMap;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// What one per-day pipeline mapping turns rows into.
#[derive(Debug, Clone)]
pub struct DaySpec {
    pub target: Target,
    pub ids: IdFields,
    /// (output column, metric name).
    pub fields: Vec<(String, String)>,
    pub multi_app: bool,
    pub email_mapped: bool,
    /// The global auto-detect setting AND the mapping's "Auto-create users?".
    pub may_create: bool,
    /// The mapping's "Auto-create users?" (emails are filled in only with it on).
    pub auto_create: bool,
    pub day: NaiveDate,
    pub apps: AppsTable,
    /// The end users' activity records of the day, if the kind writes them.
    pub activity: Option<DayActivity>,
    /// Values computed from the fields' sums, written after them (a field named `""` is only
    /// their input).
    pub derived: Vec<Derived>,
}

/// A value computed from the sums of a day's fields, per object and app, rounded to two
/// decimals (an NPS of 55.56, a mean of 4.33: as Pendo and people write them).
#[derive(Debug, Clone, PartialEq)]
pub enum Derived {
    /// `100 × (promoters − detractors) / respondents`, where there are respondents.
    Nps {
        metric: String,
        promoters: usize,
        detractors: usize,
        respondents: usize,
    },
    /// `sum / count`, where the count is above 0.
    Mean {
        metric: String,
        sum: usize,
        count: usize,
    },
}

impl Derived {
    fn metric(&self) -> &str {
        match self {
            Self::Nps { metric, .. } | Self::Mean { metric, .. } => metric,
        }
    }

    /// The value from the field sums `field(i)`; `None` without its denominator.
    fn value(&self, field: impl Fn(usize) -> f64) -> Option<f64> {
        let exact = match self {
            Self::Nps {
                promoters,
                detractors,
                respondents,
                ..
            } => {
                let n = field(*respondents);
                (n > 0.0).then(|| 100.0 * (field(*promoters) - field(*detractors)) / n)
            }
            Self::Mean { sum, count, .. } => {
                let n = field(*count);
                (n > 0.0).then(|| field(*sum) / n)
            }
        };
        exact.map(|v| (v * 100.0).round() / 100.0)
    }
}

/// The activity records a per-day kind writes: per end user of the day, the sum of one of its
/// fields (only where it is above 0), under the mapping's label.
#[derive(Debug, Clone)]
pub struct DayActivity {
    pub mapping_id: crate::domain::MappingId,
    pub label: String,
    /// The index in [`DaySpec::fields`] of the column summed.
    pub field: usize,
    pub passive: bool,
    /// A column whose text, when a row has it, is said in the label: `"{label}: {text}"` (the
    /// end user's last such row of the day).
    pub detail: Option<String>,
}

impl DaySpec {
    /// Every row column the accumulator reads: the ids, the mapped fields, the activity's
    /// detail and `appId`.
    fn columns(&self) -> Vec<String> {
        let ids = &self.ids;
        let mut out: Vec<String> = [
            &ids.end_user,
            &ids.email,
            &ids.object,
            &ids.name,
            &ids.surname,
        ]
        .into_iter()
        .flatten()
        .chain([&ids.company])
        .chain(self.fields.iter().map(|(c, _)| c))
        .chain(self.activity.iter().filter_map(|a| a.detail.as_ref()))
        .cloned()
        .chain(["appId".to_string()])
        .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A row parsed into the columns named, every other one skipped without building its value (a
/// report row carries emails, names and columns no metric reads; building them all was most of
/// a Report mapping's CPU).
struct Columns<'c>(&'c [String]);

/// A row's values by the position of their column in the list it was parsed with: no key is
/// built or compared in a map (a map of the columns per row was a third of a Poll mapping's
/// CPU). Read by name through [`Row`]; a column outside the list is absent, and setting one is
/// a no-op (the list is every column the row's readers read).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow<'c> {
    columns: &'c [String],
    values: Vec<Option<Value>>,
}

impl<'c> ParsedRow<'c> {
    /// `values` (as [`ParsedRow::into_values`] gave them) read through `columns` again.
    pub fn with(columns: &'c [String], values: Vec<Option<Value>>) -> Self {
        Self { columns, values }
    }

    pub fn into_values(self) -> Vec<Option<Value>> {
        self.values
    }

    fn slot(&mut self, column: &str) -> Option<&mut Option<Value>> {
        self.values.get_mut(position(self.columns, column)?)
    }

    /// Takes a column's value out of the row.
    pub fn take(&mut self, column: &str) -> Option<Value> {
        self.slot(column)?.take()
    }

    /// Sets a column's value (a column outside the list: nothing).
    pub fn set(&mut self, column: &str, v: Value) {
        if let Some(slot) = self.slot(column) {
            *slot = Some(v);
        }
    }
}

/// The position of `column` in a reader's list (a few columns: a scan beats hashing).
fn position(columns: &[String], column: &str) -> Option<usize> {
    columns.iter().position(|c| c == column)
}

/// Parses a raw row into the `columns` named (see [`Columns`]).
///
/// # Errors
/// A row that is not a JSON object.
pub fn parse_columns<'c>(raw: &[u8], columns: &'c [String]) -> Result<ParsedRow<'c>, RowError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde::de::DeserializeSeed::deserialize(Columns(columns), &mut de)
        .and_then(|row| de.end().map(|()| row))
        .map(|values| ParsedRow { columns, values })
        .map_err(|e| RowError(format!("bad pipeline row: {e}")))
}

impl<'de> serde::de::DeserializeSeed<'de> for Columns<'_> {
    type Value = Vec<Option<Value>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Columns<'_> {
    type Value = Vec<Option<Value>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut row = vec![None; self.0.len()];
        while let Some(i) = a.next_key_seed(Column(self.0))? {
            match i.and_then(|i| row.get_mut(i)) {
                // Of a key given twice, the last value counts (as a map's insert).
                Some(slot) => *slot = Some(a.next_value()?),
                None => {
                    a.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(row)
    }
}

/// A row's key: the index of the column it names, if wanted (no allocation either way).
struct Column<'c>(&'c [String]);

impl<'de> serde::de::DeserializeSeed<'de> for Column<'_> {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Column<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a column name")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Self::Value, E> {
        Ok(position(self.0, k))
    }
}

/// A parsed row, read by column name: a JSON object, or a row type that knows its few columns
/// (a PES row) and so is never built into a map.
pub trait Row {
    fn get(&self, column: &str) -> Option<&Value>;
}

impl Row for Map<String, Value> {
    fn get(&self, column: &str) -> Option<&Value> {
        Map::get(self, column)
    }
}

impl Row for ParsedRow<'_> {
    fn get(&self, column: &str) -> Option<&Value> {
        self.values.get(position(self.columns, column)?)?.as_ref()
    }
}

/// A scalar as text (ids may be numbers in Pendo rows).
fn text(v: Option<&Value>) -> Option<Cow<'_, str>> {
    match v? {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// A numeric cell: a JSON number, or a string holding one. Anything else is no value.
pub fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

/// Why a row resolves to no object.
enum Skip {
    NoId,
    NotInDirectory,
    EndUser,
}

/// The rows of one day, summed. Key: (object slot, app slot, field index).
pub struct DayAccumulator<'d> {
    spec: DaySpec,
    dir: &'d Directory,
    app_slots: Vec<(String, String)>,
    /// The slot of each numeric app id met (0 for every row of a single-app mapping).
    app_by_id: Vec<(i64, u16)>,
    values: HashMap<(u32, u16, usize), f64>,
    /// End-user slot → the activity column's sum and detail ([`DaySpec::activity`]).
    activity: HashMap<u32, (f64, Option<String>)>,
    new_users: NewUsers,
    fills: HashMap<u32, Fill>,
    pub rows_read: u64,
    pub skipped: SkippedRows,
    /// The identities of the rows no object took, and why.
    pub unmatched: UnmatchedTally,
    /// The row columns this mapping reads ([`DaySpec::columns`]); a row's others are skipped
    /// unparsed.
    columns: Vec<String>,
}

impl<'d> DayAccumulator<'d> {
    pub fn new(spec: DaySpec, dir: &'d Directory) -> Self {
        Self {
            columns: spec.columns(),
            spec,
            dir,
            app_slots: Vec::new(),
            app_by_id: Vec::new(),
            values: HashMap::default(),
            activity: HashMap::default(),
            new_users: NewUsers::default(),
            fills: HashMap::default(),
            rows_read: 0,
            skipped: SkippedRows::default(),
            unmatched: UnmatchedTally::default(),
        }
    }

    /// The row's app slot; a row costs an integer compare once its app has been met.
    fn app_slot<R: Row + ?Sized>(&mut self, row: &R) -> u16 {
        let app = match self.spec.multi_app {
            true => number(row.get("appId")).map_or(0, |a| a as i64),
            false => 0,
        };
        if let Some(&(_, slot)) = self.app_by_id.iter().find(|(a, _)| *a == app) {
            return slot;
        }
        let key = if self.spec.multi_app {
            let r = self.spec.apps.row_for(app);
            (r.app_id, r.prefix)
        } else {
            (String::new(), String::new())
        };
        let slot = match self.app_slots.iter().position(|s| *s == key) {
            Some(p) => p as u16,
            None => {
                self.app_slots.push(key);
                (self.app_slots.len() - 1) as u16
            }
        };
        self.app_by_id.push((app, slot));
        slot
    }

    /// The row's object, or why it has none.
    fn object<R: Row + ?Sized>(&mut self, row: &R) -> Result<u32, Skip> {
        let company = text(row.get(&self.spec.ids.company)).filter(|c| !c.is_empty());
        let column = |f: &Option<String>| {
            f.as_ref()
                .and_then(|c| text(row.get(c)))
                .filter(|v| !v.is_empty())
        };
        let in_directory = |found: Option<u32>| found.ok_or(Skip::NotInDirectory);
        match self.spec.target {
            Target::Company => in_directory(self.dir.company(&company.ok_or(Skip::NoId)?)),
            Target::Asset => in_directory(
                self.dir
                    .asset(&column(&self.spec.ids.object).ok_or(Skip::NoId)?),
            ),
            Target::Project => in_directory(
                self.dir
                    .project(&column(&self.spec.ids.object).ok_or(Skip::NoId)?),
            ),
            Target::EndUser => self.user(row),
        }
    }

    /// The row's end user (found, or queued for creation when the mapping may create it), or
    /// why it has none.
    fn user<R: Row + ?Sized>(&mut self, row: &R) -> Result<u32, Skip> {
        let company = text(row.get(&self.spec.ids.company)).filter(|c| !c.is_empty());
        let column = |f: &Option<String>| {
            f.as_ref()
                .and_then(|c| text(row.get(c)))
                .filter(|v| !v.is_empty())
        };
        let ext = column(&self.spec.ids.end_user);
        let email = column(&self.spec.ids.email).map(|e| e.trim().to_lowercase());
        let name = column(&self.spec.ids.name).map(|v| v.trim().to_string());
        let surname = column(&self.spec.ids.surname).map(|v| v.trim().to_string());
        let rules = IdentityRules {
            email_mapped: self.spec.email_mapped,
            may_create: self.spec.may_create,
        };
        let found =
            match self
                .dir
                .match_user(rules, company.as_deref(), ext.as_deref(), email.as_deref())
            {
                UserMatch::Existing(i) => {
                    self.note_fill(i, email, name, surname);
                    Some(i)
                }
                UserMatch::Create => self.new_users.slot(
                    self.dir,
                    rules,
                    company.as_deref().unwrap_or_default(),
                    ext.as_deref(),
                    email.as_deref(),
                    || (name, surname),
                ),
                UserMatch::Unresolvable => None,
            };
        found.ok_or(Skip::EndUser)
    }

    /// The columns this accumulator reads from a row, with `extra` ones a reader before it
    /// needs (sorted, each once).
    pub fn columns_with(&self, extra: &[&str]) -> Vec<String> {
        let mut out = self.columns.clone();
        out.extend(extra.iter().map(|c| c.to_string()));
        out.sort();
        out.dedup();
        out
    }

    /// Adds the row's activity column to its end user's sum (kinds with activity only).
    fn note_activity<R: Row + ?Sized>(&mut self, user: Option<u32>, row: &R) {
        let (Some(a), Some(u)) = (&self.spec.activity, user) else {
            return;
        };
        let Some((col, _)) = self.spec.fields.get(a.field) else {
            return;
        };
        if let Some(v) = number(row.get(col)).filter(|v| *v > 0.0) {
            let detail = a.detail.as_ref().and_then(|c| text(row.get(c)));
            let e = self.activity.entry(u).or_insert((0.0, None));
            e.0 += v;
            if let Some(d) = detail {
                e.1 = Some(d.into_owned());
            }
        }
    }

    /// Remembers the row's values for the fields an existing user has empty (never
    /// overwriting; an email only on a mapping with "Auto-create users?" on).
    fn note_fill(
        &mut self,
        i: u32,
        email: Option<String>,
        name: Option<String>,
        surname: Option<String>,
    ) {
        let Some(u) = self.dir.user(i) else { return };
        let name = name.filter(|v| !v.is_empty() && u.name_empty);
        let surname = surname.filter(|v| !v.is_empty() && u.surname_empty);
        let email = email.filter(|e| {
            !e.is_empty() && self.spec.auto_create && self.spec.email_mapped && u.email_empty
        });
        Fill::note(&mut self.fills, i, u.id, name, surname, email);
    }

    fn add_row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        // The list is lent out for the row's life (the row reads through it).
        let columns = std::mem::take(&mut self.columns);
        let parsed = parse_columns(raw, &columns).map(|row| self.add_parsed(&row));
        self.columns = columns;
        parsed
    }

    /// Adds one already parsed row.
    pub fn add_parsed<R: Row + ?Sized>(&mut self, row: &R) {
        self.rows_read += 1;
        // Activity belongs to the row's end user whatever the target, as an event mapping's.
        let user = match self.spec.activity {
            Some(_) if self.spec.target != Target::EndUser => self.user(row).ok(),
            _ => None,
        };
        let object = match self.object(row) {
            Ok(o) => o,
            Err(skip) => {
                self.note_activity(user, row);
                let k = &mut self.skipped;
                *match skip {
                    Skip::NoId => &mut k.no_object_id,
                    Skip::NotInDirectory => &mut k.not_in_directory,
                    Skip::EndUser => &mut k.end_user_unmatched,
                } += 1;
                self.note_unmatched(row, &skip);
                return;
            }
        };
        let user = user.or((self.spec.target == Target::EndUser).then_some(object));
        self.note_activity(user, row);
        let app = self.app_slot(row);
        for (i, (col, _)) in self.spec.fields.iter().enumerate() {
            if let Some(v) = number(row.get(col)) {
                *self.values.entry((object, app, i)).or_insert(0.0) += v;
            }
        }
    }

    /// Why a row no object took was not used, and whose it was; its value is the first mapped
    /// column's.
    fn note_unmatched<R: Row + ?Sized>(&mut self, row: &R, skip: &Skip) {
        use UnmatchedReason as R;
        let cell = |f: Option<&String>| {
            f.and_then(|c| text(row.get(c)))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let company = cell(Some(&self.spec.ids.company));
        let user = cell(self.spec.ids.end_user.as_ref()).or(cell(self.spec.ids.email.as_ref()));
        let (reason, id) = match (self.spec.target, skip) {
            (Target::Company, Skip::NotInDirectory) => (R::CompanyNotInDirectory, company),
            // An anonymous visitor is its own reason on every target.
            (Target::Company, _)
                if user
                    .as_deref()
                    .is_some_and(|u| u.starts_with(super::transform::ANONYMOUS_PREFIX)) =>
            {
                (R::AnonymousVisitor, user)
            }
            (Target::Company, _) => (R::NoCompanyId, user),
            (Target::Asset | Target::Project, Skip::NotInDirectory) => {
                (R::NotInDirectory, cell(self.spec.ids.object.as_ref()))
            }
            (Target::Asset | Target::Project, _) => (R::NoId, company),
            (Target::EndUser, _) => match (&user, &company) {
                (Some(u), _) if u.starts_with(super::transform::ANONYMOUS_PREFIX) => {
                    (R::AnonymousVisitor, user)
                }
                (_, None) => (R::NoCompanyId, user),
                (_, Some(c)) if self.dir.company(c).is_none() => {
                    (R::CompanyNotInDirectory, company)
                }
                (None, Some(_)) => (R::NoId, company),
                (Some(_), Some(_)) => (R::EndUserNotFound, user),
            },
        };
        let value = self
            .spec
            .fields
            .first()
            .and_then(|(c, _)| number(row.get(c)))
            .unwrap_or(0.0);
        let day = self.spec.day;
        self.unmatched
            .note(reason, id.as_deref().unwrap_or_default(), day, value);
    }

    /// Fields to fill in on existing end users, by user id.
    pub fn fills(&self) -> Vec<Fill> {
        let mut out: Vec<Fill> = self.fills.values().cloned().collect();
        out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        out
    }

    /// End users to create before the values can be written.
    pub fn new_users(&self) -> &[crate::domain::EndUserInput] {
        self.new_users.list()
    }

    /// The derived values of each (object, app) whose inputs allow one, keyed as `finish`'s
    /// slots: (object, field index past the fields, app).
    fn derived_values(&self) -> Vec<((u32, usize, u16), f64)> {
        if self.spec.derived.is_empty() {
            return Vec::new();
        }
        let n = self.spec.fields.len();
        let mut objects: Vec<(u32, u16)> = self.values.keys().map(|(o, a, _)| (*o, *a)).collect();
        objects.sort_unstable();
        objects.dedup();
        let sum = |o: u32, a: u16, i: usize| self.values.get(&(o, a, i)).copied().unwrap_or(0.0);
        let mut out = Vec::new();
        for (o, a) in objects {
            for (k, d) in self.spec.derived.iter().enumerate() {
                if let Some(v) = d.value(|i| sum(o, a, i)) {
                    out.push(((o, n + k, a), v));
                }
            }
        }
        out
    }

    /// The activity records of the day, by end user. `created[i]` is the service id of
    /// `new_users()[i]`; a user that could not be created has none.
    pub fn activities(&self, created: &[String]) -> Vec<crate::domain::Activity> {
        let Some(a) = &self.spec.activity else {
            return Vec::new();
        };
        let base = self.dir.user_count() as u32;
        let mut slots: Vec<(u32, &(f64, Option<String>))> =
            self.activity.iter().map(|(u, v)| (*u, v)).collect();
        slots.sort_unstable_by_key(|(u, _)| *u);
        slots
            .into_iter()
            .filter_map(|(slot, (events, detail))| {
                let (user, company) = if slot < base {
                    let u = self.dir.user(slot)?;
                    (u.id.to_string(), u.company_id.to_string())
                } else {
                    let p = (slot - base) as usize;
                    let input = self.new_users.list().get(p)?;
                    (created.get(p)?.clone(), input.company_id.clone())
                };
                Some(crate::domain::Activity {
                    end_user_id: user,
                    company_id: company,
                    mapping_id: a.mapping_id.clone(),
                    label: match detail {
                        Some(d) => format!("{}: {d}", a.label),
                        None => a.label.clone(),
                    },
                    day: self.spec.day,
                    events: *events,
                    minutes: 0.0,
                    passive: a.passive,
                })
            })
            .collect()
    }

    /// The values of the day. `created[i]` is the service id of `new_users()[i]`.
    ///
    /// In the order of the objects' directory slots, then fields, then apps: deterministic
    /// for a directory, and sorted on integers (a PES day is two values for each of thousands
    /// of accounts whose ids share long prefixes; sorting on the ids was a sixth of its CPU).
    /// The stores order what they write themselves.
    pub fn finish(self, created: &[String]) -> Vec<MetricValue> {
        let base = self.dir.user_count() as u32;
        // The stored name of each (app slot, field or derived value) pair, computed once; a
        // field without a metric name is only an input of a derived value.
        let metrics: Vec<&str> = (self.spec.fields.iter().map(|(_, m)| m.as_str()))
            .chain(self.spec.derived.iter().map(Derived::metric))
            .collect();
        let names: Vec<Vec<String>> = self
            .app_slots
            .iter()
            .map(|(_, prefix)| {
                metrics
                    .iter()
                    .map(|metric| match self.spec.multi_app {
                        true => multi_app_metric_name(prefix, metric),
                        false => metric.to_string(),
                    })
                    .collect()
            })
            .collect();
        let mut slots: Vec<((u32, usize, u16), f64)> = self
            .values
            .iter()
            .filter(|(&(_, _, i), _)| !metrics[i].is_empty())
            .map(|(&(o, a, i), &v)| ((o, i, a), v))
            .chain(self.derived_values())
            .collect();
        slots.sort_unstable_by_key(|(k, _)| *k);
        let mut keyed: Vec<(&str, &str, &str, f64)> = Vec::with_capacity(slots.len());
        for ((obj, i, app), value) in slots {
            let id = match self.spec.target {
                Target::EndUser if obj >= base => {
                    created.get((obj - base) as usize).map(String::as_str)
                }
                Target::EndUser => self.dir.user(obj).map(|u| u.id),
                kind => self.dir.object_id(kind, obj),
            };
            let slot = self.app_slots.get(app as usize);
            let metric = names.get(app as usize).and_then(|n| n.get(i));
            if let (Some(id), Some(metric), Some((app_key, _))) = (id, metric, slot) {
                keyed.push((id, metric, app_key, value));
            }
        }
        keyed
            .into_iter()
            .map(|(id, metric, app, value)| MetricValue {
                object: ObjectRef {
                    kind: self.spec.target,
                    id: id.to_string(),
                },
                metric: metric.to_string(),
                app: app.to_string(),
                day: self.spec.day,
                value,
            })
            .collect()
    }
}

impl RowSink for DayAccumulator<'_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        self.add_row(raw)
    }
    fn reset(&mut self) {
        self.values.clear();
        self.activity.clear();
        self.new_users.clear();
        self.fills.clear();
        self.rows_read = 0;
        self.skipped = SkippedRows::default();
        self.unmatched.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DirectoryObject, EndUser};

    fn obj(id: &str) -> DirectoryObject {
        DirectoryObject {
            external_id: id.into(),
            name: None,
            company_id: None,
        }
    }

    fn spec(target: Target, multi_app: bool) -> DaySpec {
        let mut apps = AppsTable::default();
        apps.upsert("7", "Mobile").unwrap();
        DaySpec {
            target,
            ids: IdFields {
                company: "accountId".into(),
                end_user: Some("visitorId".into()),
                email: None,
                object: None,
                name: None,
                surname: None,
            },
            fields: vec![("m1".into(), "M1".into()), ("m2".into(), "M2".into())],
            multi_app,
            email_mapped: false,
            may_create: false,
            auto_create: false,
            day: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            apps,
            activity: None,
            derived: Vec::new(),
        }
    }

    fn feed(acc: &mut DayAccumulator<'_>, rows: &[Value]) {
        for r in rows {
            acc.row(r.to_string().as_bytes()).unwrap();
        }
    }

    fn rows() -> Vec<Value> {
        vec![
            serde_json::json!({"accountId": "a", "visitorId": "v1", "appId": 7, "m1": 2, "m2": "1.5"}),
            serde_json::json!({"accountId": "a", "visitorId": "v2", "appId": -323232, "m1": 3, "m2": null}),
            serde_json::json!({"accountId": "zz", "visitorId": "v3", "m1": 100}),
            serde_json::json!({"visitorId": "v4", "m1": 100}),
        ]
    }

    #[test]
    fn visitor_rows_roll_up_to_companies() {
        let dir = Directory::new(vec![obj("a")], vec![], vec![], vec![]);
        let mut acc = DayAccumulator::new(spec(Target::Company, false), &dir);
        feed(&mut acc, &rows());
        assert_eq!((acc.rows_read, acc.skipped.total()), (4, 2));
        // zz is not a company of the directory; the last row has no company id.
        assert_eq!(
            (acc.skipped.not_in_directory, acc.skipped.no_object_id),
            (1, 1)
        );
        let v = acc.finish(&[]);
        let got: Vec<(&str, f64)> = v.iter().map(|m| (m.metric.as_str(), m.value)).collect();
        assert_eq!(got, vec![("M1", 5.0), ("M2", 1.5)]);
        assert!(v.iter().all(|m| m.app.is_empty() && m.object.id == "a"));
    }

    #[test]
    fn multi_app_and_end_users() {
        let user = EndUser {
            id: "u1".into(),
            company_id: "a".into(),
            external_id: Some("v1".into()),
            email: None,
            name: None,
            surname: None,
        };
        let dir = Directory::new(vec![obj("a")], vec![], vec![], vec![user]);
        let mut acc = DayAccumulator::new(spec(Target::EndUser, true), &dir);
        feed(&mut acc, &rows());
        acc.reset();
        feed(&mut acc, &rows());
        assert_eq!(acc.rows_read, 4);
        let v = acc.finish(&[]);
        let got: Vec<(&str, &str, &str, f64)> = v
            .iter()
            .map(|m| {
                (
                    m.object.id.as_str(),
                    m.metric.as_str(),
                    m.app.as_str(),
                    m.value,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("u1", "Mobile - M1", "7", 2.0),
                ("u1", "Mobile - M2", "7", 1.5)
            ]
        );
    }

    #[test]
    fn unknown_users_of_known_companies_are_created_once_when_allowed() {
        let dir = Directory::new(vec![obj("a")], vec![], vec![], vec![]);
        let mut sp = spec(Target::EndUser, false);
        let mut acc = DayAccumulator::new(sp.clone(), &dir);
        feed(&mut acc, &rows());
        assert!(acc.new_users().is_empty(), "creation is off");
        assert_eq!(acc.finish(&[]), vec![]);

        sp.may_create = true;
        let mut acc = DayAccumulator::new(sp, &dir);
        let mut more = rows();
        more.push(serde_json::json!({"accountId": "a", "visitorId": "v1", "m1": 4}));
        feed(&mut acc, &more);
        // v1 and v2 of company a; v3's company is unknown, v4 has none: never created.
        let made: Vec<(&str, Option<&str>)> = acc
            .new_users()
            .iter()
            .map(|u| (u.company_id.as_str(), u.external_id.as_deref()))
            .collect();
        assert_eq!(made, vec![("a", Some("v1")), ("a", Some("v2"))]);
        assert_eq!((acc.rows_read, acc.skipped.end_user_unmatched), (5, 2));
        let v = acc.finish(&["id-1".to_string(), "id-2".to_string()]);
        let got: Vec<(&str, &str, f64)> = v
            .iter()
            .map(|m| (m.object.id.as_str(), m.metric.as_str(), m.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id-1", "M1", 6.0),
                ("id-1", "M2", 1.5),
                ("id-2", "M1", 3.0)
            ]
        );
    }

    /// A kind with activity records each end user's sum of its activity column on any target
    /// (above 0 only), with the user's company; a user the day creates gets its new id.
    #[test]
    fn activity_sums_per_end_user_on_a_company_target() {
        let u1 = EndUser {
            id: "u1".into(),
            company_id: "a".into(),
            external_id: Some("v1".into()),
            email: None,
            name: None,
            surname: None,
        };
        let dir = Directory::new(vec![obj("a")], vec![], vec![], vec![u1]);
        let mut sp = spec(Target::Company, false);
        sp.may_create = true;
        sp.activity = Some(DayActivity {
            mapping_id: crate::domain::MappingId::parse("m").unwrap(),
            label: "Seen".into(),
            field: 0,
            passive: true,
            detail: None,
        });
        let mut acc = DayAccumulator::new(sp, &dir);
        let mut more = rows();
        more.push(serde_json::json!({"accountId": "a", "visitorId": "v1", "m1": 4}));
        more.push(serde_json::json!({"accountId": "a", "visitorId": "v5", "m1": 0, "m2": 1}));
        feed(&mut acc, &more);
        let made: Vec<Option<&str>> = acc
            .new_users()
            .iter()
            .map(|u| u.external_id.as_deref())
            .collect();
        assert_eq!(made, vec![Some("v2"), Some("v5")]);
        let got: Vec<(String, String, f64, bool)> = acc
            .activities(&["id-2".to_string(), "id-5".to_string()])
            .into_iter()
            .map(|a| (a.end_user_id, a.company_id, a.events, a.passive))
            .collect();
        // v1: 2 + 4; v2: 3; v5's m1 is 0 (no record); v3, v4: no known company.
        assert_eq!(
            got,
            vec![
                ("u1".into(), "a".into(), 6.0, true),
                ("id-2".into(), "a".into(), 3.0, true)
            ]
        );
        let v = acc.finish(&[]);
        let values: Vec<(&str, f64)> = v.iter().map(|m| (m.metric.as_str(), m.value)).collect();
        assert_eq!(values, vec![("M1", 9.0), ("M2", 2.5)]);
    }

    /// An NPS and a mean from field sums, to two decimals; none without a denominator.
    #[test]
    fn derived_values_are_rounded_and_need_their_denominator() {
        let nps = Derived::Nps {
            metric: "NPS".into(),
            promoters: 0,
            detractors: 1,
            respondents: 2,
        };
        let sums = |v: [f64; 3]| move |i: usize| v[i];
        assert_eq!(nps.value(sums([2.0, 0.0, 3.0])), Some(66.67));
        assert_eq!(nps.value(sums([0.0, 1.0, 3.0])), Some(-33.33));
        assert_eq!(nps.value(sums([0.0, 0.0, 0.0])), None);
        let mean = Derived::Mean {
            metric: "Mean".into(),
            sum: 0,
            count: 1,
        };
        assert_eq!(mean.value(sums([13.0, 3.0, 0.0])), Some(4.33));
        assert_eq!(mean.value(sums([13.0, 0.0, 0.0])), None);
    }

    #[test]
    fn names_and_emails_fill_only_empty_fields_and_emails_only_with_auto_create() {
        let user = |id: &str, ext: &str, email: Option<&str>, name: Option<&str>| EndUser {
            id: id.into(),
            company_id: "a".into(),
            external_id: Some(ext.into()),
            email: email.map(Into::into),
            name: name.map(Into::into),
            surname: None,
        };
        let dir = Directory::new(
            vec![obj("a")],
            vec![],
            vec![],
            vec![
                user("u1", "v1", None, None),
                user("u2", "v2", Some("kept@a.io"), Some("Kept")),
            ],
        );
        let mut sp = spec(Target::EndUser, false);
        sp.ids.email = Some("mail".into());
        sp.ids.name = Some("first".into());
        sp.ids.surname = Some("last".into());
        sp.email_mapped = true;
        let rows = vec![
            serde_json::json!({"accountId": "a", "visitorId": "v1", "mail": "", "first": " Ann ", "last": "Lee", "m1": 1}),
            serde_json::json!({"accountId": "a", "visitorId": "v1", "mail": "ANN@a.io", "m1": 1}),
            serde_json::json!({"accountId": "a", "visitorId": "v2", "mail": "new@a.io", "first": "Bo", "last": "Ng", "m1": 1}),
            serde_json::json!({"accountId": "a", "visitorId": "v3", "mail": "cy@a.io", "first": "Cy", "m1": 1}),
        ];
        let fill =
            |id: &str, email: Option<&str>, name: Option<&str>, surname: Option<&str>| Fill {
                user_id: id.into(),
                email: email.map(Into::into),
                name: name.map(Into::into),
                surname: surname.map(Into::into),
            };
        // Without auto-create: names where empty, never an email; v2's email matches nobody,
        // so it is matched on its external id and keeps its name.
        let mut acc = DayAccumulator::new(sp.clone(), &dir);
        feed(&mut acc, &rows);
        assert_eq!(
            acc.fills(),
            vec![
                fill("u1", None, Some("Ann"), Some("Lee")),
                fill("u2", None, None, Some("Ng"))
            ]
        );
        assert!(acc.new_users().is_empty());
        // With auto-create: the email too where empty, and a new user with the row's fields.
        sp.auto_create = true;
        sp.may_create = true;
        let mut acc = DayAccumulator::new(sp, &dir);
        feed(&mut acc, &rows);
        assert_eq!(
            acc.fills(),
            vec![
                fill("u1", Some("ann@a.io"), Some("Ann"), Some("Lee")),
                fill("u2", None, None, Some("Ng"))
            ]
        );
        let made: Vec<_> = acc
            .new_users()
            .iter()
            .map(|u| (u.email.as_deref(), u.name.as_deref(), u.surname.as_deref()))
            .collect();
        assert_eq!(made, vec![(Some("cy@a.io"), Some("Cy"), None)]);
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        let dir = Directory::default();
        let mut acc = DayAccumulator::new(spec(Target::Company, false), &dir);
        assert!(acc.row(b"{not json").is_err());
        assert!(acc.row(b"[1, 2]").is_err(), "a row is an object");
        assert!(acc.row(br#"{"accountId": "a"} trailing"#).is_err());
        assert_eq!(number(Some(&serde_json::json!("NaN"))), None);
        assert_eq!(number(Some(&serde_json::json!([1]))), None);
    }

    /// A row is read for the columns the mapping names only; the others (nested, escaped, of
    /// any type) are skipped, and an escaped key still names its column.
    #[test]
    fn only_the_mapped_columns_are_read() {
        let s = spec(Target::Company, true);
        assert_eq!(
            s.columns(),
            ["accountId", "appId", "m1", "m2", "visitorId"].map(String::from)
        );
        let raw = br#"{"visitor": {"agent": {"email": "a\"b@x.io", "list": [1, {"k": null}]}},
            "accountId": "acme", "\u006d1": "4.5", "note": "x\\y", "m2": 2, "appId": 7, "m3": 9}"#;
        let cols = s.columns();
        let mut row = parse_columns(raw, &cols).unwrap();
        let read: Vec<_> = cols.iter().map(|c| row.get(c).cloned()).collect();
        let j = |v: Value| Some(v);
        assert_eq!(
            read,
            [
                j("acme".into()),
                j(7.into()),
                j("4.5".into()),
                j(2.into()),
                None
            ]
        );
        assert_eq!(row.get("note"), None);
        // Set and taken by name; a column outside the list is never set.
        row.set("visitorId", "v1".into());
        row.set("note", "x".into());
        assert_eq!(row.take("visitorId"), Some("v1".into()));
        assert_eq!(row.get("visitorId"), None);
        assert_eq!(row.get("note"), None);
        // Of a key given twice the last counts; a row that is not an object is an error.
        let twice = parse_columns(br#"{"m1": 1, "m1": 2}"#, &cols).unwrap();
        assert_eq!(twice.get("m1"), Some(&2.into()));
        assert!(parse_columns(b"[1]", &cols).is_err());
    }
}
