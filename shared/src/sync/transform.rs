//! The hot path: Feature/Page event rows (raw JSON bytes) → per-object, per-day values and
//! per-user activity, aggregated in memory keyed by small integers. No I/O here.

use super::identity::{Directory, IdentityRules, UserMatch};
use super::unmatched::{UnmatchedEntry, UnmatchedReason, UnmatchedTally};
use crate::domain::apps::multi_app_metric_name;
use crate::domain::EndUserInput;
use crate::domain::Window;
use crate::domain::{Activity, AppsTable, MappingId, MetricValue, ObjectRef, SkippedRows, Target};

/// The prefix of Pendo's anonymous visitor ids.
pub const ANONYMOUS_PREFIX: &str = "_PENDO_T_";
use crate::pendo::{RowError, RowSink};
use crate::store::{ChunkRecords, Slots, StoreError, Text};
use chrono::NaiveDate;
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;

use crate::pendo::event_row::EventRow;
pub use crate::pendo::event_row::Loose;

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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    events: f64,
    minutes: f64,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.events += o.events;
        self.minutes += o.minutes;
    }
}

/// Sums of consecutive rows of one owner (an object or an end user), kept aside until a row of
/// another owner comes: rows come grouped by visitor, so most rows add to this short list and
/// only each (owner, key) of a run updates the hash map. Any order of rows gives the same
/// sums (`tests::any_row_order_gives_the_plain_sums`).
#[derive(Debug)]
struct Run<K> {
    owner: Option<u32>,
    sums: Vec<(K, Sums)>,
}

impl<K> Default for Run<K> {
    fn default() -> Self {
        Self {
            owner: None,
            sums: Vec::new(),
        }
    }
}

/// Longest run kept aside (a run is at most a window's days × apps in practice).
const RUN_LIMIT: usize = 64;

/// Where a run's sums go: a hash map (values), or a vector merged by sorting (activity).
trait SumsOf<M> {
    fn add_sums(&mut self, key: M, s: Sums);
}

impl<M: std::hash::Hash + Eq> SumsOf<M> for HashMap<M, Sums> {
    fn add_sums(&mut self, key: M, s: Sums) {
        self.entry(key).or_default().add(s);
    }
}

/// Sums by key as a vector: appended to, then sorted and merged when it has doubled since the
/// last merge (and before it is read), so it holds at most about twice its distinct keys. A
/// chunk's activity (hundreds of thousands of end-user days) costs 24 bytes a record this way,
/// grown in place, where a hash map cost about 40 and twice that while it grew (figure 2).
#[derive(Debug)]
struct MergedSums<M> {
    entries: Vec<(M, Sums)>,
    merge_at: usize,
}

/// Entries before the first merge.
const FIRST_MERGE: usize = 1 << 16;

impl<M> Default for MergedSums<M> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            merge_at: FIRST_MERGE,
        }
    }
}

impl<M: Ord + Copy> MergedSums<M> {
    /// Sorts by key and sums the entries of each key into one.
    fn merge(&mut self) {
        self.entries.sort_unstable_by_key(|(k, _)| *k);
        self.entries.dedup_by(|(k, s), (first_k, first_s)| {
            let same = *k == *first_k;
            if same {
                first_s.add(*s);
            }
            same
        });
        self.merge_at = (2 * self.entries.len()).max(FIRST_MERGE);
    }

    /// The merged entries, sorted by key.
    fn sorted(&self) -> &[(M, Sums)] {
        &self.entries
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.merge_at = FIRST_MERGE;
    }
}

impl<M: Ord + Copy> SumsOf<M> for MergedSums<M> {
    fn add_sums(&mut self, key: M, s: Sums) {
        if self.entries.len() >= self.merge_at {
            self.merge();
        }
        self.entries.push((key, s));
    }
}

impl<K: Copy + PartialEq> Run<K> {
    fn add<M>(
        &mut self,
        owner: u32,
        key: K,
        s: Sums,
        map: &mut impl SumsOf<M>,
        map_key: fn(u32, K) -> M,
    ) {
        if self.owner != Some(owner) || self.sums.len() >= RUN_LIMIT {
            self.flush(map, map_key);
            self.owner = Some(owner);
        }
        match self.sums.iter_mut().find(|(k, _)| *k == key) {
            Some((_, t)) => t.add(s),
            None => self.sums.push((key, s)),
        }
    }

