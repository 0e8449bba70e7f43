//! Lazy daily activity: every event row is a pure function of
//! (seed, visitor, local date, app, session, page/feature/track type).
//!
//! Nothing here stores rows; [`Subscription::event_rows`] walks local dates × visitors and
//! computes the few rows of each visitor-day on demand, so even the large preset streams.

use chrono::{Datelike, NaiveDate, Weekday};

use super::{Subscription, Tier, Visitor};
use crate::rng::{mix, unit};
use crate::timeutil::{add_days, day_start_ms, hour_start_ms};

/// Which pre-aggregated event source a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventSource {
    /// All activity: one row per visitor × account × app × day × session (remoteIp/userAgent).
    Events,
    /// Tagged pages: adds `pageId`.
    PageEvents,
    /// Tagged features: adds `featureId`.
    FeatureEvents,
    /// Track events: adds `trackTypeId`.
    TrackEvents,
}

impl EventSource {
    /// The id field name of the source's item (`pageId`, …), if any.
    pub fn item_field(self) -> Option<&'static str> {
        match self {
            EventSource::Events => None,
            EventSource::PageEvents => Some("pageId"),
            EventSource::FeatureEvents => Some("featureId"),
            EventSource::TrackEvents => Some("trackTypeId"),
        }
    }
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36 Edg/130.0",
];

/// Server name for rows of an app.
pub fn server_for(app_id: i64) -> &'static str {
    match app_id {
        super::DEFAULT_APP_ID => "app.example.com",
        super::generate::MOBILE_APP_ID => "mobile.example.com",
        _ => "admin.example.com",
    }
}

/// One pre-aggregated event row (serialise with [`EventRow::to_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow<'a> {
    /// Source the row belongs to.
    pub source: EventSource,
    /// Visitor id.
    pub visitor_id: &'a str,
    /// `None` ⇒ no `accountId` field; `Some("")` ⇒ empty (anonymous visitors).
    pub account_id: Option<&'a str>,
    /// App id.
    pub app_id: i64,
    /// Local date of the row.
    pub date: NaiveDate,
    /// Epoch ms of local midnight of `date`.
    pub day: i64,
    /// Epoch ms of the local hour start of the session.
    pub hour: i64,
    /// `pageId` / `featureId` / `trackTypeId` (None for `events`).
    pub item_id: Option<&'a str>,
    /// Event count.
    pub num_events: u64,
    /// Minutes with activity.
    pub num_minutes: u64,
    /// Client IP of the session.
    pub remote_ip: String,
    /// User agent of the session.
    pub user_agent: &'static str,
    /// Server name.
    pub server: &'static str,
    /// First event time (ms).
    pub first_time: i64,
    /// Last event time (ms).
    pub last_time: i64,
}

/// One session of a visitor in an app on a day: its index and local start hour.
pub(super) struct Session {
    pub(super) index: u64,
    pub(super) hour: u32,
}

pub(super) fn date_key(d: NaiveDate) -> u64 {
    d.num_days_from_ce() as u64
}

fn tier_params(t: Tier) -> (f64, f64, u64, u64) {
    // (weekday activity probability, item-use factor, max count per item, session spread)
    match t {
        Tier::Light => (0.16, 0.7, 3, 2),
        Tier::Medium => (0.45, 1.0, 5, 3),
        Tier::Heavy => (0.88, 1.3, 12, 3),
    }
}

fn minutes_for(count: u64) -> u64 {
    1 + count / 3
}

/// Hash tags of the three item kinds (pages 1, features 2, track types 3) in a session.
const PAGE_TAG: u64 = 1;
const FEATURE_TAG: u64 = 2;
const TRACK_TAG: u64 = 3;

/// How many times a session uses an item (0 = not at all): the item kind's `tag`, the item's
/// index `gi` among all items of its kind, its popularity and the visitor tier's factor and
/// maximum count.
fn item_use(base: u64, tag: u64, gi: usize, pop: f64, factor: f64, max_count: u64) -> u64 {
    let h = mix(&[base, tag, gi as u64]);
    if unit(h) < pop * factor {
        1 + (h >> 7) % max_count
    } else {
        0
    }
}

/// Client IP of a visitor's session in an app.
pub(super) fn session_ip(v: &Visitor, app_id: i64, session: u64) -> String {
    format!(
        "10.{}.{}.{}",
        (u64::from(v.index) >> 8) % 256,
        u64::from(v.index) % 256,
        10 + session + (app_id.rem_euclid(7) as u64) * 10
    )
}

