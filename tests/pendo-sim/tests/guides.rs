//! Guides, `GET /api/v1/guide`, the `guides` source and the raw `guideEvents` / `pollEvents`
//! sources: seeded objects, row shapes, walks, restrictions, answers, generic stages, deleted
//! guides and determinism.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeZone;
use common::{envelope, post_agg, spawn, KEY};
use pendo_sim::data::generate::MOBILE_APP_ID;
use pendo_sim::pipeline::{events_group, execute, execute_generic, plan_request};
use pendo_sim::{PollKind, SimConfig, Simulator, DEFAULT_APP_ID};
use serde_json::{json, Value};

const WELCOME: &str = "guide-welcome-tour";
const NOTES: &str = "guide-release-notes";
const NPS: &str = "guide-nps-survey";
const FEEDBACK: &str = "guide-quick-feedback";
const SATISFACTION: &str = "guide-satisfaction";
const MOBILE: &str = "guide-mobile-tips";

fn sim() -> &'static Simulator {
    static SIM: std::sync::OnceLock<Simulator> = std::sync::OnceLock::new();
    SIM.get_or_init(|| Simulator::new(SimConfig::small()))
}

/// Rows of a guide source with `params` over `timeSeries` `ts`.
fn rows(sim: &Simulator, source: &str, params: Value, ts: Value) -> Vec<Value> {
    sim.run_aggregation(&envelope(
        json!([{"source": {source: params, "timeSeries": ts}}]),
    ))
    .unwrap()
}

fn days(first: &str, count: i64) -> Value {
    json!({"period": "dayRange", "first": first, "count": count})
}

/// The first 90 local days of the small preset's history (2026-07-24 ..= 2026-10-21).
fn first_90_days() -> Value {
    let first = sim().subscription().first_date;
    days(&format!("date(\"{first}\")"), 90)
}

fn s<'a>(r: &'a Value, k: &str) -> &'a str {
    r[k].as_str().unwrap_or_default()
}

fn new_york_midnight(y: i32, m: u32, d: u32) -> i64 {
    chrono_tz::America::New_York
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .timestamp_millis()
}

/// A guide's id, app, name, multi-step flag, step ids and polls.
type SeededGuide<'a> = (
    &'a str,
    i64,
    &'a str,
    bool,
    Vec<&'a str>,
    Vec<(&'a str, PollKind)>,
);

/// A visitor's guide on a local day.
type WalkKey = (String, String, chrono::NaiveDate);

#[test]
fn seeded_guides_steps_and_polls() {
    let sub = sim().subscription();
    let got: Vec<SeededGuide> = sub
        .guides
        .iter()
        .map(|g| {
            (
                g.id.as_str(),
                g.app_id,
                g.name.as_str(),
                g.multi_step,
                g.steps.iter().map(String::as_str).collect(),
                g.polls.iter().map(|p| (p.id.as_str(), p.kind)).collect(),
            )
        })
        .collect();
    let web = DEFAULT_APP_ID;
    assert_eq!(
        got,
        vec![
            (
                WELCOME,
                web,
                "Welcome tour",
                true,
                vec![
                    "guide-welcome-tour-step-1",
                    "guide-welcome-tour-step-2",
                    "guide-welcome-tour-step-3"
                ],
                vec![]
            ),
            (
                NOTES,
                web,
                "Release notes",
                false,
                vec!["guide-release-notes-step-1"],
                vec![]
            ),
            (
                NPS,
                web,
                "NPS survey",
                false,
                vec!["guide-nps-survey-step-1"],
                vec![
                    ("poll-nps-rating", PollKind::NpsRating),
                    ("poll-nps-reason", PollKind::NpsReason)
                ]
            ),
            (
                FEEDBACK,
                web,
                "Quick feedback",
                false,
                vec!["guide-quick-feedback-step-1"],
                vec![("poll-quick-feedback", PollKind::YesNo)]
            ),
            (
                SATISFACTION,
                web,
                "Satisfaction",
                false,
                vec!["guide-satisfaction-step-1"],
                vec![("poll-satisfaction", PollKind::NumberScale)]
            ),
            (
                MOBILE,
                MOBILE_APP_ID,
                "Mobile tips",
                false,
                vec!["guide-mobile-tips-step-1"],
                vec![]
            ),
        ]
    );
    let types: Vec<&str> = [
        PollKind::NpsRating,
        PollKind::NpsReason,
        PollKind::YesNo,
        PollKind::NumberScale,
    ]
    .iter()
    .map(|k| k.as_str())
    .collect();
    assert_eq!(
        types,
        ["NPSRating", "NPSReason", "PositiveNegative", "NumberScale"]
    );
    // Ids do not depend on the seed.
    let mut cfg = SimConfig::tiny();
    cfg.seed = 7;
    let other = Simulator::new(cfg);
    let ids = |sub: &pendo_sim::Subscription| -> Vec<String> {
        sub.guides.iter().map(|g| g.id.clone()).collect()
    };
    assert_eq!(ids(other.subscription()), ids(sub));
}