    fn flush<M>(&mut self, map: &mut impl SumsOf<M>, map_key: fn(u32, K) -> M) {
        if let Some(owner) = self.owner.take() {
            for (k, s) in self.sums.drain(..) {
                map.add_sums(map_key(owner, k), s);
            }
        }
    }

    fn clear(&mut self) {
        self.owner = None;
        self.sums.clear();
    }
}

type ValueKey = (u32, u16, NaiveDate);
/// (day, end user slot): sorted, the store's key order.
type ActivityKey = (NaiveDate, u32);

fn value_key(object: u32, (app, day): (u16, NaiveDate)) -> ValueKey {
    (object, app, day)
}

fn activity_key(user: u32, day: NaiveDate) -> ActivityKey {
    (day, user)
}

/// The identity of the previous row and what it resolved to: rows come grouped by visitor, so
/// most rows repeat it and skip the directory's lookups.
#[derive(Debug, Default)]
struct LastIdentity {
    valid: bool,
    company: String,
    end_user: String,
    email: Option<String>,
    user: Option<u32>,
}

impl LastIdentity {
    /// A missing company or end user is the same as an empty one, as for `match_user`.
    fn matches(&self, company: Option<&str>, end_user: Option<&str>, email: Option<&str>) -> bool {
        self.valid
            && company.unwrap_or_default() == self.company
            && end_user.unwrap_or_default() == self.end_user
            && email == self.email.as_deref()
    }

