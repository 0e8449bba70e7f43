//! Unmatched identities (issue 20): two companies and twenty end users left out of the
//! directory are listed exactly (rows and values from a direct pipeline on the simulator), and
//! once added, a recovery re-fetches only their days and leaves the values of a run that had
//! the directory complete from the start.

use crate::helpers::*;
use chrono::NaiveDate;
use pendo_sync::app::recovery::UnmatchedQuery;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::unmatched::UnmatchedReason as R;
use pendo_sync::domain::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const AGG: &str = "/api/v1/aggregation";
const FROM: &str = "2026-10-22";
const TO: &str = "2026-11-04";

/// The product's grouping of feature rows, run directly on the simulator.
fn grouped(s: &Stack, feature: &str) -> Vec<serde_json::Value> {
    s.feature_rows(
        feature,
        d(FROM),
        d(TO),
        NY,
        vec![
            json!({"group": {"group": ["visitorId", "accountId", "appId", "day"],
            "fields": [{"numEvents": {"sum": "numEvents"}}]}}),
        ],
    )
}

/// Rows, events, first day and last day.
type Tally = (u64, f64, NaiveDate, NaiveDate);

/// (identity) → (rows, events, first day, last day) of the rows `key` picks.
fn tally(
    rows: &[serde_json::Value],
    key: impl Fn(&serde_json::Value) -> Option<String>,
) -> BTreeMap<String, Tally> {
    let mut out: BTreeMap<String, Tally> = BTreeMap::new();
    for r in rows {
        let Some(k) = key(r) else { continue };
        let day = local_day(r["day"].as_i64().unwrap(), NY);
        let e = out.entry(k).or_insert((0, 0.0, day, day));
        e.0 += 1;
        e.1 += r["numEvents"].as_f64().unwrap_or(0.0);
        e.2 = e.2.min(day);
        e.3 = e.3.max(day);
    }
    out
}

struct Setup {
    companies: Mapping,
    users: Mapping,
    missing_companies: Vec<String>,
    missing_users: Vec<(String, String)>,
}