#[tokio::test]
async fn guide_list_source_and_deleted_guides() {
    let (sim, running) = spawn(SimConfig::small()).await;
    let base = running.base_url();
    let c = common::client();
    let get = |path: &str| {
        c.get(format!("{base}{path}"))
            .header("x-pendo-integration-key", KEY)
            .send()
    };
    let list = |path: &'static str| {
        let req = get(path);
        async move { req.await.unwrap().json::<Vec<Value>>().await.unwrap() }
    };
    let ids = |v: &[Value]| -> Vec<String> { v.iter().map(|g| s(g, "id").to_string()).collect() };
    let default = list("/api/v1/guide").await;
    assert_eq!(ids(&default), [WELCOME, NOTES, NPS, FEEDBACK, SATISFACTION]);
    assert!(default.iter().all(|g| g["appId"] == json!(DEFAULT_APP_ID)));
    let all = list("/api/v1/guide?expand=*").await;
    assert_eq!(
        ids(&all),
        [WELCOME, NOTES, NPS, FEEDBACK, SATISFACTION, MOBILE]
    );
    assert_eq!(all[5]["appId"], json!(MOBILE_APP_ID));
    let nps = &all[2];
    let created = nps["createdAt"].clone();
    assert!(created.as_i64().unwrap() > 0);
    assert_eq!(
        nps,
        &json!({
            "id": NPS, "appId": DEFAULT_APP_ID, "name": "NPS survey", "state": "public",
            "launchMethod": "auto", "isMultiStep": false,
            "steps": [{"id": "guide-nps-survey-step-1", "guideId": NPS, "type": "lightbox",
                       "pageId": null}],
            "polls": [
                {"id": "poll-nps-rating",
                 "question": "How likely are you to recommend us to a friend or colleague?",
                 "attributes": {"type": "NPSRating"}},
                {"id": "poll-nps-reason", "question": "What is the main reason for your score?",
                 "attributes": {"type": "NPSReason"}}],
            "createdAt": created, "lastUpdatedAt": created,
        })
    );
    assert_eq!(all[0]["isMultiStep"], json!(true));
    assert_eq!(all[0]["steps"].as_array().unwrap().len(), 3);
    // The `guides` source gives the same objects.
    let source = sim
        .run_aggregation(&envelope(
            json!([{"source": {"guides": {"appId": "expandAppIds(\"*\")"}}}]),
        ))
        .unwrap();
    assert_eq!(source, all);
    let source = sim
        .run_aggregation(&envelope(json!([{"source": {"guides": null}}])))
        .unwrap();
    assert_eq!(source, default);

    // Deleting a guide: gone from both lists; a source naming it, one of its steps or polls
    // has no rows; the other guides keep theirs.
    let week = json!({"period": "dayRange", "first": "now()", "count": -7});
    let count = |source: &'static str, params: Value| {
        let body = envelope(json!([
            {"source": {source: params, "timeSeries": week.clone()}}, {"count": null}
        ]));
        let base = base.clone();
        async move {
            let r: Value = post_agg(&base, Some(KEY), &body)
                .await
                .json()
                .await
                .unwrap();
            r["results"][0]["count"].as_u64().unwrap()
        }
    };
    assert!(count("guideEvents", json!({"guideId": WELCOME})).await > 0);
    let del = |path: String| c.delete(format!("{base}/_sim/objects/{path}")).send();
    for id in [WELCOME, NPS] {
        let r: Value = del(format!("guide/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r, json!({"kind": "guide", "id": id, "deleted": true}));
    }
    assert_eq!(
        ids(&list("/api/v1/guide").await),
        [NOTES, FEEDBACK, SATISFACTION]
    );
    assert_eq!(
        ids(&list("/api/v1/guide?expand=*").await),
        [NOTES, FEEDBACK, SATISFACTION, MOBILE]
    );
    assert_eq!(count("guideEvents", json!({"guideId": WELCOME})).await, 0);
    let step = json!({"guideStepId": "guide-welcome-tour-step-2"});
    assert_eq!(count("guideEvents", step).await, 0);
    assert_eq!(count("pollEvents", json!({"guideId": NPS})).await, 0);
    let poll = json!({"pollId": "poll-nps-rating"});
    assert_eq!(count("pollEvents", poll).await, 0);
    assert!(count("guideEvents", json!({"guideId": NOTES})).await > 0);
    let poll = json!({"pollId": "poll-quick-feedback"});
    assert!(count("pollEvents", poll).await > 0);
    assert_eq!(del("guide/nope".into()).await.unwrap().status(), 404);
    running.shutdown().await;
}

/// The guide rows' fields (`accountId` is missing on half of the anonymous visitors' rows).
const GUIDE_FIELDS: [&str; 14] = [
    "accountId",
    "appId",
    "browserTime",
    "country",
    "guideId",
    "guideStepId",
    "loadTime",
    "region",
    "remoteIp",
    "serverName",
    "type",
    "url",
    "userAgent",
    "visitorId",
];

/// Checks the walk of each visitor's guide in row order: a step's `guideAdvanced` or
/// `guideDismissed` follows a `guideSeen` of that step, and step k + 1 is seen only after step
/// k was advanced. Returns (walks reaching the last step of a multi-step guide, walks finishing
/// it, (visitor, guide, day) seeing step 1 twice).
fn check_walks(rows: &[Value], tz: chrono_tz::Tz) -> (usize, usize, usize) {
    let sub = sim().subscription();
    // (visitor, guide, day) → (seen steps, advanced steps).
    let mut state: BTreeMap<WalkKey, (BTreeSet<usize>, BTreeSet<usize>)> = BTreeMap::new();
    let mut first_seen: BTreeMap<WalkKey, usize> = BTreeMap::new();
    let (mut reached, mut finished) = (0, 0);
    let mut last_time: BTreeMap<String, i64> = BTreeMap::new();
    for r in rows {
        let g = sub.guide(s(r, "guideId")).unwrap();
        let step = s(r, "guideStepId");
        let k = g.steps.iter().position(|x| x == step).unwrap();
        let t = r["browserTime"].as_i64().unwrap();
        let day = pendo_sim::timeutil::local_date(tz, t);
        let key = (s(r, "visitorId").to_string(), g.id.clone(), day);
        // A visitor-day's rows come in time order.
        let prev = last_time.insert(format!("{}|{day}", s(r, "visitorId")), t);
        assert!(prev.is_none_or(|p| p <= t), "{r}");
        let (seen, advanced) = state.entry(key.clone()).or_default();
        match s(r, "type") {
            "guideSeen" => {
                assert!(
                    k == 0 || advanced.contains(&(k - 1)),
                    "step {k} unannounced: {r}"
                );
                seen.insert(k);
                if k == 0 {
                    *first_seen.entry(key).or_default() += 1;
                }
                if g.multi_step && k == g.steps.len() - 1 {
                    reached += 1;
                }
            }
            "guideAdvanced" => {
                assert!(seen.contains(&k), "advanced before seen: {r}");
                advanced.insert(k);
                if g.multi_step && k == g.steps.len() - 1 {
                    finished += 1;
                }
            }
            "guideDismissed" => assert!(seen.contains(&k), "dismissed before seen: {r}"),
            other => panic!("unexpected type {other}"),
        }
    }
    let twice = first_seen.values().filter(|n| **n >= 2).count();
    (reached, finished, twice)
}

#[test]
fn guide_events_of_one_day() {
    let sim = sim();
    let sub = sim.subscription();
    // Wednesday 2026-11-18 (EST): 05:00Z to 05:00Z.
    let day = rows(sim, "guideEvents", Value::Null, days("date(2026,11,18)", 1));
    assert!(day.len() >= 20, "{} rows", day.len());
    let (start, end) = (
        new_york_midnight(2026, 11, 18),
        new_york_midnight(2026, 11, 19),
    );
    for r in &day {
        let t = r["browserTime"].as_i64().unwrap();
        assert!(t >= start && t < end, "{r}");
        assert_eq!(r["appId"], json!(DEFAULT_APP_ID), "default app only");
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let want: Vec<&str> = GUIDE_FIELDS
            .iter()
            .copied()
            .filter(|k| *k != "accountId" || r.get("accountId").is_some())
            .collect();
        assert_eq!(keys, want, "{r}");
        let g = sub.guide(s(r, "guideId")).unwrap();
        assert!(g.steps.iter().any(|x| x == s(r, "guideStepId")));
        assert_eq!(s(r, "url"), g.url);
        assert_eq!(s(r, "serverName"), "app.example.com");
        let load = r["loadTime"].as_u64().unwrap();
        assert_eq!(load > 0, s(r, "type") == "guideSeen", "{r}");
        let v = sub.visitor(s(r, "visitorId")).unwrap();
        match sub.account_id_of(v) {
            Some(a) => assert_eq!(s(r, "accountId"), a),
            None => assert!(r.get("accountId").is_none_or(|a| a == "")),
        }
    }
    let types: BTreeSet<&str> = day.iter().map(|r| s(r, "type")).collect();
    assert_eq!(
        types,
        BTreeSet::from(["guideAdvanced", "guideDismissed", "guideSeen"])
    );
    check_walks(&day, sub.timezone);

    // Over 90 days: tours reach and finish their last step, some visitors see a guide twice
    // on one day, anonymous visitors see guides, and nearly every day has rows.
    let all = rows(sim, "guideEvents", Value::Null, days("now()", -90));
    let (reached, finished, twice) = check_walks(&all, sub.timezone);
    assert!(
        reached > 0 && finished > 0 && finished < reached,
        "{reached} {finished}"
    );
    assert!(twice > 0);
    let anonymous: Vec<&Value> = all
        .iter()
        .filter(|r| s(r, "visitorId").starts_with("_PENDO_T_"))
        .collect();
    assert!(anonymous.iter().any(|r| r.get("accountId").is_none()));
    assert!(anonymous.iter().any(|r| r["accountId"] == ""));
    let per_day: BTreeSet<chrono::NaiveDate> = all
        .iter()
        .map(|r| pendo_sim::timeutil::local_date(sub.timezone, r["browserTime"].as_i64().unwrap()))
        .collect();
    assert!(per_day.len() >= 85, "{} days with rows", per_day.len());
}

#[test]
fn guide_source_restrictions() {
    let sim = sim();
    let week = days("now()", -7);
    let all_apps = json!({"appId": "expandAppIds(\"*\")"});
    let everything = rows(sim, "guideEvents", all_apps.clone(), week.clone());
    let default = rows(sim, "guideEvents", Value::Null, week.clone());
    let only = |f: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        everything.iter().filter(|r| f(r)).cloned().collect()
    };
    assert_eq!(default, only(&|r| r["appId"] == json!(DEFAULT_APP_ID)));
    let mobile = rows(
        sim,
        "guideEvents",
        json!({"appId": MOBILE_APP_ID}),
        week.clone(),
    );
    assert!(!mobile.is_empty());
    assert_eq!(mobile, only(&|r| r["appId"] == json!(MOBILE_APP_ID)));
    assert!(mobile
        .iter()
        .all(|r| s(r, "guideId") == MOBILE && s(r, "serverName") == "mobile.example.com"));
    let both = json!({"appId": [DEFAULT_APP_ID, MOBILE_APP_ID]});
    assert_eq!(
        rows(sim, "guideEvents", both, week.clone()).len(),
        everything.len()
    );

    let welcome = rows(
        sim,
        "guideEvents",
        json!({"guideId": WELCOME}),
        week.clone(),
    );
    assert!(!welcome.is_empty());
    assert_eq!(welcome, only(&|r| s(r, "guideId") == WELCOME));
    let step = "guide-welcome-tour-step-2";
    let step_rows = rows(
        sim,
        "guideEvents",
        json!({"guideStepId": step}),
        week.clone(),
    );
    assert!(!step_rows.is_empty());
    assert_eq!(step_rows, only(&|r| s(r, "guideStepId") == step));
    let both = json!({"guideId": NOTES, "guideStepId": step});
    assert!(rows(sim, "guideEvents", both, week.clone()).is_empty());
    // A guide of another app than the requested one has no rows.
    let other_app = json!({"guideId": MOBILE});
    assert!(rows(sim, "guideEvents", other_app, week.clone()).is_empty());
    let unknown = json!({"guideId": "nope"});
    assert!(rows(sim, "guideEvents", unknown, week.clone()).is_empty());

    let polls = rows(sim, "pollEvents", Value::Null, days("now()", -30));
    let nps = rows(
        sim,
        "pollEvents",
        json!({"guideId": NPS}),
        days("now()", -30),
    );
    let want: Vec<Value> = polls
        .iter()
        .filter(|r| s(r, "guideId") == NPS)
        .cloned()
        .collect();
    assert_eq!(nps, want);
    let reason = json!({"pollId": "poll-nps-reason"});
    let reasons = rows(sim, "pollEvents", reason, days("now()", -30));
    assert!(!reasons.is_empty());
    let want: Vec<Value> = polls
        .iter()
        .filter(|r| s(r, "pollId") == "poll-nps-reason")
        .cloned()
        .collect();
    assert_eq!(reasons, want);
    // Mobile tips has no poll.
    let mobile = json!({"appId": MOBILE_APP_ID});
    assert!(rows(sim, "pollEvents", mobile, days("now()", -30)).is_empty());

    // Both sources need a timeSeries; restrictions must be strings.
    for body in [
        json!([{"source": {"guideEvents": null}}]),
        json!([{"source": {"pollEvents": {"guideId": 3}, "timeSeries": days("now()", -1)}}]),
    ] {
        assert!(sim.run_aggregation(&body).is_err(), "{body}");
    }
}

