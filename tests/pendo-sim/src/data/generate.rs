//! Deterministic construction of the static subscription objects from a [`SimConfig`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::{
    Account, App, Feature, Guide, Page, Poll, PollKind, Segment, SegmentRule, Subscription, Tier,
    TrackType, Visitor, DEFAULT_APP_ID,
};
use crate::config::SimConfig;
use crate::rng::{mix, Rng};
use crate::timeutil::{add_days, day_start_ms, local_date};

/// Id of the second app (a mobile app).
pub const MOBILE_APP_ID: i64 = 5_629_499_534_213_120;
/// Id of the third app (an admin console).
pub const ADMIN_APP_ID: i64 = 5_767_130_939_129_856;

const FIRST_NAMES: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Linus", "Sophie", "Tim", "Hedy", "John",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie", "Perlman", "Torvalds", "Wilson", "Berners", "Lamarr", "Backus",
];
const ACCOUNT_WORDS_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Vandelay",
    "Wonka",
    "Pied",
    "Aperture",
    "Massive",
    "Oscorp",
];
const ACCOUNT_WORDS_B: &[&str] = &[
    "Corp",
    "Industries",
    "Labs",
    "Systems",
    "Dynamics",
    "Holdings",
    "Partners",
    "Works",
];
const REGIONS: &[&str] = &["us-east", "us-west", "eu-central", "apac"];

/// Pendo-like 27-character id derived from a hash.
fn pendo_id(seed: u64, tag: u64, n: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut out = String::with_capacity(27);
    let mut h = mix(&[seed, tag, n]);
    for i in 0..27u64 {
        if i % 10 == 9 {
            h = mix(&[h, i]);
        }
        out.push(ALPHABET[(h % 64) as usize] as char);
        h /= 64;
    }
    out
}

struct ItemDef {
    name: &'static str,
    core: bool,
    popularity: f64,
}

const fn item(name: &'static str, core: bool, popularity: f64) -> ItemDef {
    ItemDef {
        name,
        core,
        popularity,
    }
}

/// A poll of a guide: id slug (`poll-<slug>`), kind and question.
struct PollDef {
    slug: &'static str,
    kind: PollKind,
    question: &'static str,
}

/// A guide: id slug (`guide-<slug>`, steps `guide-<slug>-step-<n>`), name, number of steps,
/// polls (on its only step), the daily probability of being seen by an active visitor of its
/// app, and the name of the page of its app it shows on (its rows' `url`).
struct GuideDef {
    slug: &'static str,
    name: &'static str,
    steps: usize,
    polls: &'static [PollDef],
    popularity: f64,
    page: &'static str,
}

const fn guide(
    slug: &'static str,
    name: &'static str,
    steps: usize,
    polls: &'static [PollDef],
    popularity: f64,
    page: &'static str,
) -> GuideDef {
    GuideDef {
        slug,
        name,
        steps,
        polls,
        popularity,
        page,
    }
}

const fn poll(slug: &'static str, kind: PollKind, question: &'static str) -> PollDef {
    PollDef {
        slug,
        kind,
        question,
    }
}

struct AppDef {
    id: i64,
    name: &'static str,
    platform: &'static str,
    pages: &'static [ItemDef],
    features: &'static [ItemDef],
    tracks: &'static [ItemDef],
    guides: &'static [GuideDef],
}

