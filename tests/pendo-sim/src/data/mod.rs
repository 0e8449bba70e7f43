//! The generated subscription: apps, pages, features, track types, guides (with their polls),
//! segments, accounts, visitors and saved reports. Event rows are never stored; see
//! [`activity`] and, for guide and poll events, [`guides`].

pub mod activity;
pub mod generate;
pub mod guides;
pub mod json;
pub mod reports;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use chrono_tz::Tz;

pub use activity::{EventRow, EventSource};
pub use guides::{GuideEventType, GuideFilter, GuideRow, GuideSource, PollAnswer};

/// The default app id of the subscription (Pendo's classic web app id).
pub const DEFAULT_APP_ID: i64 = -323232;

/// An application of the subscription.
#[derive(Debug, Clone)]
pub struct App {
    /// App id (`-323232` for the default app, large positive ids for the others).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// `"web"`, `"ios"`, …
    pub platform: String,
}

/// A tagged page.
#[derive(Debug, Clone)]
pub struct Page {
    /// Page id.
    pub id: String,
    /// Owning app.
    pub app_id: i64,
    /// Display name.
    pub name: String,
    /// Whether the page is a Core Event (used by PES adoption).
    pub is_core_event: bool,
    /// Per-session probability scale of using the page.
    pub popularity: f64,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A tagged feature (lives on a page).
#[derive(Debug, Clone)]
pub struct Feature {
    /// Feature id.
    pub id: String,
    /// Owning app.
    pub app_id: i64,
    /// Page the feature lives on.
    pub page_id: String,
    /// Display name.
    pub name: String,
    /// Whether the feature is a Core Event.
    pub is_core_event: bool,
    /// Per-session probability scale of using the feature.
    pub popularity: f64,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A track event type.
#[derive(Debug, Clone)]
pub struct TrackType {
    /// Track type id.
    pub id: String,
    /// Owning app.
    pub app_id: i64,
    /// Event name.
    pub name: String,
    /// Whether it is a Core Event.
    pub is_core_event: bool,
    /// Per-session probability scale.
    pub popularity: f64,
}

/// The kind of a poll, as Pendo's `attributes.type` of the poll names it (**assumed** strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PollKind {
    /// The 0–10 rating of an NPS survey (`"NPSRating"`).
    NpsRating,
    /// The free-text reason of an NPS survey (`"NPSReason"`).
    NpsReason,
    /// A yes/no question (`"PositiveNegative"`; responses `"yes"` / `"no"`).
    YesNo,
    /// A 1–5 number scale (`"NumberScale"`).
    NumberScale,
}

impl PollKind {
    /// The poll's `attributes.type` (and a poll row's `pollType`).
    pub fn as_str(self) -> &'static str {
        match self {
            PollKind::NpsRating => "NPSRating",
            PollKind::NpsReason => "NPSReason",
            PollKind::YesNo => "PositiveNegative",
            PollKind::NumberScale => "NumberScale",
        }
    }
}

/// A poll of a guide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// Poll id.
    pub id: String,
    /// Kind of question.
    pub kind: PollKind,
    /// Question text.
    pub question: String,
}

/// A guide (in-app message, walkthrough or survey).
#[derive(Debug, Clone)]
pub struct Guide {
    /// Guide id.
    pub id: String,
    /// Owning app.
    pub app_id: i64,
    /// Display name.
    pub name: String,
    /// `"public"` (every seeded guide is live).
    pub state: String,
    /// Whether the guide has several steps (a walkthrough).
    pub multi_step: bool,
    /// Step ids, in order.
    pub steps: Vec<String>,
    /// Polls of the guide (all on its only step; none for tours and announcements).
    pub polls: Vec<Poll>,
    /// Probability that a visitor active in the guide's app on a day sees the guide that day.
    pub popularity: f64,
    /// URL of the page the guide shows on (guide and poll rows' `url`).
    pub url: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// How a segment's membership is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentRule {
    /// Accounts whose `metadata.custom.plan` equals the value; visitors whose account is in it.
    AccountPlan(String),
    /// Visitors whose `metadata.custom.role` equals the value; accounts with at least one such visitor.
    VisitorRole(String),
}