    fn set(
        &mut self,
        company: Option<&str>,
        end_user: Option<&str>,
        email: Option<&str>,
        user: Option<u32>,
    ) {
        self.valid = true;
        self.company.clear();
        self.company.push_str(company.unwrap_or_default());
        self.end_user.clear();
        self.end_user.push_str(end_user.unwrap_or_default());
        match (email, &mut self.email) {
            (Some(e), Some(buf)) => {
                buf.clear();
                buf.push_str(e);
            }
            (e, buf) => *buf = e.map(str::to_string),
        }
        self.user = user;
    }
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
    values: HashMap<ValueKey, Sums>,
    activity: MergedSums<ActivityKey>,
    value_run: Run<(u16, NaiveDate)>,
    activity_run: Run<NaiveDate>,
    last_identity: LastIdentity,
    /// The previous row's company id and its directory index.
    last_company: Option<(String, Option<u32>)>,
    pending: Vec<PendingUser>,
    pending_index: HashMap<(String, String), u32>,
    fills: HashMap<u32, Fill>,
    pub rows_read: u64,
    pub skipped: SkippedRows,
    /// The identities of the rows no object took, and why.
    unmatched: UnmatchedTally,
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
            activity: MergedSums::default(),
            value_run: Run::default(),
            activity_run: Run::default(),
            last_identity: LastIdentity::default(),
            last_company: None,
            pending: Vec::new(),
            pending_index: HashMap::default(),
            fills: HashMap::default(),
            rows_read: 0,
            skipped: SkippedRows::default(),
            unmatched: UnmatchedTally::default(),
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
        if self.last_identity.matches(company, ext, email) {
            let user = self.last_identity.user;
            if let Some(i) = user.filter(|i| (*i as usize) < self.dir.user_count()) {
                self.note_fill(i, row, email);
            }
            return user;
        }
        let user = self.resolve_user(row, company, ext, email);
        self.last_identity.set(company, ext, email, user);
        user
    }

    fn resolve_user(
        &mut self,
        row: &EventRow<'_>,
        company: Option<&str>,
        ext: Option<&str>,
        email: Option<&str>,
    ) -> Option<u32> {
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
        // The row's trimmed text for a field the stored user has empty.
        let text = |v: &'_ Option<Loose<'_>>, stored_empty: bool| -> Option<String> {
            if !stored_empty {
                return None;
            }
            v.as_ref()
                .map(|s| s.0.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let name = text(&row.name, u.name_empty);
        let surname = text(&row.surname, u.surname_empty);
        let email = email
            .filter(|_| self.spec.auto_create && self.spec.rules.email_mapped && u.email_empty)
            .map(str::to_string);
        if name.is_none() && surname.is_none() && email.is_none() {
            return;
        }
        let f = self.fills.entry(i).or_insert_with(|| Fill {
            user_id: u.id.to_string(),
            ..Fill::default()
        });
        f.name = f.name.take().or(name);
        f.surname = f.surname.take().or(surname);
        f.email = f.email.take().or(email);
    }

    fn add_row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row = EventRow::parse(raw)?;
        self.add_parsed(row)
    }

    #[inline]
    fn add_parsed(&mut self, row: EventRow<'_>) -> Result<(), RowError> {
        self.rows_read += 1;
        let Some(day) = row.day.and_then(|ms| self.local_day(ms)) else {
            self.skipped.outside_window += 1;
            return Ok(());
        };
        if day < self.spec.window.from || day > self.spec.window.to {
            self.skipped.outside_window += 1;
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
            self.activity_run
                .add(u, day, sums, &mut self.activity, activity_key);
        }
        fn field<'r>(v: &'r Option<Loose<'_>>) -> Option<&'r str> {
            v.as_ref().map(|s| s.0.as_ref())
        }
        let object = match self.spec.target {
            Target::Company => field(&row.company).and_then(|c| self.company_slot(c)),
            Target::Asset => field(&row.asset).and_then(|c| self.dir.asset(c)),
            Target::Project => field(&row.project).and_then(|c| self.dir.project(c)),
            Target::EndUser => user,
        };
        let Some(object) = object else {
            let id = match self.spec.target {
                Target::Company => &row.company,
                Target::Asset => &row.asset,
                Target::Project => &row.project,
                Target::EndUser => &None,
            };
            match (self.spec.target, id) {
                (Target::EndUser, _) => self.skipped.end_user_unmatched += 1,
                (_, Some(id)) if !id.0.is_empty() => self.skipped.not_in_directory += 1,
                _ => self.skipped.no_object_id += 1,
            }
            self.note_unmatched(&row, day, sums.events);
            return Ok(());
        };
        let app = self.app_slot(row.app_id.unwrap_or(0));
        self.value_run
            .add(object, (app, day), sums, &mut self.values, value_key);
        Ok(())
    }

    /// Why a row no object took was not used, and whose it was (off the hot path: only for
    /// such rows).
    fn note_unmatched(&mut self, row: &EventRow<'_>, day: NaiveDate, value: f64) {
        use UnmatchedReason as R;
        fn text<'r>(v: &'r Option<Loose<'_>>) -> Option<&'r str> {
            v.as_ref().map(|s| s.0.trim()).filter(|s| !s.is_empty())
        }
        let company = text(&row.company);
        let user = text(&row.end_user).or(text(&row.email));
        let (reason, id) = match self.spec.target {
            Target::Company => match company {
                Some(c) => (R::CompanyNotInDirectory, c),
                None => (R::NoCompanyId, user.unwrap_or_default()),
            },
            Target::Asset | Target::Project => {
                let id = if self.spec.target == Target::Asset {
                    text(&row.asset)
                } else {
                    text(&row.project)
                };
                match id {
                    Some(id) => (R::NotInDirectory, id),
                    None => (R::NoId, company.unwrap_or_default()),
                }
            }
            Target::EndUser => match (user, company) {
                (Some(u), _) if u.starts_with(ANONYMOUS_PREFIX) => (R::AnonymousVisitor, u),
                (_, None) => (R::NoCompanyId, user.unwrap_or_default()),
                (_, Some(c)) if self.dir.company(c).is_none() => (R::CompanyNotInDirectory, c),
                (None, Some(c)) => (R::NoId, c),
                (Some(u), Some(_)) => (R::EndUserNotFound, u),
            },
        };
        self.unmatched.note(reason, id, day, value);
    }

    /// The directory index of a company, remembered for the next row.
    fn company_slot(&mut self, id: &str) -> Option<u32> {
        match &mut self.last_company {
            Some((last, slot)) if last.as_str() == id => *slot,
            cached => {
                let slot = self.dir.company(id);
                match cached {
                    Some((last, s)) => {
                        last.clear();
                        last.push_str(id);
                        *s = slot;
                    }
                    None => *cached = Some((id.to_string(), slot)),
                }
                slot
            }
        }
    }

    /// Adds the runs kept aside to the maps.
    fn flush_runs(&mut self) {
        self.value_run.flush(&mut self.values, value_key);
        self.activity_run.flush(&mut self.activity, activity_key);
        self.activity.merge();
    }

    /// End users to create before the values can be written.
    pub fn pending_users(&self) -> &[PendingUser] {
        &self.pending
    }

    /// The chunk's records, produced on demand. `created[i]` is the service id of
    /// `pending_users()[i]`.
    pub fn prepare(mut self, created: Vec<String>) -> PreparedChunk<'d> {
        self.flush_runs();
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
            self.acc.dir.user(slot).map(|u| (u.id, u.company_id))
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

    /// Whether the object (or end user) of a slot exists: a slot of the snapshot always does;
    /// a user this chunk creates once it was created.
    fn exists(&self, slot: u32, user: bool) -> bool {
        self.stable(slot, user).is_some() || self.user(slot).is_some()
    }

    /// Values the chunk writes.
    pub fn value_count(&self) -> u64 {
        let per = 1 + u64::from(self.acc.spec.minutes_metric.is_some());
        let users = self.acc.spec.target == Target::EndUser;
        let objects = self
            .acc
            .values
            .keys()
            .filter(|(obj, _, _)| self.exists(*obj, users))
            .count() as u64;
        objects * per
    }

    /// Activity records the chunk writes.
    pub fn activity_count(&self) -> u64 {
        self.acc
            .activity
            .sorted()
            .iter()
            .filter(|((_, slot), _)| self.exists(*slot, true))
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
        self.acc.skipped.total()
    }

    pub fn skipped(&self) -> &SkippedRows {
        &self.acc.skipped
    }

    /// The chunk's unmatched identities, bounded, per day.
    pub fn unmatched(&self) -> Vec<UnmatchedEntry> {
        self.acc.unmatched.entries()
    }
}

