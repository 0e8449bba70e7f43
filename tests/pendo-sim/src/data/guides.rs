//! Lazy guide and poll events: every row is a pure function of (seed, visitor, local date,
//! guide), like the event rows of [`super::activity`]. Nothing is stored.
//!
//! A visitor active in a guide's app on a day (at least one session there) sees the guide that
//! day with the guide's `popularity`, during one of those sessions (its `remoteIp` and
//! `userAgent`). A seen guide is walked step by step: `guideSeen` of step k, a few seconds later
//! `guideAdvanced` (step k + 1 is seen a few seconds after that; on the last step the visitor
//! finished the guide) or `guideDismissed` (the walk stops) or, rarely, nothing (the visitor
//! navigated away). On some days the visitor sees the guide twice: a first showing of step 1,
//! mostly dismissed, then the walk 40 minutes to 3 hours later. A guide with polls has one step:
//! the visitor answers (one `pollResponse` row per poll answered, then `guideAdvanced` as the
//! submit) or dismisses it; an NPS guide's reason poll is answered on half of the days its
//! rating is. Answers lean on a per-account satisfaction, so accounts differ in their mix of NPS
//! promoters, passives and detractors.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::activity::{date_key, server_for, session_first_time, session_ip, session_user_agent};
use super::{Guide, Poll, PollKind, Subscription, Visitor};
use crate::rng::{mix, unit, Rng};
use crate::timeutil::{add_days, day_start_ms, hour_start_ms};

/// Hash tags of guide decisions (activity uses 101–104).
const GUIDE_TAG: u64 = 201;
const SATISFACTION_TAG: u64 = 202;
const GEO_TAG: u64 = 203;

/// Probability that a visitor shown a guide with polls answers it (on the last showing).
const ANSWER_RATE: f64 = 0.55;
/// Probability that a visitor answering a guide's first poll answers each further poll (an NPS
/// guide's reason).
const FURTHER_POLL_RATE: f64 = 0.5;
/// Probability that a visitor seeing a guide on a day sees it twice.
const TWICE_RATE: f64 = 0.12;

/// Which raw guide source a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuideSource {
    /// `guideEvents`: `guideSeen`, `guideAdvanced`, `guideDismissed` rows.
    GuideEvents,
    /// `pollEvents`: `pollResponse` rows.
    PollEvents,
}

/// The `type` of a guide or poll row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuideEventType {
    /// A step was shown (`guideSeen`).
    Seen,
    /// The visitor went on from a step; on the last step, finished the guide (`guideAdvanced`).
    Advanced,
    /// The visitor closed the guide at a step (`guideDismissed`).
    Dismissed,
    /// A poll answer (`pollResponse`, `pollEvents` only).
    PollResponse,
}

impl GuideEventType {
    /// The row's `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            GuideEventType::Seen => "guideSeen",
            GuideEventType::Advanced => "guideAdvanced",
            GuideEventType::Dismissed => "guideDismissed",
            GuideEventType::PollResponse => "pollResponse",
        }
    }
}

/// A poll row's `pollResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAnswer {
    /// An NPS rating (0–10) or a number-scale answer (1–5): a JSON number.
    Number(u64),
    /// A free-text NPS reason, or `"yes"` / `"no"`.
    Text(&'static str),
}

impl PollAnswer {
    /// As JSON.
    pub fn to_json(self) -> Value {
        match self {
            PollAnswer::Number(n) => Value::from(n),
            PollAnswer::Text(s) => Value::from(s),
        }
    }
}

/// One raw guide or poll event (serialise with [`GuideRow::to_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GuideRow<'a> {
    /// Visitor id.
    pub visitor_id: &'a str,
    /// `None` ⇒ no `accountId` field; `Some("")` ⇒ empty (anonymous visitors), as event rows.
    pub account_id: Option<&'a str>,
    /// App id (the guide's app).
    pub app_id: i64,
    /// Local date of `browser_time`.
    pub date: NaiveDate,
    /// Event time (ms).
    pub browser_time: i64,
    /// Event type.
    pub event: GuideEventType,
    /// Guide id.
    pub guide_id: &'a str,
    /// Step id.
    pub step_id: &'a str,
    /// Page URL the guide showed on.
    pub url: &'a str,
    /// Client IP (of the session the guide showed in).
    pub remote_ip: String,
    /// Server name of the app.
    pub server_name: &'static str,
    /// User agent (of the session).
    pub user_agent: &'static str,
    /// ISO country code.
    pub country: &'static str,
    /// Region code within the country.
    pub region: &'static str,
    /// Guide load time (ms) on `guideSeen` rows, 0 on the others.
    pub load_time: u64,
    /// Poll rows: the poll and the answer.
    pub poll: Option<(&'a Poll, PollAnswer)>,
}