#[test]
fn time_windows_and_now() {
    let mut cfg = SimConfig::small();
    // Now = 2026-11-18 14:30 EST: today's rows stop at now, tomorrow has none.
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 18, 19, 30, 0)
        .unwrap();
    cfg.now = now;
    let early = Simulator::new(cfg);
    let today = rows(&early, "guideEvents", Value::Null, days("now()", 1));
    assert!(!today.is_empty());
    assert!(today
        .iter()
        .all(|r| r["browserTime"].as_i64().unwrap() <= now.timestamp_millis()));
    let tomorrow = rows(&early, "guideEvents", Value::Null, days("now()", 2));
    assert_eq!(tomorrow, today, "nothing after now");
    // Later that evening the day has more rows; the earlier answer was their part up to now.
    let evening = chrono::Utc.with_ymd_and_hms(2026, 11, 19, 3, 0, 0).unwrap();
    early.control().set_now(evening);
    let whole = rows(
        &early,
        "guideEvents",
        Value::Null,
        days("date(2026,11,18)", 1),
    );
    let cut: Vec<Value> = whole
        .iter()
        .filter(|r| r["browserTime"].as_i64().unwrap() <= now.timestamp_millis())
        .cloned()
        .collect();
    assert!(whole.len() > today.len());
    assert_eq!(cut, today);
    early.control().set_now(now);
    // hourRange: rows inside the hours.
    let h10 = chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 11, 17, 10, 0, 0)
        .unwrap()
        .timestamp_millis();
    let ts = json!({"period": "hourRange", "first": h10, "count": 3});
    let hours = rows(&early, "guideEvents", Value::Null, ts);
    assert!(!hours.is_empty());
    assert!(hours.iter().all(|r| {
        let t = r["browserTime"].as_i64().unwrap();
        t >= h10 && t < h10 + 3 * 3_600_000
    }));
    // Before the history: nothing.
    assert!(rows(
        &early,
        "guideEvents",
        Value::Null,
        days("date(2025,1,1)", 30)
    )
    .is_empty());
}