impl PreparedChunk<'_> {
    /// The slot of an end user or object in the slot space (the directory snapshot): a user
    /// the chunk creates has a slot of this chunk only.
    fn stable(&self, slot: u32, user: bool) -> Option<u32> {
        (!user || (slot as usize) < self.acc.dir.user_count()).then_some(slot)
    }
}

impl ChunkRecords for PreparedChunk<'_> {
    fn slot_space(&self) -> Option<u64> {
        Some(self.acc.dir.snapshot())
    }

    fn slot_object(&self, slot: u32) -> Option<ObjectRef> {
        Some(ObjectRef {
            kind: self.acc.spec.target,
            id: self.object_id(slot)?.to_string(),
        })
    }

    fn slot_owner(&self, slot: u32) -> Option<(String, String)> {
        self.user(slot)
            .map(|(user, company)| (user.to_string(), company.to_string()))
    }

    fn for_each_value(
        &self,
        text: Text,
        f: &mut dyn FnMut(&MetricValue, Slots) -> Result<(), StoreError>,
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
        // In the store's key order: metric by metric (the events metric of every app, then the
        // minutes metric), each by day, then object (the directory is sorted by id), so a
        // chunk's inserts go to one range of the table per metric.
        let mut entries: Vec<(&ValueKey, &Sums)> = self.acc.values.iter().collect();
        entries.sort_unstable_by_key(|((obj, app, day), _)| (*app, *day, *obj));
        // One record reused: its strings keep their buffers from value to value.
        let mut v = MetricValue {
            object: ObjectRef {
                kind: spec.target,
                id: String::new(),
            },
            metric: String::new(),
            app: String::new(),
            day: spec.window.from,
            value: 0.0,
        };
        // The (metric, app slot) `v` holds.
        let mut current: Option<(bool, u16)> = None;
        let users = spec.target == Target::EndUser;
        for minutes in [false, true] {
            if minutes && spec.minutes_metric.is_none() {
                break;
            }
            for ((obj, app, day), sums) in &entries {
                // A slot of the snapshot is an object that exists; a user this chunk creates may
                // have failed to be created.
                let object = self.stable(*obj, users);
                if object.is_none() || text == Text::Every {
                    let Some(id) = self.object_id(*obj) else {
                        continue;
                    };
                    v.object.id.clear();
                    v.object.id.push_str(id);
                }
                let Some(slot_names) = names.get(*app as usize) else {
                    continue;
                };
                let metric = match (minutes, &slot_names.1) {
                    (false, _) => &slot_names.0,
                    (true, Some(m)) => m,
                    (true, None) => continue,
                };
                if current != Some((minutes, *app)) {
                    current = Some((minutes, *app));
                    v.metric.clone_from(metric);
                    v.app.clear();
                    v.app.push_str(
                        self.acc
                            .app_slots
                            .get(*app as usize)
                            .map_or("", |(k, _)| k.as_str()),
                    );
                }
                v.day = *day;
                v.value = if minutes { sums.minutes } else { sums.events };
                let slots = Slots {
                    object,
                    metric: Some(u32::from(*app) * 2 + u32::from(minutes)),
                };
                f(&v, slots)?;
            }
        }
        Ok(())
    }

    fn for_each_activity(
        &self,
        text: Text,
        f: &mut dyn FnMut(&Activity, Slots) -> Result<(), StoreError>,
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
        // In the store's key order: by day, then end user (as merged).
        for ((day, slot), sums) in self.acc.activity.sorted() {
            let owner = self.stable(*slot, true);
            if owner.is_none() || text == Text::Every {
                let Some((user, company)) = self.user(*slot) else {
                    continue;
                };
                // One record reused: its strings keep their buffers from row to row.
                a.end_user_id.clear();
                a.end_user_id.push_str(user);
                a.company_id.clear();
                a.company_id.push_str(company);
            }
            a.day = *day;
            a.events = sums.events;
            a.minutes = sums.minutes;
            // One label in a chunk.
            let slots = Slots {
                object: owner,
                metric: Some(0),
            };
            f(&a, slots)?;
        }
        Ok(())
    }
}