/// A saved segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Segment id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description (states the rule in words).
    pub description: String,
    /// Membership rule.
    pub rule: SegmentRule,
    /// Member visitor ids.
    pub visitors: BTreeSet<String>,
    /// Member account ids.
    pub accounts: BTreeSet<String>,
}

/// An account (customer company).
#[derive(Debug, Clone)]
pub struct Account {
    /// Account id.
    pub id: String,
    /// `metadata.agent.name`.
    pub name: String,
    /// `metadata.custom.plan`: "free", "pro" or "enterprise".
    pub plan: String,
    /// `metadata.custom.assetid`.
    pub asset_id: String,
    /// `metadata.custom.region`.
    pub region: String,
    /// First local date with possible activity (accounts may start mid-history).
    pub start: NaiveDate,
    /// Last local date with possible activity (churned accounts stop mid-history).
    pub end: NaiveDate,
    /// Activity multiplier of the account's visitors.
    pub activity: f64,
    /// `metadata.auto.firstvisit`: earliest first visit of its visitors.
    pub first_visit: Option<i64>,
    /// `metadata.auto.lastvisit`: latest last visit of its visitors.
    pub last_visit: Option<i64>,
}

/// Usage intensity of a visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Most users: active on a minority of days.
    Light,
    /// Regular users.
    Medium,
    /// A few power users, active nearly every weekday with many events.
    Heavy,
}

/// A visitor (end user).
#[derive(Debug, Clone)]
pub struct Visitor {
    /// Position in `Subscription::visitors` (used in hashing).
    pub index: u32,
    /// Visitor id (`_PENDO_T_…` for anonymous visitors).
    pub id: String,
    /// Index of the visitor's account (None for anonymous visitors).
    pub account: Option<usize>,
    /// Anonymous visitors have no agent/custom metadata and no account.
    pub anonymous: bool,
    /// `metadata.agent.email` (may be missing).
    pub email: Option<String>,
    /// `metadata.agent.firstname` (may be missing).
    pub first_name: Option<String>,
    /// `metadata.agent.lastname` (may be missing).
    pub last_name: Option<String>,
    /// `metadata.custom.projectid` (None for anonymous visitors).
    pub project_id: Option<String>,
    /// `metadata.custom.role` ("admin", "member", "viewer").
    pub role: Option<String>,
    /// Usage intensity.
    pub tier: Tier,
    /// Apps this visitor uses (sorted ascending).
    pub apps: Vec<i64>,
    /// First possible active local date.
    pub start: NaiveDate,
    /// Last possible active local date.
    pub end: NaiveDate,
    /// Accounts-row behaviour for anonymous rows: true ⇒ `accountId` field missing, false ⇒ `""`.
    pub omit_account_field: bool,
    /// `metadata.auto.firstvisit` (ms of the first event in history), if any activity.
    pub first_visit: Option<i64>,
    /// `metadata.auto.lastvisit` (ms of the last event in history), if any activity.
    pub last_visit: Option<i64>,
}

/// The whole generated subscription (immutable after construction).
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Seed the data was generated from.
    pub seed: u64,
    /// Subscription time zone.
    pub timezone: Tz,
    /// First local date of history.
    pub first_date: NaiveDate,
    /// Last local date of history (local date of the initial `now`).
    pub last_date: NaiveDate,
    /// Apps; the first is the default app.
    pub apps: Vec<App>,
    /// Pages of all apps.
    pub pages: Vec<Page>,
    /// Features of all apps.
    pub features: Vec<Feature>,
    /// Track types of all apps.
    pub track_types: Vec<TrackType>,
    /// Guides of all apps.
    pub guides: Vec<Guide>,
    /// Segments.
    pub segments: Vec<Segment>,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Visitors.
    pub visitors: Vec<Visitor>,
    /// Saved reports (full JSON objects as served by `GET /api/v1/report`).
    pub reports: Vec<serde_json::Value>,
    pub(crate) visitor_index: BTreeMap<String, usize>,
    pub(crate) account_index: BTreeMap<String, usize>,
}