#[test]
fn poll_answers() {
    let sim = sim();
    let sub = sim.subscription();
    let window = first_90_days();
    let polls = rows(
        sim,
        "pollEvents",
        json!({"appId": "expandAppIds(\"*\")"}),
        window.clone(),
    );
    let guides = rows(sim, "guideEvents", Value::Null, window);
    let mut fields = GUIDE_FIELDS.to_vec();
    fields.extend(["pollId", "pollResponse", "pollType"]);
    fields.sort_unstable();
    let mut nps: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut by_account: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut kinds = BTreeSet::new();
    for (i, r) in polls.iter().enumerate() {
        assert_eq!(s(r, "type"), "pollResponse");
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let want: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|k| *k != "accountId" || r.get("accountId").is_some())
            .collect();
        assert_eq!(keys, want, "{r}");
        let g = sub.guide(s(r, "guideId")).unwrap();
        let p = g.polls.iter().find(|p| p.id == s(r, "pollId")).unwrap();
        assert_eq!(s(r, "pollType"), p.kind.as_str());
        assert_eq!(s(r, "guideStepId"), g.steps[0]);
        kinds.insert(s(r, "pollType"));
        let answer = &r["pollResponse"];
        match p.kind {
            PollKind::NpsRating => {
                let n = answer.as_u64().unwrap();
                assert!(n <= 10, "{r}");
                nps.entry(s(r, "visitorId")).or_default().push(n);
                if let Some(a) = r["accountId"].as_str().filter(|a| !a.is_empty()) {
                    by_account.entry(a).or_default().push(n);
                }
            }
            PollKind::NpsReason => {
                assert!(answer.as_str().is_some_and(|t| t.len() > 5), "{r}");
                // The rating of the same showing comes just before.
                let before = &polls[..i];
                assert!(
                    before
                        .iter()
                        .rev()
                        .any(|b| s(b, "visitorId") == s(r, "visitorId")
                            && s(b, "pollId") == "poll-nps-rating"
                            && r["browserTime"].as_i64().unwrap()
                                - b["browserTime"].as_i64().unwrap()
                                < 60_000),
                    "reason without rating: {r}"
                );
            }
            PollKind::YesNo => assert!(answer == "yes" || answer == "no", "{r}"),
            PollKind::NumberScale => {
                assert!((1..=5).contains(&answer.as_u64().unwrap()), "{r}")
            }
        }
        // The visitor saw the guide's step earlier that day.
        let t = r["browserTime"].as_i64().unwrap();
        assert!(
            guides.iter().any(|x| s(x, "visitorId") == s(r, "visitorId")
                && s(x, "guideId") == g.id
                && s(x, "type") == "guideSeen"
                && x["browserTime"].as_i64().unwrap() < t
                && t - x["browserTime"].as_i64().unwrap() < 3_600_000),
            "answer without a sight: {r}"
        );
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    // Promoters, passives and detractors; some visitors answer twice within 90 days, most
    // at most twice; anonymous visitors answer too.
    let all: Vec<u64> = nps.values().flatten().copied().collect();
    assert!(all.iter().any(|n| *n >= 9));
    assert!(all.iter().any(|n| (7..=8).contains(n)));
    assert!(all.iter().any(|n| *n <= 6));
    assert!(
        nps.values().any(|v| v.len() == 2),
        "a visitor answers twice"
    );
    let identified = sub.visitors.iter().filter(|v| !v.anonymous).count();
    let answering = nps.keys().filter(|v| !v.starts_with("_PENDO_T_")).count();
    assert!(answering < identified / 2, "{answering} of {identified}");
    assert!(nps.values().filter(|v| v.len() > 2).count() * 10 < nps.len());
    assert!(nps.keys().any(|v| v.starts_with("_PENDO_T_")));
    // Accounts differ in their mix: promoter shares of the accounts with a few answers.
    let shares: Vec<f64> = by_account
        .values()
        .filter(|v| v.len() >= 3)
        .map(|v| v.iter().filter(|n| **n >= 9).count() as f64 / v.len() as f64)
        .collect();
    assert!(shares.len() >= 3, "{shares:?}");
    let (lo, hi) = shares
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    assert!(hi - lo >= 0.4, "{shares:?}");
}

