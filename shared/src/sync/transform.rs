//! The hot path: Feature/Page event rows (raw JSON bytes) → per-object, per-day values and
//! per-user activity, aggregated in memory keyed by small integers. No I/O here.

use super::identity::{Directory, IdentityRules, UserMatch};
use super::plan::Window;
use crate::domain::apps::multi_app_metric_name;
use crate::domain::EndUserInput;
use crate::domain::{Activity, AppsTable, MappingId, MetricValue, ObjectRef, Target};
use crate::pendo::RowSink;
use crate::store::{ChunkRecords, StoreError};
use chrono::NaiveDate;
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;

use super::event_row::EventRow;
pub use super::event_row::Loose;

/// What one Feature/Page mapping turns rows into.
#[derive(Debug, Clone)]
pub struct TransformSpec {
    pub mapping_id: MappingId,
    pub target: Target,
    pub metric: String,
    pub minutes_metric: Option<String>,
    pub multi_app: bool,
    pub passive: bool,
    /// "Auto-create users?" of the mapping (also gates filling in emails).
    pub auto_create: bool,
    pub rules: IdentityRules,
    pub tz: Option<Tz>,
    pub window: Window,
    pub apps: AppsTable,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingUser {
    pub company_id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub surname: Option<String>,
}

impl PendingUser {
    pub fn input(&self) -> EndUserInput {
        EndUserInput {
            company_id: self.company_id.clone(),
            external_id: self.external_id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            surname: self.surname.clone(),
        }
    }
}

/// Fields to fill in on an existing end user (only where the stored field is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fill {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub surname: Option<String>,
}

/// Sums of one (object, app, day).
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    events: f64,
    minutes: f64,
}

/// The rows of one chunk, aggregated. Implements [`RowSink`] so rows stream straight in.
pub struct ChunkAccumulator<'d> {
    spec: TransformSpec,
    dir: &'d Directory,
    days: Vec<(i64, Option<NaiveDate>)>,
    apps: Vec<(i64, u16)>,
    app_slots: Vec<(String, String)>,
    /// (object slot, app slot, day) → sums. Object slot: directory index, or for end users
    /// the user slot (existing index, or `user_count + pending index`).
    values: HashMap<(u32, u16, NaiveDate), Sums>,
    activity: HashMap<(u32, NaiveDate), Sums>,
    pending: Vec<PendingUser>,
    pending_index: HashMap<(String, String), u32>,
    fills: HashMap<u32, Fill>,
    pub rows_read: u64,
    pub rows_skipped: u64,
}

impl<'d> ChunkAccumulator<'d> {
    pub fn new(spec: TransformSpec, dir: &'d Directory) -> Self {
        Self {
            spec,
            dir,
            days: Vec::new(),
            apps: Vec::new(),
            app_slots: Vec::new(),
            values: HashMap::default(),
            activity: HashMap::default(),
            pending: Vec::new(),
            pending_index: HashMap::default(),
            fills: HashMap::default(),
            rows_read: 0,
            rows_skipped: 0,
        }
    }

    fn local_day(&mut self, ms: i64) -> Option<NaiveDate> {
        if let Some((_, d)) = self.days.iter().find(|(m, _)| *m == ms) {
            return *d;
        }
        let d = crate::time::local_date_of_bucket(ms, self.spec.tz);
        self.days.push((ms, d));
        d
    }

    fn app_slot(&mut self, app: i64) -> u16 {
        if let Some((_, s)) = self.apps.iter().find(|(a, _)| *a == app) {
            return *s;
        }
        let key = if self.spec.multi_app {
            let row = self.spec.apps.row_for(app);
            (row.app_id, row.prefix)
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
        self.apps.push((app, slot));
        slot
    }

    fn user_slot(&mut self, row: &EventRow<'_>, email: Option<&str>) -> Option<u32> {
        let company = row.company.as_ref().map(|c| c.0.as_ref());
        let ext = row.end_user.as_ref().map(|c| c.0.as_ref());
        match self.dir.match_user(self.spec.rules, company, ext, email) {
            UserMatch::Existing(i) => {
                self.note_fill(i, row, email);
                Some(i)
            }
            UserMatch::Unresolvable => None,
            UserMatch::Create => {
                let company = company.unwrap_or_default().to_string();
                let key = match (email, ext.filter(|x| !x.is_empty())) {
                    (Some(e), _) if self.spec.rules.email_mapped && !e.is_empty() => {
                        format!("e:{e}")
                    }
                    (_, Some(x)) => format!("x:{x}"),
                    (Some(e), None) => format!("e:{e}"),
                    (None, None) => return None,
                };
                let base = self.dir.user_count() as u32;
                if let Some(p) = self.pending_index.get(&(company.clone(), key.clone())) {
                    return Some(base + p);
                }
                let text = |v: &Option<Loose<'_>>| {
                    v.as_ref()
                        .map(|s| s.0.trim().to_string())
                        .filter(|s| !s.is_empty())
                };
                self.pending.push(PendingUser {
                    company_id: company.clone(),
                    external_id: ext.filter(|x| !x.is_empty()).map(str::to_string),
                    email: email
                        .filter(|_| self.spec.rules.email_mapped)
                        .map(str::to_string),
                    name: text(&row.name),
                    surname: text(&row.surname),
                });
                let p = (self.pending.len() - 1) as u32;
                self.pending_index.insert((company, key), p);
                Some(base + p)
            }
        }
    }