const APPS: &[AppDef] = &[
    AppDef {
        id: DEFAULT_APP_ID,
        name: "Web App",
        platform: "web",
        pages: &[
            item("Dashboard", true, 0.85),
            item("Reports", false, 0.45),
            item("Settings", false, 0.2),
            item("Projects", true, 0.6),
            item("Billing", false, 0.1),
            item("Team", false, 0.25),
            item("Integrations", false, 0.15),
            item("Help Center", false, 0.1),
        ],
        features: &[
            item("Create Project Button", true, 0.35),
            item("Export CSV", true, 0.25),
            item("Filter Bar", false, 0.5),
            item("Share Link", false, 0.2),
            item("Invite User", false, 0.1),
            item("Save Report", true, 0.3),
            item("Search Box", false, 0.45),
            item("Notification Bell", false, 0.3),
            item("Upgrade Banner", false, 0.05),
            item("Help Widget", false, 0.1),
        ],
        tracks: &[
            item("report_exported", true, 0.15),
            item("signup_completed", false, 0.03),
        ],
        guides: &[
            guide("welcome-tour", "Welcome tour", 3, &[], 0.2, "Dashboard"),
            guide("release-notes", "Release notes", 1, &[], 0.12, "Dashboard"),
            guide(
                "nps-survey",
                "NPS survey",
                1,
                &[
                    poll(
                        "nps-rating",
                        PollKind::NpsRating,
                        "How likely are you to recommend us to a friend or colleague?",
                    ),
                    poll(
                        "nps-reason",
                        PollKind::NpsReason,
                        "What is the main reason for your score?",
                    ),
                ],
                0.04,
                "Projects",
            ),
            guide(
                "quick-feedback",
                "Quick feedback",
                1,
                &[poll(
                    "quick-feedback",
                    PollKind::YesNo,
                    "Did you find what you were looking for?",
                )],
                0.05,
                "Reports",
            ),
            guide(
                "satisfaction",
                "Satisfaction",
                1,
                &[poll(
                    "satisfaction",
                    PollKind::NumberScale,
                    "How satisfied are you with reporting? (1-5)",
                )],
                0.03,
                "Settings",
            ),
        ],
    },
    AppDef {
        id: MOBILE_APP_ID,
        name: "Mobile App",
        platform: "ios",
        pages: &[
            item("Home", false, 0.9),
            item("Inbox", false, 0.5),
            item("Profile", false, 0.15),
            item("Tasks", true, 0.55),
            item("Mobile Settings", false, 0.1),
        ],
        features: &[
            item("Complete Task", true, 0.4),
            item("Send Message", true, 0.3),
            item("Pull To Refresh", false, 0.5),
            item("Attach Photo", false, 0.1),
            item("Mark All Read", false, 0.2),
            item("Dark Mode Toggle", false, 0.05),
        ],
        tracks: &[item("push_opened", false, 0.2)],
        guides: &[guide("mobile-tips", "Mobile tips", 1, &[], 0.15, "Home")],
    },
    AppDef {
        id: ADMIN_APP_ID,
        name: "Admin Console",
        platform: "web",
        pages: &[
            item("Admin Home", false, 0.8),
            item("User Management", true, 0.4),
            item("Audit Log", false, 0.2),
            item("SSO Config", false, 0.05),
        ],
        features: &[
            item("Add User", true, 0.2),
            item("Reset Password", false, 0.15),
            item("Download Audit", true, 0.1),
            item("Role Picker", false, 0.3),
            item("Save SSO", false, 0.05),
        ],
        tracks: &[item("policy_changed", false, 0.05)],
        guides: &[],
    },
];