#[test]
fn generic_stages_on_guide_rows() {
    let sim = sim();
    let sub = sim.subscription();
    let source = json!({"source": {"guideEvents": {"appId": "expandAppIds(\"*\")"},
                                   "timeSeries": days("now()", -14)}});
    let raw = rows(
        sim,
        "guideEvents",
        json!({"appId": "expandAppIds(\"*\")"}),
        days("now()", -14),
    );
    // eval with if(), group with count and sum, sort, select.
    let out = sim
        .run_aggregation(&envelope(json!([
            source.clone(),
            {"filter": "type == \"guideSeen\" || type == \"guideAdvanced\""},
            {"eval": {"seen": "if(type == \"guideSeen\", 1, 0)"}},
            {"group": {"group": ["guideId"], "fields": [
                {"rows": {"count": null}}, {"seen": {"sum": "seen"}},
                {"visitors": {"count": "visitorId"}}]}},
            {"sort": ["-rows", "guideId"]},
            {"select": {"guide": "guideId", "seen": "seen", "advanced": "rows - seen",
                        "visitors": "visitors"}}
        ])))
        .unwrap();
    let mut want: BTreeMap<&str, (u64, u64, BTreeSet<&str>)> = BTreeMap::new();
    for r in &raw {
        let e = want.entry(s(r, "guideId")).or_default();
        match s(r, "type") {
            "guideSeen" => e.0 += 1,
            "guideAdvanced" => e.1 += 1,
            _ => continue,
        }
        e.2.insert(s(r, "visitorId"));
    }
    let mut want: Vec<Value> = want
        .into_iter()
        .map(|(g, (seen, adv, v))| {
            json!({"guide": g, "seen": seen, "advanced": adv, "visitors": v.len()})
        })
        .collect();
    want.sort_by_key(|r| {
        let n = r["seen"].as_u64().unwrap() + r["advanced"].as_u64().unwrap();
        (
            std::cmp::Reverse(n),
            r["guide"].as_str().unwrap().to_string(),
        )
    });
    assert_eq!(out, want);
    assert_eq!(out.len(), 6);

    // identified, segment and bulkExpand find the rows' visitors and accounts.
    let enterprise = sim
        .run_aggregation(&envelope(json!([
            source.clone(),
            {"identified": "visitorId"},
            {"segment": {"id": "seg-enterprise"}},
            {"bulkExpand": {"visitor": {"visitor": "visitorId"}, "account": {"account": "accountId"}}},
            {"select": {"v": "visitorId", "plan": "account.custom.plan",
                        "accountid": "visitor.auto.accountid", "a": "accountId"}}
        ])))
        .unwrap();
    assert!(!enterprise.is_empty());
    for r in &enterprise {
        assert_eq!(r["plan"], "enterprise", "{r}");
        assert_eq!(r["accountid"], r["a"], "{r}");
    }
    let want = raw
        .iter()
        .filter(|r| {
            sub.visitor(s(r, "visitorId"))
                .and_then(|v| sub.account_id_of(v))
                .and_then(|a| sub.account(a))
                .is_some_and(|a| a.plan == "enterprise")
        })
        .count();
    assert_eq!(enterprise.len(), want);
}