    /// Remembers values to fill in on an existing user whose fields are empty. Allocates only
    /// when there is something to fill in.
    fn note_fill(&mut self, i: u32, row: &EventRow<'_>, email: Option<&str>) {
        let Some(u) = self.dir.user(i) else { return };
        let empty = |f: &Option<String>| f.as_deref().is_none_or(str::is_empty);
        // The row's trimmed text for a field the stored user has empty.
        let text = |v: &'_ Option<Loose<'_>>, stored: &Option<String>| -> Option<String> {
            if !empty(stored) {
                return None;
            }
            v.as_ref()
                .map(|s| s.0.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let name = text(&row.name, &u.name);
        let surname = text(&row.surname, &u.surname);
        let email = email
            .filter(|_| self.spec.auto_create && self.spec.rules.email_mapped && empty(&u.email))
            .map(str::to_string);
        if name.is_none() && surname.is_none() && email.is_none() {
            return;
        }
        let f = self.fills.entry(i).or_insert_with(|| Fill {
            user_id: u.id.clone(),
            ..Fill::default()
        });
        f.name = f.name.take().or(name);
        f.surname = f.surname.take().or(surname);
        f.email = f.email.take().or(email);
    }

    fn add_row(&mut self, raw: &[u8]) -> Result<(), String> {
        let row = EventRow::parse(raw)?;
        self.rows_read += 1;
        let Some(day) = row.day.and_then(|ms| self.local_day(ms)) else {
            self.rows_skipped += 1;
            return Ok(());
        };
        if day < self.spec.window.from || day > self.spec.window.to {
            self.rows_skipped += 1;
            return Ok(());
        }
        let sums = Sums {
            events: row.num_events.unwrap_or(0.0),
            minutes: row.num_minutes.unwrap_or(0.0),
        };
        let email_owned;
        let email = match row.email.as_ref().map(|e| e.0.trim()) {
            Some(e) if e.bytes().any(|b| b.is_ascii_uppercase()) => {
                email_owned = e.to_lowercase();
                Some(email_owned.as_str())
            }
            other => other,
        };
        let user = self.user_slot(&row, email);
        if let Some(u) = user {
            let a = self.activity.entry((u, day)).or_default();
            a.events += sums.events;
            a.minutes += sums.minutes;
        }
        fn field<'r>(v: &'r Option<Loose<'_>>) -> Option<&'r str> {
            v.as_ref().map(|s| s.0.as_ref())
        }
        let object = match self.spec.target {
            Target::Company => field(&row.company).and_then(|c| self.dir.company(c)),
            Target::Asset => field(&row.asset).and_then(|c| self.dir.asset(c)),
            Target::Project => field(&row.project).and_then(|c| self.dir.project(c)),
            Target::EndUser => user,
        };
        let Some(object) = object else {
            self.rows_skipped += 1;
            return Ok(());
        };
        let app = self.app_slot(row.app_id.unwrap_or(0));
        let v = self.values.entry((object, app, day)).or_default();
        v.events += sums.events;
        v.minutes += sums.minutes;
        Ok(())
    }

    /// End users to create before the values can be written.
    pub fn pending_users(&self) -> &[PendingUser] {
        &self.pending
    }

    /// The chunk's records, produced on demand. `created[i]` is the service id of
    /// `pending_users()[i]`.
    pub fn prepare(self, created: Vec<String>) -> PreparedChunk<'d> {
        let mut fills: Vec<Fill> = self.fills.values().cloned().collect();
        fills.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        PreparedChunk {
            acc: self,
            created,
            fills,
        }
    }
}

/// A transformed chunk: the aggregated sums, turned into values and activity records only as a
/// store reads them ([`ChunkRecords`]), so a chunk of a million rows never exists as a million
/// owned records.
pub struct PreparedChunk<'d> {
    acc: ChunkAccumulator<'d>,
    created: Vec<String>,
    fills: Vec<Fill>,
}