/// Build the static subscription (everything but event rows).
pub fn build(config: &SimConfig) -> Subscription {
    let tz = config.timezone;
    let seed = config.seed;
    let days = config.days.max(1);
    let last_date = local_date(tz, config.now.timestamp_millis());
    let first_date = add_days(last_date, -(i64::from(days) - 1));
    let created_base = day_start_ms(tz, add_days(first_date, -400));

    let mut apps = Vec::new();
    let mut pages = Vec::new();
    let mut features = Vec::new();
    let mut track_types = Vec::new();
    let mut guides = Vec::new();
    for (ai, def) in APPS.iter().enumerate() {
        apps.push(App {
            id: def.id,
            name: def.name.to_string(),
            platform: def.platform.to_string(),
        });
        for (i, p) in def.pages.iter().enumerate() {
            pages.push(Page {
                id: pendo_id(seed, 10 + ai as u64, i as u64),
                app_id: def.id,
                name: p.name.to_string(),
                is_core_event: p.core,
                popularity: p.popularity,
                created_at: created_base + (i as i64) * 86_400_000,
            });
        }
        for (i, f) in def.features.iter().enumerate() {
            let app_pages: Vec<&Page> = pages.iter().filter(|p| p.app_id == def.id).collect();
            let page_id = app_pages
                .get(i % app_pages.len().max(1))
                .map(|p| p.id.clone())
                .unwrap_or_default();
            features.push(Feature {
                id: pendo_id(seed, 20 + ai as u64, i as u64),
                app_id: def.id,
                page_id,
                name: f.name.to_string(),
                is_core_event: f.core,
                popularity: f.popularity,
                created_at: created_base + (i as i64) * 86_400_000 + 3_600_000,
            });
        }
        for (i, t) in def.tracks.iter().enumerate() {
            track_types.push(TrackType {
                id: pendo_id(seed, 30 + ai as u64, i as u64),
                app_id: def.id,
                name: t.name.to_string(),
                is_core_event: t.core,
                popularity: t.popularity,
            });
        }
        for g in def.guides {
            guides.push(build_guide(
                g,
                def.id,
                created_base + 300 * 86_400_000,
                &pages,
            ));
        }
    }
    for (i, g) in guides.iter_mut().enumerate() {
        g.created_at += (i as i64) * 7 * 86_400_000;
    }

    let accounts = build_accounts(config, first_date, last_date);
    let visitors = build_visitors(config, &accounts, first_date, last_date);

    let mut sub = Subscription {
        seed,
        timezone: tz,
        first_date,
        last_date,
        apps,
        pages,
        features,
        track_types,
        guides,
        segments: Vec::new(),
        accounts,
        visitors,
        reports: Vec::new(),
        visitor_index: BTreeMap::new(),
        account_index: BTreeMap::new(),
    };
    for (i, v) in sub.visitors.iter().enumerate() {
        sub.visitor_index.insert(v.id.clone(), i);
    }
    for (i, a) in sub.accounts.iter().enumerate() {
        sub.account_index.insert(a.id.clone(), i);
    }
    fill_visit_times(&mut sub);
    sub.segments = build_segments(&sub);
    sub.reports = super::reports::build(&sub);
    sub
}

/// A guide from its definition: readable, seed-independent ids (`guide-<slug>`,
/// `guide-<slug>-step-<n>`, `poll-<slug>`); `url` is the guide's page on its app's server.
fn build_guide(def: &GuideDef, app_id: i64, created_at: i64, pages: &[Page]) -> Guide {
    let id = format!("guide-{}", def.slug);
    let path = pages
        .iter()
        .find(|p| p.app_id == app_id && p.name == def.page)
        .map(|p| p.name.to_lowercase().replace(' ', "-"))
        .unwrap_or_default();
    Guide {
        steps: (1..=def.steps.max(1))
            .map(|n| format!("{id}-step-{n}"))
            .collect(),
        polls: def
            .polls
            .iter()
            .map(|p| Poll {
                id: format!("poll-{}", p.slug),
                kind: p.kind,
                question: p.question.to_string(),
            })
            .collect(),
        id,
        app_id,
        name: def.name.to_string(),
        state: "public".to_string(),
        multi_step: def.steps > 1,
        popularity: def.popularity,
        url: format!("https://{}/{path}", super::activity::server_for(app_id)),
        created_at,
    }
}