/// The grouped-events fast path never takes the guide sources: `execute` gives exactly the
/// generic engine's rows.
#[test]
fn guide_sources_run_generically() {
    let sim = sim();
    let sub = sim.subscription();
    let ctx = sim.eval_ctx();
    let cases = [
        json!([
            {"source": {"guideEvents": {"appId": "expandAppIds(\"*\")"},
                        "timeSeries": days("now()", -30)}},
            {"filter": "type == \"guideSeen\" || type == \"guideAdvanced\" || type == \"guideDismissed\""},
            {"group": {"group": ["visitorId", "accountId", "appId", "type", "guideStepId"],
                       "fields": [{"count": {"count": null}}]}},
            {"select": {"visitorId": "visitorId", "accountId": "accountId", "appId": "appId",
                        "type": "type", "guideStepId": "guideStepId", "count": "count"}}
        ]),
        json!([
            {"source": {"guideEvents": {"guideId": WELCOME}, "timeSeries": days("now()", -30)}},
            {"group": {"group": ["visitorId", "accountId", "appId", "browserTime"],
                       "fields": [{"n": {"count": null}}, {"load": {"sum": "loadTime"}}]}}
        ]),
        json!([
            {"source": {"pollEvents": {"guideId": NPS}, "timeSeries": days("now()", -90)}},
            {"filter": "pollType == \"NPSRating\""},
            {"eval": {"promoter": "if(pollResponse >= 9, 1, 0)",
                      "detractor": "if(pollResponse <= 6, 1, 0)"}},
            {"group": {"group": ["accountId"], "fields": [
                {"answers": {"count": null}}, {"promoters": {"sum": "promoter"}},
                {"detractors": {"sum": "detractor"}}, {"sum": {"sum": "pollResponse"}}]}},
            {"select": {"account": "accountId", "answers": "answers",
                        "nps": "(promoters - detractors) * 100 / answers", "sum": "sum"}}
        ]),
    ];
    for (i, pipeline) in cases.iter().enumerate() {
        let body = json!({"request": {"pipeline": pipeline}});
        let plan = plan_request(&body, sub, &ctx).unwrap();
        assert!(events_group::rows(&plan, sub, &ctx).is_none(), "case {i}");
        let fast: Vec<Value> = execute(&plan, sub, &ctx).collect();
        let generic: Vec<Value> = execute_generic(&plan, sub, &ctx).collect();
        assert!(!fast.is_empty(), "case {i}");
        assert_eq!(fast, generic, "case {i}");
    }
}