impl RowSink for ChunkAccumulator<'_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        self.add_row(raw)
    }
    fn row_prefix(&mut self, rest: &[u8]) -> Option<Result<usize, RowError>> {
        let (row, len) = EventRow::parse_prefix(rest)?;
        Some(self.add_parsed(row).map(|()| len))
    }
    fn reset(&mut self) {
        self.values.clear();
        self.activity.clear();
        self.value_run.clear();
        self.activity_run.clear();
        self.last_identity = LastIdentity::default();
        self.last_company = None;
        self.pending.clear();
        self.pending_index.clear();
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
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const DAY_MS: i64 = 86_400_000;

    fn day(offset: u8) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 2).unwrap() + chrono::Days::new(u64::from(offset))
    }

    /// Companies c0..c2; end users u0..u5 (`v{j}` in company `c{j % 3}`).
    fn directory() -> Directory {
        let obj = |id: String| DirectoryObject {
            external_id: id,
            name: None,
            company_id: None,
        };
        let users = (0..6)
            .map(|j| EndUser {
                id: format!("u{j}"),
                company_id: format!("c{}", j % 3),
                external_id: Some(format!("v{j}")),
                email: None,
                name: None,
                surname: None,
            })
            .collect();
        Directory::new(
            (0..3).map(|c| obj(format!("c{c}"))).collect(),
            Vec::new(),
            Vec::new(),
            users,
        )
    }

    fn spec(target: Target) -> TransformSpec {
        TransformSpec {
            mapping_id: MappingId::parse("m").unwrap(),
            target,
            metric: "clicks".into(),
            minutes_metric: Some("minutes".into()),
            multi_app: false,
            passive: false,
            auto_create: false,
            rules: IdentityRules {
                email_mapped: false,
                may_create: false,
            },
            tz: None,
            window: Window {
                from: day(0),
                to: day(3),
            },
            apps: AppsTable::default(),
        }
    }

    /// (company, visitor, day offset, app, events, minutes)
    type Row = (u8, u8, u8, u8, u32, u32);
    /// (object id, metric, day) → value.
    type Values = BTreeMap<(String, String, NaiveDate), f64>;
    /// (end user id, day) → (events, minutes).
    type Activities = BTreeMap<(String, NaiveDate), (f64, f64)>;

    fn json(&(c, v, d, app, e, m): &Row) -> String {
        let ms = (day(d) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() * DAY_MS;
        format!(
            r#"{{"day":{ms},"appId":{app},"company":"c{c}","endUser":"v{v}","numEvents":{e},"numMinutes":{m}}}"#
        )
    }

    /// Every value and activity record of the rows, through the accumulator.
    fn through_accumulator(rows: &[Row], target: Target) -> (Values, Activities) {
        let dir = directory();
        let mut acc = ChunkAccumulator::new(spec(target), &dir);
        for r in rows {
            acc.row(json(r).as_bytes()).unwrap();
        }
        let prepared = acc.prepare(Vec::new());
        let mut values = BTreeMap::new();
        prepared
            .for_each_value(Text::Every, &mut |v, _| {
                let old = values.insert((v.object.id.clone(), v.metric.clone(), v.day), v.value);
                assert!(old.is_none(), "one value per key");
                Ok(())
            })
            .unwrap();
        let mut activity = BTreeMap::new();
        prepared
            .for_each_activity(Text::Every, &mut |a, _| {
                let old = activity.insert((a.end_user_id.clone(), a.day), (a.events, a.minutes));
                assert!(old.is_none(), "one record per key");
                Ok(())
            })
            .unwrap();
        assert_eq!(prepared.value_count(), values.len() as u64);
        assert_eq!(prepared.activity_count(), activity.len() as u64);
        (values, activity)
    }

    #[test]
    fn merged_sums_merge_each_key_into_one_sorted_entry_however_they_come() {
        let mut m = MergedSums::default();
        let s = |events: f64| Sums {
            events,
            minutes: 1.0,
        };
        // 200,000 additions over 50,000 keys in a scrambled order: three merges on the way.
        for i in 0..200_000u32 {
            let k = i.wrapping_mul(7919) % 50_000;
            let key = (k, k % 3);
            m.add_sums(key, s(1.0));
        }
        m.merge();
        let got = m.sorted();
        assert_eq!(got.len(), 50_000);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(got.iter().all(|(_, s)| s.events == 4.0 && s.minutes == 4.0));
        // Bounded: never more than twice the distinct keys (or the first merge's size).
        assert!(m.entries.capacity() <= 4 * 50_000 + FIRST_MERGE);
        m.clear();
        assert!(m.sorted().is_empty());
    }

    proptest! {
        /// Rows in any order, with identities changing or repeating from row to row, give the
        /// plain per-key sums (values per object and day over every app; activity per known
        /// end user and day).
        #[test]
        fn any_row_order_gives_the_plain_sums(
            rows in proptest::collection::vec((0u8..4, 0u8..8, 0u8..4, 0u8..2, 0u32..50, 0u32..10), 0..200)
        ) {
            // A visitor is a known end user only in its own company.
            let user = |c: u8, v: u8| (v < 6 && c == v % 3).then(|| format!("u{v}"));
            for target in [Target::Company, Target::EndUser] {
                let mut want_values = Values::new();
                let mut want_activity = Activities::new();
                for &(c, v, d, _, e, m) in &rows {
                    if let Some(u) = user(c, v) {
                        let a = want_activity.entry((u, day(d))).or_default();
                        a.0 += f64::from(e);
                        a.1 += f64::from(m);
                    }
                    let object = match target {
                        Target::Company => (c < 3).then(|| format!("c{c}")),
                        _ => user(c, v),
                    };
                    if let Some(o) = object {
                        *want_values.entry((o.clone(), "clicks".into(), day(d))).or_default() += f64::from(e);
                        *want_values.entry((o, "minutes".into(), day(d))).or_default() += f64::from(m);
                    }
                }
                let (values, activity) = through_accumulator(&rows, target);
                prop_assert_eq!(&values, &want_values);
                prop_assert_eq!(&activity, &want_activity);
            }
        }
    }

    #[test]
    fn a_visitor_seen_again_after_others_adds_to_its_sums() {
        // v0's rows are split by v1's; the sums are those of all its rows.
        let rows = [
            (0, 0, 0, 0, 3, 1),
            (0, 0, 1, 0, 4, 1),
            (1, 1, 0, 0, 5, 2),
            (0, 0, 0, 1, 6, 2),
        ];
        let (values, activity) = through_accumulator(&rows, Target::EndUser);
        assert_eq!(
            values.get(&("u0".into(), "clicks".into(), day(0))),
            Some(&9.0)
        );
        assert_eq!(
            values.get(&("u0".into(), "minutes".into(), day(0))),
            Some(&3.0)
        );
        assert_eq!(
            values.get(&("u0".into(), "clicks".into(), day(1))),
            Some(&4.0)
        );
        assert_eq!(
            values.get(&("u1".into(), "clicks".into(), day(0))),
            Some(&5.0)
        );
        assert_eq!(values.len(), 6);
        assert_eq!(activity.get(&("u0".into(), day(0))), Some(&(9.0, 3.0)));
        assert_eq!(activity.len(), 3);
    }
}