fn build_accounts(config: &SimConfig, first: NaiveDate, last: NaiveDate) -> Vec<Account> {
    let mut rng = Rng::new(config.seed, 1);
    let days = i64::from(config.days.max(1));
    let n = config.accounts.max(1);
    (0..n)
        .map(|i| {
            let a = rng.pick(ACCOUNT_WORDS_A);
            let b = rng.pick(ACCOUNT_WORDS_B);
            let plan = match i {
                0 => "enterprise",
                1 => "pro",
                2 => "free",
                _ => match rng.below(100) {
                    0..=24 => "enterprise",
                    25..=64 => "pro",
                    _ => "free",
                },
            };
            // Lifecycle: account 1 starts late, account 2 churns; others at random.
            let roll = rng.below(100);
            let late = i == 1 || (i > 2 && roll < 15);
            let churn = i == 2 || (i > 2 && (15..27).contains(&roll));
            let start = if late {
                add_days(first, days / 4 + rng.below((days / 4 + 1) as u64) as i64)
            } else {
                first
            };
            let end = if churn {
                add_days(
                    first,
                    (2 * days) / 3 - rng.below((days / 6 + 1) as u64) as i64,
                )
            } else {
                last
            };
            Account {
                id: format!("acct-{:04}", i + 1),
                name: format!("{a} {b} {}", i + 1),
                plan: plan.to_string(),
                asset_id: format!(
                    "AST-{:06}",
                    mix(&[config.seed, 2, u64::from(i)]) % 1_000_000
                ),
                region: rng.pick(REGIONS).to_string(),
                start,
                end: end.max(start),
                activity: 0.6 + 0.8 * rng.unit(),
                first_visit: None,
                last_visit: None,
            }
        })
        .collect()
}

fn build_visitors(
    config: &SimConfig,
    accounts: &[Account],
    first: NaiveDate,
    last: NaiveDate,
) -> Vec<Visitor> {
    let mut rng = Rng::new(config.seed, 3);
    let n = config.visitors.max(1);
    let anon = (n / 16).max(2).min(n / 3);
    let days = i64::from(config.days.max(1));
    (0..n)
        .map(|i| {
            let anonymous = i >= n - anon;
            let account = if anonymous {
                None
            } else if (i as usize) < accounts.len() {
                Some(i as usize)
            } else {
                // Skewed: low-index accounts are bigger.
                let u = rng.unit();
                Some(((u * u) * accounts.len() as f64) as usize % accounts.len())
            };
            let tier = if i == 0 {
                Tier::Heavy
            } else {
                match rng.below(100) {
                    0..=4 => Tier::Heavy,
                    5..=29 => Tier::Medium,
                    _ => Tier::Light,
                }
            };
            let mut apps = Vec::new();
            let uses_default = anonymous || i == 0 || !rng.chance(0.1);
            if uses_default {
                apps.push(DEFAULT_APP_ID);
            }
            if !anonymous && (rng.chance(0.4) || !uses_default) {
                apps.push(MOBILE_APP_ID);
            }
            if !anonymous && rng.chance(0.25) {
                apps.push(ADMIN_APP_ID);
            }
            apps.sort_unstable();
            let (acct_start, acct_end) = match account {
                Some(a) => (accounts[a].start, accounts[a].end),
                None => (first, last),
            };
            let start = if rng.chance(0.2) && i >= accounts.len() as u32 {
                add_days(acct_start, rng.below((days / 2 + 1) as u64) as i64)
            } else {
                acct_start
            };
            let end = if rng.chance(0.05) && i >= accounts.len() as u32 {
                add_days(start, rng.below((days / 2 + 1) as u64) as i64)
            } else {
                acct_end
            };
            let fi = rng.below(FIRST_NAMES.len() as u64) as usize;
            let li = rng.below(LAST_NAMES.len() as u64) as usize;
            let (email, first_name, last_name, project_id, role) = if anonymous {
                (None, None, None, None, None)
            } else {
                let fname = FIRST_NAMES[fi];
                let lname = LAST_NAMES[li];
                let acct = account.map(|a| accounts[a].id.as_str()).unwrap_or("none");
                let email =
                    format!("{}.{}{}@{acct}.example.com", fname, lname, i + 1).to_lowercase();
                let role = if i == 0 {
                    "admin"
                } else {
                    match rng.below(100) {
                        0..=14 => "admin",
                        15..=74 => "member",
                        _ => "viewer",
                    }
                };
                let project = format!(
                    "PRJ-{}",
                    100 + mix(&[config.seed, 4, account.unwrap_or(0) as u64, rng.below(3)]) % 900
                );
                (
                    (!rng.chance(0.1) || i == 0).then_some(email),
                    (!rng.chance(0.1) || i == 0).then(|| fname.to_string()),
                    (!rng.chance(0.1) || i == 0).then(|| lname.to_string()),
                    Some(project),
                    Some(role.to_string()),
                )
            };
            let id = if anonymous {
                let mut s = String::from("_PENDO_T_");
                s.push_str(&crate_hex(mix(&[config.seed, 5, u64::from(i)])));
                s
            } else {
                format!("v{:05}", i + 1)
            };
            Visitor {
                index: i,
                id,
                account,
                anonymous,
                email,
                first_name,
                last_name,
                project_id,
                role,
                tier,
                apps,
                start,
                end: end.max(start),
                omit_account_field: anonymous && i % 2 == 1,
                first_visit: None,
                last_visit: None,
            }
        })
        .collect()
}

