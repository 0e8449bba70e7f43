//! The hot path: Feature/Page event rows (raw JSON bytes) → per-object, per-day values and
//! per-user activity, aggregated in memory keyed by small integers. No I/O here.
//!
//! This module reads the rows ([`ChunkAccumulator`]); `sums` holds the sums they add to, and
//! `prepared` the chunk they make, as a store reads it ([`PreparedChunk`]).

mod prepared;
mod shared;
mod sums;
#[cfg(test)]
mod tests;

pub use prepared::PreparedChunk;
pub use shared::SharedSink;
use sums::{MergedSums, Run, Sums};

use super::identity::{Directory, IdentityRules, UserMatch};
use super::unmatched::{UnmatchedReason, UnmatchedTally};
use crate::domain::EndUserInput;
use crate::domain::Window;
use crate::domain::{AppsTable, MappingId, SkippedRows, Target};

/// The prefix of Pendo's anonymous visitor ids.
pub const ANONYMOUS_PREFIX: &str = "_PENDO_T_";
use crate::pendo::{RowError, RowSink};
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

impl Fill {
    /// Notes what a row fills in on end user `slot` (`user_id`): each field keeps the first
    /// value a row gave it; a row with nothing to fill in adds no entry.
    pub(crate) fn note<S: std::hash::BuildHasher>(
        fills: &mut std::collections::HashMap<u32, Fill, S>,
        slot: u32,
        user_id: &str,
        name: Option<String>,
        surname: Option<String>,
        email: Option<String>,
    ) {
        if name.is_none() && surname.is_none() && email.is_none() {
            return;
        }
        let f = fills.entry(slot).or_insert_with(|| Fill {
            user_id: user_id.to_string(),
            ..Fill::default()
        });
        f.name = f.name.take().or(name);
        f.surname = f.surname.take().or(surname);
        f.email = f.email.take().or(email);
    }
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
        Fill::note(&mut self.fills, i, u.id, name, surname, email);
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
            Target::Company => match (company, user) {
                (Some(c), _) => (R::CompanyNotInDirectory, c),
                // An anonymous visitor is its own reason on every target: no company id
                // could ever be added for it.
                (None, Some(u)) if u.starts_with(ANONYMOUS_PREFIX) => (R::AnonymousVisitor, u),
                (None, u) => (R::NoCompanyId, u.unwrap_or_default()),
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