impl GuideRow<'_> {
    /// The row as JSON (poll rows add `pollId`, `pollType`, `pollResponse`).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(a) = self.account_id {
            m.insert("accountId".into(), Value::from(a));
        }
        m.insert("appId".into(), Value::from(self.app_id));
        m.insert("browserTime".into(), Value::from(self.browser_time));
        m.insert("country".into(), Value::from(self.country));
        m.insert("guideId".into(), Value::from(self.guide_id));
        m.insert("guideStepId".into(), Value::from(self.step_id));
        m.insert("loadTime".into(), Value::from(self.load_time));
        if let Some((p, answer)) = self.poll {
            m.insert("pollId".into(), Value::from(p.id.as_str()));
            m.insert("pollResponse".into(), answer.to_json());
            m.insert("pollType".into(), Value::from(p.kind.as_str()));
        }
        m.insert("region".into(), Value::from(self.region));
        m.insert("remoteIp".into(), Value::from(self.remote_ip.as_str()));
        m.insert("serverName".into(), Value::from(self.server_name));
        m.insert("type".into(), Value::from(self.event.as_str()));
        m.insert("url".into(), Value::from(self.url));
        m.insert("userAgent".into(), Value::from(self.user_agent));
        m.insert("visitorId".into(), Value::from(self.visitor_id));
        Value::Object(m)
    }
}

/// Restrictions of a guide source (`guideId`, `guideStepId`, `pollId`); `None` = any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuideFilter<'a> {
    /// Only this guide's rows.
    pub guide: Option<&'a str>,
    /// Only rows of this step.
    pub step: Option<&'a str>,
    /// Only responses to this poll.
    pub poll: Option<&'a str>,
}

impl GuideFilter<'_> {
    /// Whether a guide may have rows under the filter.
    fn admits(&self, g: &Guide) -> bool {
        self.guide.is_none_or(|id| id == g.id)
            && self.step.is_none_or(|s| g.steps.iter().any(|x| x == s))
            && self.poll.is_none_or(|p| g.polls.iter().any(|x| x.id == p))
    }

    /// Whether the filter keeps a row.
    fn keeps(&self, r: &GuideRow<'_>) -> bool {
        self.guide.is_none_or(|id| id == r.guide_id)
            && self.step.is_none_or(|s| s == r.step_id)
            && self
                .poll
                .is_none_or(|p| r.poll.is_some_and(|(x, _)| x.id == p))
    }
}

/// The times of one local date: its key, midnight, next midnight and hour starts.
struct DayTimes {
    date: NaiveDate,
    dk: u64,
    end: i64,
    hours: Vec<i64>,
}

impl DayTimes {
    fn new(sub: &Subscription, date: NaiveDate) -> Self {
        let tz = sub.timezone;
        DayTimes {
            date,
            dk: date_key(date),
            end: day_start_ms(tz, add_days(date, 1)),
            hours: (0..24).map(|h| hour_start_ms(tz, date, h)).collect(),
        }
    }
}

/// Scores of detractors (0–6), weighted towards the upper end.
const DETRACTOR_SCORES: [u64; 12] = [0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 6];
const PROMOTER_REASONS: &[&str] = &[
    "Saves our team hours every week",
    "The dashboards are exactly what we need",
    "Great support team",
];
const PASSIVE_REASONS: &[&str] = &[
    "Good overall, but reports load slowly",
    "Does the job; the mobile app lags behind",
];
const DETRACTOR_REASONS: &[&str] = &[
    "Exporting data takes too many clicks",
    "Missing the integrations we rely on",
    "Too expensive for what we use",
];
/// (country, region) by account region (`us-east`, `us-west`, `eu-central`, `apac`).
const GEOS: [(&str, &str); 4] = [("US", "NY"), ("US", "CA"), ("DE", "BE"), ("AU", "NSW")];

fn secs(rng: &mut Rng, lo: u64, hi: u64) -> i64 {
    ((lo + rng.below(hi - lo + 1)) * 1000 + rng.below(1000)) as i64
}