fn crate_hex(h: u64) -> String {
    format!("{h:016x}")[..11].to_string()
}

fn fill_visit_times(sub: &mut Subscription) {
    let mut times = Vec::with_capacity(sub.visitors.len());
    for v in &sub.visitors {
        let (mut first, mut last) = (None, None);
        let mut d = v.start.max(sub.first_date);
        let end = v.end.min(sub.last_date);
        while d <= end {
            if let Some(t) = sub.visit_bounds(v, d).map(|b| b.0) {
                first = Some(t);
                break;
            }
            d = add_days(d, 1);
        }
        let mut d = end;
        let begin = v.start.max(sub.first_date);
        while first.is_some() && d >= begin {
            if let Some(t) = sub.visit_bounds(v, d).map(|b| b.1) {
                last = Some(t);
                break;
            }
            d = add_days(d, -1);
        }
        times.push((first, last));
    }
    for (v, (f, l)) in sub.visitors.iter_mut().zip(times) {
        v.first_visit = f;
        v.last_visit = l;
        if let Some(a) = v.account.and_then(|i| sub.accounts.get_mut(i)) {
            if let Some(f) = f {
                a.first_visit = Some(a.first_visit.map_or(f, |x| x.min(f)));
            }
            if let Some(l) = l {
                a.last_visit = Some(a.last_visit.map_or(l, |x| x.max(l)));
            }
        }
    }
}

fn build_segments(sub: &Subscription) -> Vec<Segment> {
    let mut out = Vec::new();
    for (id, name, rule) in [
        (
            "seg-enterprise",
            "Enterprise accounts",
            SegmentRule::AccountPlan("enterprise".into()),
        ),
        (
            "seg-pro",
            "Pro accounts",
            SegmentRule::AccountPlan("pro".into()),
        ),
        (
            "seg-admins",
            "Admins",
            SegmentRule::VisitorRole("admin".into()),
        ),
    ] {
        let mut visitors = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        match &rule {
            SegmentRule::AccountPlan(plan) => {
                for a in sub.accounts.iter().filter(|a| &a.plan == plan) {
                    accounts.insert(a.id.clone());
                }
                for v in &sub.visitors {
                    if let Some(a) = sub.account_id_of(v) {
                        if accounts.contains(a) {
                            visitors.insert(v.id.clone());
                        }
                    }
                }
            }
            SegmentRule::VisitorRole(role) => {
                for v in sub
                    .visitors
                    .iter()
                    .filter(|v| v.role.as_ref() == Some(role))
                {
                    visitors.insert(v.id.clone());
                    if let Some(a) = sub.account_id_of(v) {
                        accounts.insert(a.to_string());
                    }
                }
            }
        }
        let description = match &rule {
            SegmentRule::AccountPlan(p) => format!(
                "Accounts whose metadata.custom.plan == \"{p}\", and the visitors of those accounts"
            ),
            SegmentRule::VisitorRole(r) => format!(
                "Visitors whose metadata.custom.role == \"{r}\", and the accounts having one"
            ),
        };
        out.push(Segment {
            id: id.to_string(),
            name: name.to_string(),
            description,
            rule,
            visitors,
            accounts,
        });
    }
    out
}