/// User agent of a visitor's session.
pub(super) fn session_user_agent(v: &Visitor, session: u64) -> &'static str {
    USER_AGENTS[(u64::from(v.index) + session) as usize % USER_AGENTS.len()]
}

/// Where an item row happens: the visitor, its account field, the app, the local date and its
/// midnight (ms).
#[derive(Clone, Copy)]
struct RowPlace<'a> {
    source: EventSource,
    v: &'a Visitor,
    account_id: Option<&'a str>,
    app_id: i64,
    date: NaiveDate,
    day: i64,
}

/// The row of one item used `count` times in session `session` (hash `base`) starting at local
/// hour `hour` (ms).
fn item_row<'a>(
    at: RowPlace<'a>,
    session: u64,
    base: u64,
    hour: i64,
    id: &'a str,
    count: u64,
) -> EventRow<'a> {
    let minutes = minutes_for(count);
    let first_time = session_first_time(hour, base);
    EventRow {
        source: at.source,
        visitor_id: &at.v.id,
        account_id: at.account_id,
        app_id: at.app_id,
        date: at.date,
        day: at.day,
        hour,
        item_id: Some(id),
        num_events: count,
        num_minutes: minutes,
        remote_ip: session_ip(at.v, at.app_id, session),
        user_agent: session_user_agent(at.v, session),
        server: server_for(at.app_id),
        first_time,
        last_time: first_time + (minutes as i64 - 1) * 60_000,
    }
}

/// First event time (ms) of a session starting at local hour `hour` (ms).
pub(super) fn session_first_time(hour: i64, base: u64) -> i64 {
    hour + ((base % 30) as i64) * 60_000
}

impl Subscription {
    /// Whether the visitor has any activity on `date` (any app).
    pub fn visitor_active_on(&self, v: &Visitor, date: NaiveDate) -> bool {
        if date < v.start.max(self.first_date) || date > v.end.min(self.last_date) {
            return false;
        }
        let (base, _, _, _) = tier_params(v.tier);
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let wk = match (weekend, v.tier) {
            (false, _) => 1.0,
            (true, Tier::Heavy) => 0.35,
            (true, _) => 0.2,
        };
        let acct = v.account.map(|a| self.accounts[a].activity).unwrap_or(1.0);
        let p = (base * wk * acct).min(0.97);
        unit(mix(&[self.seed, 101, u64::from(v.index), date_key(date)])) < p
    }

    /// The visitor's sessions in an app on a date (none when not active there).
    pub(super) fn sessions(&self, v: &Visitor, date: NaiveDate, app_id: i64) -> Vec<Session> {
        if !v.apps.contains(&app_id) || !self.visitor_active_on(v, date) {
            return Vec::new();
        }
        let dk = date_key(date);
        let primary = v.apps.first() == Some(&app_id);
        let app_key = app_id as u64;
        if !primary && unit(mix(&[self.seed, 102, u64::from(v.index), dk, app_key])) >= 0.6 {
            return Vec::new();
        }
        let (_, _, _, spread) = tier_params(v.tier);
        let h = mix(&[self.seed, 103, u64::from(v.index), dk, app_key]);
        let n = if v.tier == Tier::Heavy {
            2 + h % spread
        } else {
            1 + h % spread
        };
        (0..n)
            .map(|s| Session {
                index: s,
                hour: 8 + (mix(&[h, s, 1]) % 11) as u32,
            })
            .collect()
    }

    /// The hash every row of one session derives from.
    pub(super) fn session_base(&self, v: &Visitor, dk: u64, app_id: i64, session: u64) -> u64 {
        mix(&[
            self.seed,
            104,
            u64::from(v.index),
            dk,
            app_id as u64,
            session,
        ])
    }

    /// First and last event time (ms) of a visitor on a date, if active.
    pub fn visit_bounds(&self, v: &Visitor, date: NaiveDate) -> Option<(i64, i64)> {
        let mut rows = Vec::new();
        self.visitor_day_rows(v, date, EventSource::Events, &v.apps, None, &mut rows);
        let first = rows.iter().map(|r| r.first_time).min()?;
        let last = rows.iter().map(|r| r.last_time).max()?;
        Some((first, last))
    }