impl Subscription {
    /// The `accountId` field of a visitor's rows (as event rows: missing or `""` when anonymous).
    fn account_field<'a>(&'a self, v: &'a Visitor) -> Option<&'a str> {
        match v.account {
            Some(a) => Some(self.accounts[a].id.as_str()),
            None if v.omit_account_field => None,
            None => Some(""),
        }
    }

    /// Satisfaction of a visitor's account in `[0, 1)` (0.5 for anonymous visitors): shifts its
    /// answers from detractors / "no" / low scores to promoters / "yes" / high scores.
    pub fn satisfaction(&self, v: &Visitor) -> f64 {
        match v.account {
            Some(a) => unit(mix(&[self.seed, SATISFACTION_TAG, a as u64])),
            None => 0.5,
        }
    }

    /// Country and region of a visitor's guide rows (by its account's region).
    fn geo(&self, v: &Visitor) -> (&'static str, &'static str) {
        let i = match v.account.map(|a| self.accounts[a].region.as_str()) {
            Some("us-east") => 0,
            Some("us-west") => 1,
            Some("eu-central") => 2,
            Some(_) => 3,
            None => (mix(&[self.seed, GEO_TAG, u64::from(v.index)]) % 4) as usize,
        };
        GEOS[i]
    }

    fn poll_answer(
        &self,
        v: &Visitor,
        kind: PollKind,
        rating: Option<u64>,
        rng: &mut Rng,
    ) -> PollAnswer {
        let sat = self.satisfaction(v);
        match kind {
            PollKind::NpsRating => {
                let (detractors, promoters) = (0.45 - 0.35 * sat, 0.2 + 0.5 * sat);
                let r = rng.unit();
                PollAnswer::Number(if r < detractors {
                    DETRACTOR_SCORES[rng.below(DETRACTOR_SCORES.len() as u64) as usize]
                } else if r < 1.0 - promoters {
                    7 + rng.below(2)
                } else {
                    9 + rng.below(2)
                })
            }
            PollKind::NpsReason => {
                let reasons = match rating {
                    Some(9..) => PROMOTER_REASONS,
                    Some(7 | 8) => PASSIVE_REASONS,
                    Some(_) => DETRACTOR_REASONS,
                    None if sat >= 0.5 => PROMOTER_REASONS,
                    None => DETRACTOR_REASONS,
                };
                PollAnswer::Text(reasons[rng.below(reasons.len() as u64) as usize])
            }
            PollKind::YesNo => PollAnswer::Text(if rng.chance(0.45 + 0.45 * sat) {
                "yes"
            } else {
                "no"
            }),
            PollKind::NumberScale => {
                let x = 1.0 + 4.0 * sat + (rng.unit() - 0.5) * 3.0;
                PollAnswer::Number(x.round().clamp(1.0, 5.0) as u64)
            }
        }
    }