impl PreparedChunk<'_> {
    /// (service id, company id) of an end-user slot.
    fn user(&self, slot: u32) -> Option<(&str, &str)> {
        let base = self.acc.dir.user_count() as u32;
        if slot < base {
            self.acc
                .dir
                .user(slot)
                .map(|u| (u.id.as_str(), u.company_id.as_str()))
        } else {
            let p = (slot - base) as usize;
            Some((
                self.created.get(p)?.as_str(),
                self.acc.pending.get(p)?.company_id.as_str(),
            ))
        }
    }

    fn object_id(&self, obj: u32) -> Option<&str> {
        match self.acc.spec.target {
            Target::EndUser => self.user(obj).map(|(id, _)| id),
            kind => self.acc.dir.object_id(kind, obj),
        }
    }

    /// Values the chunk writes.
    pub fn value_count(&self) -> u64 {
        let per = 1 + u64::from(self.acc.spec.minutes_metric.is_some());
        let objects = self
            .acc
            .values
            .keys()
            .filter(|(obj, _, _)| self.object_id(*obj).is_some())
            .count() as u64;
        objects * per
    }

    /// Activity records the chunk writes.
    pub fn activity_count(&self) -> u64 {
        self.acc
            .activity
            .keys()
            .filter(|(slot, _)| self.user(*slot).is_some())
            .count() as u64
    }

    /// Fields to fill in on existing end users, by user id.
    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    pub fn rows_read(&self) -> u64 {
        self.acc.rows_read
    }

    pub fn rows_skipped(&self) -> u64 {
        self.acc.rows_skipped
    }
}

impl ChunkRecords for PreparedChunk<'_> {
    fn for_each_value(
        &self,
        f: &mut dyn FnMut(&MetricValue) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let spec = &self.acc.spec;
        // Metric names per app slot, built once.
        let names: Vec<(String, Option<String>)> = self
            .acc
            .app_slots
            .iter()
            .map(|(_, prefix)| {
                let name = |m: &str| {
                    if spec.multi_app {
                        multi_app_metric_name(prefix, m)
                    } else {
                        m.to_string()
                    }
                };
                (name(&spec.metric), spec.minutes_metric.as_deref().map(name))
            })
            .collect();
        // In key order (the directory is sorted by id): the store's B-tree inserts stay local.
        let mut keys: Vec<&(u32, u16, NaiveDate)> = self.acc.values.keys().collect();
        keys.sort_unstable();
        for key in keys {
            let (obj, app, day) = key;
            let Some(sums) = self.acc.values.get(key) else {
                continue;
            };
            let Some(id) = self.object_id(*obj) else {
                continue;
            };
            let Some((metric, minutes)) = names.get(*app as usize) else {
                continue;
            };
            let app_key = self
                .acc
                .app_slots
                .get(*app as usize)
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            let mut v = MetricValue {
                object: ObjectRef {
                    kind: spec.target,
                    id: id.to_string(),
                },
                metric: metric.clone(),
                app: app_key,
                day: *day,
                value: sums.events,
            };
            f(&v)?;
            if let Some(m) = minutes {
                v.metric.clone_from(m);
                v.value = sums.minutes;
                f(&v)?;
            }
        }
        Ok(())
    }

    fn for_each_activity(
        &self,
        f: &mut dyn FnMut(&Activity) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let spec = &self.acc.spec;
        let mut a = Activity {
            end_user_id: String::new(),
            company_id: String::new(),
            mapping_id: spec.mapping_id.clone(),
            label: spec.metric.clone(),
            day: spec.window.from,
            events: 0.0,
            minutes: 0.0,
            passive: spec.passive,
        };
        let mut keys: Vec<&(u32, NaiveDate)> = self.acc.activity.keys().collect();
        keys.sort_unstable();
        for key in keys {
            let (slot, day) = key;
            let Some(sums) = self.acc.activity.get(key) else {
                continue;
            };
            let Some((user, company)) = self.user(*slot) else {
                continue;
            };
            // One record reused: its strings keep their buffers from row to row.
            a.end_user_id.clear();
            a.end_user_id.push_str(user);
            a.company_id.clear();
            a.company_id.push_str(company);
            a.day = *day;
            a.events = sums.events;
            a.minutes = sums.minutes;
            f(&a)?;
        }
        Ok(())
    }
}

impl RowSink for ChunkAccumulator<'_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), String> {
        self.add_row(raw)
    }
    fn reset(&mut self) {
        self.values.clear();
        self.activity.clear();
        self.pending.clear();
        self.pending_index.clear();
        self.fills.clear();
        self.rows_read = 0;
        self.rows_skipped = 0;
    }
}