/// A company Feature mapping and an end-user Feature mapping (no creation) over 14 days; the
/// directory holds every account and every identified visitor with an account, but for
/// `left_out` of them.
async fn setup(s: &Stack, left_out: bool) -> Setup {
    s.settings(SettingsUpdate {
        days_to_sync: Some(14),
        timezone: Some("America/New_York".into()),
        ..Default::default()
    })
    .await;
    let f = s.feature(-323232);
    let rows = grouped(s, &f);
    let sub = s.sim.subscription();
    // The two busiest accounts and twenty visitors with rows (of other accounts) are left out.
    let by_account = tally(&rows, |r| r["accountId"].as_str().map(str::to_string));
    let mut busiest: Vec<(&String, &Tally)> = by_account.iter().collect();
    busiest.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let missing_companies: Vec<String> =
        busiest.iter().take(2).map(|(k, _)| (*k).clone()).collect();
    let mut missing_users: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &rows {
        let (Some(v), Some(a)) = (r["visitorId"].as_str(), r["accountId"].as_str()) else {
            continue;
        };
        if missing_companies.iter().any(|c| c == a) || !seen.insert(v.to_string()) {
            continue;
        }
        if sub.visitor(v).is_some_and(|x| !x.anonymous) && missing_users.len() < 20 {
            missing_users.push((v.to_string(), a.to_string()));
        }
    }
    assert_eq!(missing_users.len(), 20);
    let skip: Vec<&str> = if left_out {
        missing_companies.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    s.add_companies(&skip).await;
    for v in sub.visitors.iter().filter(|v| !v.anonymous) {
        let Some(a) = v.account.map(|i| sub.accounts[i].id.clone()) else {
            continue;
        };
        if left_out && missing_users.iter().any(|(id, _)| *id == v.id) {
            continue;
        }
        s.add_user(&a, Some(&v.id), None, None).await;
    }
    let feature = || MappingKind::Feature {
        feature_id: f.clone(),
        minutes_metric: None,
    };
    let companies = s
        .mapping(feature(), Target::Company, "Clicks", |_| {})
        .await;
    let users = s
        .mapping(feature(), Target::EndUser, "User clicks", |_| {})
        .await;
    Setup {
        companies,
        users,
        missing_companies,
        missing_users,
    }
}

fn listed(v: &pendo_sync::app::recovery::UnmatchedView, reason: R) -> BTreeMap<String, Tally> {
    v.identities
        .iter()
        .filter(|i| i.reason == reason)
        .map(|i| {
            (
                i.identity.clone(),
                (i.rows, i.value, i.first_day, i.last_day),
            )
        })
        .collect()
}

fn values_only(rows: Vec<ExportRow>) -> Vec<ExportRow> {
    rows.into_iter().filter(|r| r.record == "value").collect()
}

/// The values of a Re-sync all with the full directory, and a stack re-synced with the
/// companies and end users of `setup` left out.
async fn resynced_with_and_without_the_left_out() -> (Vec<ExportRow>, Stack, Setup) {
    let full = Stack::start().await;
    setup(&full, false).await;
    full.resync().await;
    let want = values_only(full.export().await);
    let s = Stack::start().await;
    let left_out = setup(&s, true).await;
    s.resync().await;
    (want, s, left_out)
}

#[tokio::test]
async fn rows_of_identities_left_out_are_listed_exactly_and_recovered_once_they_are_added() {
    let (want, s, setup) = resynced_with_and_without_the_left_out().await;
    let f = s.feature(-323232);
    let rows = grouped(&s, &f);
    let q = UnmatchedQuery {
        limit: Some(1000),
        ..UnmatchedQuery::default()
    };

    // Companies: exactly the two left out, with the rows and events of a direct pipeline.
    let v = s
        .app
        .unmatched(&s.tenant, &setup.companies.id, &q)
        .await
        .unwrap();
    let want_companies = tally(&rows, |r| {
        let a = r["accountId"].as_str()?;
        setup
            .missing_companies
            .iter()
            .any(|c| c == a)
            .then(|| a.to_string())
    });
    assert_eq!(listed(&v, R::CompanyNotInDirectory), want_companies);
    // And the rows without an account, by visitor: an anonymous visitor is its own reason
    // (issue 32: never "no company id", which the directory could never cure).
    let no_account = |anonymous: bool| {
        tally(&rows, move |r| {
            let visitor = r["visitorId"].as_str().unwrap_or_default();
            (r["accountId"].as_str().is_none_or(str::is_empty)
                && visitor.starts_with("_PENDO_T_") == anonymous)
                .then(|| visitor.to_string())
        })
    };
    assert!(!no_account(true).is_empty());
    assert_eq!(listed(&v, R::AnonymousVisitor), no_account(true));
    assert_eq!(listed(&v, R::NoCompanyId), no_account(false));
    let mut reasons = vec![R::CompanyNotInDirectory, R::AnonymousVisitor];
    if !no_account(false).is_empty() {
        reasons.push(R::NoCompanyId);
    }
    reasons.sort();
    assert_eq!(v.totals.keys().copied().collect::<Vec<_>>(), reasons);
    assert_eq!(
        v.totals[&R::CompanyNotInDirectory].rows,
        want_companies.values().map(|t| t.0).sum::<u64>()
    );
    assert!(v.recoverable_days.is_empty(), "nothing to recover yet");

    // End users: the twenty left out.
    let u = s
        .app
        .unmatched(&s.tenant, &setup.users.id, &q)
        .await
        .unwrap();
    let want_users = tally(&rows, |r| {
        let v = r["visitorId"].as_str()?;
        setup
            .missing_users
            .iter()
            .any(|(id, _)| id == v)
            .then(|| v.to_string())
    });
    assert_eq!(listed(&u, R::EndUserNotFound), want_users);
    // (The end users of the two companies left out are in the directory: they are matched.)
    assert!(!u.totals.contains_key(&R::CompanyNotInDirectory));
    let overview = s.app.unmatched_overview(&s.tenant).await.unwrap();
    assert_eq!(overview.len(), 2);
    assert_ne!(values_only(s.export().await), want);

    // The directory gains them: their days become recoverable.
    s.add_companies(&[]).await;
    for (v, a) in &setup.missing_users {
        s.add_user(a, Some(v), None, None).await;
    }
    let v = s
        .app
        .unmatched(&s.tenant, &setup.companies.id, &q)
        .await
        .unwrap();
    let company_days: BTreeSet<NaiveDate> = rows
        .iter()
        .filter(|r| {
            r["accountId"]
                .as_str()
                .is_some_and(|a| setup.missing_companies.iter().any(|c| c == a))
        })
        .map(|r| local_day(r["day"].as_i64().unwrap(), NY))
        .collect();
    assert_eq!(
        v.recoverable_days,
        company_days.iter().copied().collect::<Vec<_>>()
    );
    let u = s
        .app
        .unmatched(&s.tenant, &setup.users.id, &q)
        .await
        .unwrap();
    let user_days: BTreeSet<NaiveDate> = u.recoverable_days.iter().copied().collect();

    // Recover: one Pendo call per chunk of the affected days (runs of consecutive days, at most
    // seven a chunk), then the values of a run that had the directory complete.
    let chunks = |days: &BTreeSet<NaiveDate>| {
        pendo_sync::sync::unmatched::windows(days)
            .into_iter()
            .map(|w| pendo_sync::sync::plan::chunks(w, 7).len() as u64)
            .sum::<u64>()
    };
    let c = s.sim.control();
    let before = c.calls(AGG);
    s.app.recover(&s.tenant, &setup.companies.id).await.unwrap();
    s.app.recover(&s.tenant, &setup.users.id).await.unwrap();
    s.drain().await;
    assert_eq!(
        c.calls(AGG) - before,
        chunks(&company_days) + chunks(&user_days)
    );
    assert_eq!(values_only(s.export().await), want);
    // Nothing is left to recover, and what is left unmatched cannot be.
    for m in [&setup.companies, &setup.users] {
        let v = s.app.unmatched(&s.tenant, &m.id, &q).await.unwrap();
        assert!(v.recoverable_days.is_empty());
        assert!(!v.totals.contains_key(&R::CompanyNotInDirectory));
        assert!(!v.totals.contains_key(&R::EndUserNotFound));
        match s.app.recover(&s.tenant, &m.id).await {
            Err(pendo_sync::AppError::Conflict(m)) => {
                assert!(m.starts_with("nothing to recover"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_daily_run_recovers_the_days_the_directory_now_resolves() {
    let (want, s, setup) = resynced_with_and_without_the_left_out().await;
    s.add_companies(&[]).await;
    for (v, a) in &setup.missing_users {
        s.add_user(a, Some(v), None, None).await;
    }
    s.app.run_schedule().await.unwrap();
    s.drain().await;
    assert_eq!(values_only(s.export().await), want);
}