    /// Append the rows (guide and poll rows alike, in time order) of guide `gi` for one
    /// visitor-day, given the visitor's sessions in the guide's app that day.
    fn guide_day<'a>(
        &'a self,
        v: &'a Visitor,
        day: &DayTimes,
        gi: usize,
        sessions: &[super::activity::Session],
        out: &mut Vec<GuideRow<'a>>,
    ) {
        let Some(g) = self.guides.get(gi) else {
            return;
        };
        let h = mix(&[self.seed, GUIDE_TAG, u64::from(v.index), day.dk, gi as u64]);
        if sessions.is_empty() || g.steps.is_empty() || unit(h) >= g.popularity {
            return;
        }
        let mut rng = Rng::new(h, 1);
        let s = &sessions[rng.below(sessions.len() as u64) as usize];
        let base = self.session_base(v, day.dk, g.app_id, s.index);
        let hour = day.hours[(s.hour as usize).min(23)];
        let mut t = session_first_time(hour, base) + rng.below(20 * 60_000) as i64;
        let (country, region) = self.geo(v);
        let template = GuideRow {
            visitor_id: &v.id,
            account_id: self.account_field(v),
            app_id: g.app_id,
            date: day.date,
            browser_time: 0,
            event: GuideEventType::Seen,
            guide_id: &g.id,
            step_id: &g.steps[0],
            url: &g.url,
            remote_ip: session_ip(v, g.app_id, s.index),
            server_name: server_for(g.app_id),
            user_agent: session_user_agent(v, s.index),
            country,
            region,
            load_time: 0,
            poll: None,
        };
        // Rows past the local day are dropped (never the case with sessions at 8–18 h); as
        // times only grow, what is kept is always a prefix of the walk.
        let emit = |out: &mut Vec<GuideRow<'a>>,
                    event: GuideEventType,
                    step: &'a str,
                    t: i64,
                    load_time: u64,
                    poll: Option<(&'a Poll, PollAnswer)>| {
            if t < day.end {
                out.push(GuideRow {
                    event,
                    step_id: step,
                    browser_time: t,
                    load_time,
                    poll,
                    remote_ip: template.remote_ip.clone(),
                    ..template
                });
            }
        };
        let load = |rng: &mut Rng| 80 + rng.below(1400);
        if rng.chance(TWICE_RATE) {
            let first = g.steps[0].as_str();
            emit(out, GuideEventType::Seen, first, t, load(&mut rng), None);
            let t1 = t + secs(&mut rng, 2, 20);
            if rng.chance(0.8) {
                emit(out, GuideEventType::Dismissed, first, t1, 0, None);
            }
            t += (40 + rng.below(141)) as i64 * 60_000 + rng.below(60_000) as i64;
        }
        let last = g.steps.len() - 1;
        for (k, step) in g.steps.iter().enumerate() {
            emit(out, GuideEventType::Seen, step, t, load(&mut rng), None);
            t += secs(&mut rng, 3, 40);
            if !g.polls.is_empty() {
                if rng.chance(ANSWER_RATE) {
                    let mut rating = None;
                    for (pi, p) in g.polls.iter().enumerate() {
                        if pi > 0 && !rng.chance(FURTHER_POLL_RATE) {
                            continue;
                        }
                        let answer = self.poll_answer(v, p.kind, rating, &mut rng);
                        if let (PollKind::NpsRating, PollAnswer::Number(n)) = (p.kind, answer) {
                            rating = Some(n);
                        }
                        emit(
                            out,
                            GuideEventType::PollResponse,
                            step,
                            t,
                            0,
                            Some((p, answer)),
                        );
                        t += secs(&mut rng, 5, 40);
                    }
                    emit(out, GuideEventType::Advanced, step, t, 0, None);
                } else if rng.chance(0.9) {
                    emit(out, GuideEventType::Dismissed, step, t, 0, None);
                }
                return;
            }
            let roll = rng.unit();
            let advance = if k < last { 0.75 } else { 0.7 };
            if roll < advance {
                emit(out, GuideEventType::Advanced, step, t, 0, None);
                t += secs(&mut rng, 1, 5);
            } else {
                if roll < 0.95 {
                    emit(out, GuideEventType::Dismissed, step, t, 0, None);
                }
                return;
            }
        }
    }

    /// Lazily iterate the raw rows of a guide source for `apps` over local dates
    /// `first..=last` (clamped to the history), under `filter`. Order: date, visitor, then the
    /// visitor-day's rows by time. `guideEvents` and `pollEvents` come from the same walk, so a
    /// poll answer always follows a `guideSeen` of its guide's step by the same visitor.
    pub fn guide_rows<'a>(
        &'a self,
        source: GuideSource,
        apps: &'a [i64],
        first: NaiveDate,
        last: NaiveDate,
        filter: GuideFilter<'a>,
    ) -> impl Iterator<Item = GuideRow<'a>> + 'a {
        // The walk's apps in request order, each with its guides that may have rows.
        let plan: Vec<(i64, Vec<usize>)> = apps
            .iter()
            .filter_map(|&app| {
                let here: Vec<usize> = (self.guides.iter().enumerate())
                    .filter(|(_, g)| g.app_id == app && filter.admits(g))
                    .filter(|(_, g)| source == GuideSource::GuideEvents || !g.polls.is_empty())
                    .map(|(i, _)| i)
                    .collect();
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
        let want_polls = source == GuideSource::PollEvents;
        (0..ndays).flat_map(move |i| {
            let day = DayTimes::new(self, add_days(first, i));
            let plan = plan.clone();
            self.visitors.iter().flat_map(move |v| {
                let mut rows = Vec::new();
                if !plan.iter().any(|(app, _)| v.apps.contains(app))
                    || !self.visitor_active_on(v, day.date)
                {
                    return rows;
                }
                for (app, guides) in &plan {
                    let sessions = self.sessions(v, day.date, *app);
                    if sessions.is_empty() {
                        continue;
                    }
                    for &gi in guides {
                        self.guide_day(v, &day, gi, &sessions, &mut rows);
                    }
                }
                rows.retain(|r| r.poll.is_some() == want_polls && filter.keeps(r));
                rows.sort_by_key(|r| r.browser_time);
                rows
            })
        })
    }
}