    /// Append the rows of one visitor-day for `source`, restricted to `apps` and optionally
    /// one item id. Order: app (as in `apps`), session, item definition order.
    pub fn visitor_day_rows<'a>(
        &'a self,
        v: &'a Visitor,
        date: NaiveDate,
        source: EventSource,
        apps: &[i64],
        item: Option<&str>,
        out: &mut Vec<EventRow<'a>>,
    ) {
        if !self.visitor_active_on(v, date) {
            return;
        }
        let tz = self.timezone;
        let day = day_start_ms(tz, date);
        let dk = date_key(date);
        let (_, factor, max_count, _) = tier_params(v.tier);
        let account_id = match v.account {
            Some(a) => Some(self.accounts[a].id.as_str()),
            None if v.omit_account_field => None,
            None => Some(""),
        };
        for &app_id in apps {
            let sessions = self.sessions(v, date, app_id);
            if sessions.is_empty() {
                continue;
            }
            for s in sessions {
                let base = self.session_base(v, dk, app_id, s.index);
                let hour = hour_start_ms(tz, date, s.hour);
                let first_time = session_first_time(hour, base);
                let at = RowPlace {
                    source,
                    v,
                    account_id,
                    app_id,
                    date,
                    day,
                };
                let mut total = 0u64;
                let emit = |id: &'a str, count: u64, out: &mut Vec<EventRow<'a>>| {
                    out.push(item_row(at, s.index, base, hour, id, count));
                };
                let pages = self
                    .pages
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.app_id == app_id);
                let use_count =
                    |tag: u64, gi: usize, pop: f64| item_use(base, tag, gi, pop, factor, max_count);
                for (gi, p) in pages {
                    let c = use_count(PAGE_TAG, gi, p.popularity);
                    total += c;
                    if c > 0 && source == EventSource::PageEvents && item.is_none_or(|i| i == p.id)
                    {
                        emit(&p.id, c, out);
                    }
                }
                let feats = self
                    .features
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.app_id == app_id);
                for (gi, f) in feats {
                    let c = use_count(FEATURE_TAG, gi, f.popularity);
                    total += c;
                    if c > 0
                        && source == EventSource::FeatureEvents
                        && item.is_none_or(|i| i == f.id)
                    {
                        emit(&f.id, c, out);
                    }
                }
                let tracks = self
                    .track_types
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.app_id == app_id);
                for (gi, t) in tracks {
                    let c = use_count(TRACK_TAG, gi, t.popularity);
                    total += c;
                    if c > 0 && source == EventSource::TrackEvents && item.is_none_or(|i| i == t.id)
                    {
                        emit(&t.id, c, out);
                    }
                }
                if source == EventSource::Events {
                    let n = (total + (base >> 40) % 4).max(1);
                    let minutes = (1 + n / 2).min(60);
                    out.push(EventRow {
                        source,
                        visitor_id: &v.id,
                        account_id,
                        app_id,
                        date,
                        day,
                        hour,
                        item_id: None,
                        num_events: n,
                        num_minutes: minutes,
                        remote_ip: session_ip(v, app_id, s.index),
                        user_agent: session_user_agent(v, s.index),
                        server: server_for(app_id),
                        first_time,
                        last_time: first_time + (minutes as i64 - 1) * 60_000,
                    });
                }
            }
        }
    }

    /// Lazily iterate the raw rows of `source` for `apps` over local dates `first..=last`
    /// (clamped to the history), optionally restricted to one page/feature/track type id.
    /// Order: date, visitor, app, session, item.
    pub fn event_rows<'a>(
        &'a self,
        source: EventSource,
        apps: &'a [i64],
        first: NaiveDate,
        last: NaiveDate,
        item: Option<&'a str>,
    ) -> impl Iterator<Item = EventRow<'a>> + 'a {
        let first = first.max(self.first_date);
        let last = last.min(self.last_date);
        let ndays = if last >= first {
            (last - first).num_days() + 1
        } else {
            0
        };
        (0..ndays).flat_map(move |i| {
            let date = add_days(first, i);
            self.visitors.iter().flat_map(move |v| {
                let mut rows = Vec::new();
                self.visitor_day_rows(v, date, source, apps, item, &mut rows);
                rows
            })
        })
    }
}