/// Ids most popular first (ties by id).
fn by_popularity<'a>(items: impl Iterator<Item = (f64, &'a String)>) -> Vec<String> {
    let mut v: Vec<(f64, &String)> = items.collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    v.into_iter().map(|(_, id)| id.clone()).collect()
}

impl Subscription {
    /// The ids of an app's features, most popular first (ties by id).
    pub fn popular_features(&self, app_id: i64) -> Vec<String> {
        by_popularity(
            self.features
                .iter()
                .filter(|f| f.app_id == app_id)
                .map(|f| (f.popularity, &f.id)),
        )
    }

    /// The ids of an app's pages, most popular first (ties by id).
    pub fn popular_pages(&self, app_id: i64) -> Vec<String> {
        by_popularity(
            self.pages
                .iter()
                .filter(|p| p.app_id == app_id)
                .map(|p| (p.popularity, &p.id)),
        )
    }

    /// All app ids in subscription order.
    pub fn app_ids(&self) -> Vec<i64> {
        self.apps.iter().map(|a| a.id).collect()
    }

    /// Look up a visitor by id.
    pub fn visitor(&self, id: &str) -> Option<&Visitor> {
        self.visitor_index.get(id).map(|i| &self.visitors[*i])
    }

    /// Look up an account by id.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.account_index.get(id).map(|i| &self.accounts[*i])
    }

    /// The account id of a visitor (None for anonymous visitors).
    pub fn account_id_of(&self, v: &Visitor) -> Option<&str> {
        v.account.map(|i| self.accounts[i].id.as_str())
    }

    /// Look up a guide by id.
    pub fn guide(&self, id: &str) -> Option<&Guide> {
        self.guides.iter().find(|g| g.id == id)
    }

    /// The guide owning a step id.
    pub fn guide_of_step(&self, step_id: &str) -> Option<&Guide> {
        self.guides
            .iter()
            .find(|g| g.steps.iter().any(|s| s == step_id))
    }

    /// The guide owning a poll id.
    pub fn guide_of_poll(&self, poll_id: &str) -> Option<&Guide> {
        self.guides
            .iter()
            .find(|g| g.polls.iter().any(|p| p.id == poll_id))
    }

    /// Look up a segment by id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// Whether a visitor id is a member of a segment.
    pub fn visitor_in_segment(&self, segment: &Segment, visitor_id: &str) -> bool {
        segment.visitors.contains(visitor_id)
    }

    /// Whether an account id is a member of a segment.
    pub fn account_in_segment(&self, segment: &Segment, account_id: &str) -> bool {
        segment.accounts.contains(account_id)
    }

    /// Look up a saved report by id.
    pub fn report(&self, id: &str) -> Option<&serde_json::Value> {
        self.reports
            .iter()
            .find(|r| r.get("id").and_then(|v| v.as_str()) == Some(id))
    }

    /// Core-event ids (pages, features, track types) of one app, in definition order.
    pub fn core_event_ids(&self, app_id: i64) -> Vec<(EventSource, String)> {
        let mut out = Vec::new();
        for p in self
            .pages
            .iter()
            .filter(|p| p.app_id == app_id && p.is_core_event)
        {
            out.push((EventSource::PageEvents, p.id.clone()));
        }
        for f in self
            .features
            .iter()
            .filter(|f| f.app_id == app_id && f.is_core_event)
        {
            out.push((EventSource::FeatureEvents, f.id.clone()));
        }
        for t in self
            .track_types
            .iter()
            .filter(|t| t.app_id == app_id && t.is_core_event)
        {
            out.push((EventSource::TrackEvents, t.id.clone()));
        }
        out
    }
}