#[tokio::test]
async fn same_request_same_bytes() {
    let a = spawn(SimConfig::small()).await;
    let b = spawn(SimConfig::small()).await;
    let bodies = [
        envelope(
            json!([{"source": {"guideEvents": {"appId": "expandAppIds(\"*\")"},
                                    "timeSeries": days("now()", -30)}}]),
        ),
        envelope(json!([{"source": {"pollEvents": null, "timeSeries": days("now()", -90)}}])),
    ];
    for body in &bodies {
        let x = post_agg(&a.1.base_url(), Some(KEY), body)
            .await
            .bytes()
            .await
            .unwrap();
        let again = post_agg(&a.1.base_url(), Some(KEY), body)
            .await
            .bytes()
            .await
            .unwrap();
        let y = post_agg(&b.1.base_url(), Some(KEY), body)
            .await
            .bytes()
            .await
            .unwrap();
        assert!(x.len() > 1000);
        assert_eq!(x, again);
        assert_eq!(x, y);
    }
    let c = common::client();
    let get = |base: String| {
        c.get(format!("{base}/api/v1/guide?expand=*"))
            .header("x-pendo-integration-key", KEY)
            .send()
    };
    let x = get(a.1.base_url()).await.unwrap().bytes().await.unwrap();
    let y = get(b.1.base_url()).await.unwrap().bytes().await.unwrap();
    assert_eq!(x, y);
    // Another seed, other events.
    let mut cfg = SimConfig::small();
    cfg.seed = 7;
    let other = Simulator::new(cfg);
    assert_ne!(
        other.run_aggregation(&bodies[0]).unwrap(),
        a.0.run_aggregation(&bodies[0]).unwrap()
    );
    a.1.shutdown().await;
    b.1.shutdown().await;
}