/// One page, feature or track type a per-item walk counts: its id, app, index among all items
/// of its kind (`gi`, hashed) and popularity.
#[derive(Debug, Clone, Copy)]
struct ItemDef<'a> {
    id: &'a str,
    app_id: i64,
    gi: usize,
    popularity: f64,
}

impl Subscription {
    /// The items of `source` whose id is `id`, in definition order (none for `events`).
    fn item_defs<'a>(&'a self, source: EventSource, id: &str) -> (u64, Vec<ItemDef<'a>>) {
        let pick = |gi: usize, item_id: &'a str, app_id: i64, popularity: f64| {
            (item_id == id).then_some(ItemDef {
                id: item_id,
                app_id,
                gi,
                popularity,
            })
        };
        match source {
            EventSource::Events => (0, Vec::new()),
            EventSource::PageEvents => (
                PAGE_TAG,
                (self.pages.iter().enumerate())
                    .filter_map(|(gi, p)| pick(gi, &p.id, p.app_id, p.popularity))
                    .collect(),
            ),
            EventSource::FeatureEvents => (
                FEATURE_TAG,
                (self.features.iter().enumerate())
                    .filter_map(|(gi, f)| pick(gi, &f.id, f.app_id, f.popularity))
                    .collect(),
            ),
            EventSource::TrackEvents => (
                TRACK_TAG,
                (self.track_types.iter().enumerate())
                    .filter_map(|(gi, t)| pick(gi, &t.id, t.app_id, t.popularity))
                    .collect(),
            ),
        }
    }

    /// The rows of one page, feature or track type: exactly the rows, in the same order, of
    /// `event_rows(source, apps, first, last, Some(item))`, generated from the seed for that
    /// item alone. Where the generic walk computes every item of every session of every
    /// visitor-day (and a row's time zone conversions and strings up front), this one decides,
    /// per visitor-day, only the item's app's sessions and the item's use in each, and builds
    /// a row only where the item was used. Local midnight and session hours are converted once
    /// per date. No rows for `events` or an unknown id.
    pub fn item_event_rows<'a>(
        &'a self,
        source: EventSource,
        apps: &'a [i64],
        first: NaiveDate,
        last: NaiveDate,
        item: &str,
    ) -> impl Iterator<Item = EventRow<'a>> + 'a {
        let (tag, defs) = self.item_defs(source, item);
        // The walk's apps in request order (repeats included, as the generic walk repeats
        // them), each with the matching items of that app.
        let plan: Vec<(i64, Vec<ItemDef<'a>>)> = apps
            .iter()
            .filter_map(|&app| {
                let here: Vec<ItemDef<'a>> =
                    defs.iter().copied().filter(|d| d.app_id == app).collect();
                (!here.is_empty()).then_some((app, here))
            })
            .collect();
        let first = first.max(self.first_date);
        let last = last.min(self.last_date);
        let ndays = if plan.is_empty() || last < first {
            0
        } else {
            (last - first).num_days() + 1
        };
        let tz = self.timezone;
        (0..ndays).flat_map(move |i| {
            let date = add_days(first, i);
            let day = day_start_ms(tz, date);
            let dk = date_key(date);
            // Sessions start at local hours 8..=18.
            let hours: Vec<i64> = (0..24).map(|h| hour_start_ms(tz, date, h)).collect();
            let plan = plan.clone();
            self.visitors.iter().flat_map(move |v| {
                let mut rows = Vec::new();
                if !plan.iter().any(|(app, _)| v.apps.contains(app)) {
                    return rows;
                }
                let (_, factor, max_count, _) = tier_params(v.tier);
                let account_id = match v.account {
                    Some(a) => Some(self.accounts[a].id.as_str()),
                    None if v.omit_account_field => None,
                    None => Some(""),
                };
                for (app_id, items) in &plan {
                    let at = RowPlace {
                        source,
                        v,
                        account_id,
                        app_id: *app_id,
                        date,
                        day,
                    };
                    for s in self.sessions(v, date, *app_id) {
                        let base = self.session_base(v, dk, *app_id, s.index);
                        for d in items {
                            let c = item_use(base, tag, d.gi, d.popularity, factor, max_count);
                            if c > 0 {
                                let hour = hours[s.hour.min(23) as usize];
                                rows.push(item_row(at, s.index, base, hour, d.id, c));
                            }
                        }
                    }
                }
                rows
            })
        })
    }
}
