//! End users: email before external id, creation only when all four conditions hold,
//! never-overwrite, and passive activity.

use crate::helpers::*;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::{FieldMappingsInput, MappingKind, ObjectRef, Target};
use pendo_sync::store::prelude::*;
use std::collections::BTreeMap;

fn with_user_fields(auto_detect: bool) -> SettingsUpdate {
    SettingsUpdate {
        days_to_sync: Some(7),
        timezone: Some("America/New_York".into()),
        field_mappings: Some(FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            name: Some("metadata.agent.firstname".into()),
            surname: Some("metadata.agent.lastname".into()),
            ..Default::default()
        }),
        auto_detect_end_users: Some(auto_detect),
    }
}

/// Identified visitors with an email, an account, and events on the feature in the window.
fn active_visitors(s: &Stack, f: &str) -> Vec<(String, String, String, f64)> {
    let rows = s.feature_rows(f, d("2026-10-29"), d("2026-11-04"), NY, vec![]);
    let sums = sum_by(&rows, NY, "numEvents", |r| {
        Some((
            r["visitorId"].as_str()?.to_string(),
            r["accountId"].as_str()?.to_string(),
        ))
    });
    let mut total: BTreeMap<(String, String), f64> = BTreeMap::new();
    for ((k, _), v) in sums {
        *total.entry(k).or_insert(0.0) += v;
    }
    total
        .into_iter()
        .filter_map(|((v, a), n)| {
            let email = s.sim.subscription().visitor(&v)?.email.clone()?;
            (!a.is_empty()).then_some((v, a, email, n))
        })
        .collect()
}

#[tokio::test]
async fn email_is_matched_before_the_external_id_within_the_company() {
    let s = Stack::start().await;
    s.settings(with_user_fields(false)).await;
    s.add_companies(&[]).await;
    let f = s.feature(-323232);
    let vs = active_visitors(&s, &f);
    assert!(vs.len() >= 2);
    let (v1, a1, e1, n1) = vs[0].clone();
    let (v2, a2, _, n2) = vs[1].clone();
    // u1 carries v1's email but another visitor's id; u_decoy carries v1's id.
    let u1 = s.add_user(&a1, Some("someone-else"), Some(&e1), None).await;
    let decoy = s.add_user(&a1, Some(&v1), None, None).await;
    // u2 is matched on the external id (no email stored); u2_other has v2's id in another company.
    let u2 = s.add_user(&a2, Some(&v2), None, None).await;
    let other_company = s
        .sim
        .subscription()
        .accounts
        .iter()
        .find(|a| a.id != a2)
        .unwrap()
        .id
        .clone();
    let u2_other = s.add_user(&other_company, Some(&v2), None, None).await;
    s.mapping(
        MappingKind::Feature {
            feature_id: f,
            minutes_metric: None,
        },
        Target::EndUser,
        "Clicks",
        |_| {},
    )
    .await;
    s.resync().await;
    let totals: BTreeMap<String, f64> =
        s.values()
            .await
            .into_iter()
            .fold(BTreeMap::new(), |mut m, ((o, _, _, _), v)| {
                *m.entry(o).or_insert(0.0) += v;
                m
            });
    assert_eq!(totals.get(&u1.id), Some(&n1));
    assert_eq!(totals.get(&decoy.id), None);
    assert_eq!(totals.get(&u2.id), Some(&n2));
    assert_eq!(
        totals.get(&u2_other.id).filter(|_| other_company != a2),
        None
    );
}

#[tokio::test]
async fn users_are_created_only_when_all_four_conditions_hold() {
    // (global auto-detect, mapping auto-create, company in the directory) → users created
    let cases = [
        (true, true, true),
        (false, true, true),
        (true, false, true),
        (true, true, false),
    ];
    for (auto_detect, auto_create, company_exists) in cases {
        let s = Stack::start().await;
        s.settings(with_user_fields(auto_detect)).await;
        let f = s.feature(-323232);
        let vs = active_visitors(&s, &f);
        let (_, a1, _, _) = vs[0].clone();
        let skip: Vec<&str> = if company_exists {
            vec![]
        } else {
            vec![a1.as_str()]
        };
        s.add_companies(&skip).await;
        let m = s
            .mapping(
                MappingKind::Feature {
                    feature_id: f,
                    minutes_metric: None,
                },
                Target::Company,
                "Clicks",
                |m| m.auto_create_users = auto_create,
            )
            .await;
        s.resync().await;
        let users = s.store.list_end_users(&s.tenant).await.unwrap();
        let in_a1 = users.iter().filter(|u| u.company_id == a1).count();
        let should = auto_detect && auto_create && company_exists;
        assert_eq!(
            in_a1 > 0,
            should,
            "case {:?}",
            (auto_detect, auto_create, company_exists)
        );
        if !auto_detect || !auto_create {
            assert!(users.is_empty(), "case {:?}", (auto_detect, auto_create));
        }
        // Rows of anonymous visitors (no account) never create anyone.
        assert!(users.iter().all(|u| !u.company_id.is_empty()
            && !u
                .external_id
                .as_deref()
                .unwrap_or("")
                .starts_with("_PENDO_T_")));
        assert_eq!(s.users_created(&m.id).await as usize, users.len());
    }
}

#[tokio::test]
async fn name_surname_and_email_are_filled_but_never_overwritten() {
    for auto_create in [true, false] {
        let s = Stack::start().await;
        s.settings(with_user_fields(true)).await;
        s.add_companies(&[]).await;
        let f = s.feature(-323232);
        let (v1, a1, e1, _) = active_visitors(&s, &f)
            .into_iter()
            .find(|(v, ..)| {
                let sv = s.sim.subscription().visitor(v).unwrap();
                sv.first_name.is_some() && sv.last_name.is_some()
            })
            .unwrap();
        let sv = s.sim.subscription().visitor(&v1).unwrap().clone();
        let u = s.add_user(&a1, Some(&v1), None, Some("Keep")).await;
        s.mapping(
            MappingKind::Feature {
                feature_id: f,
                minutes_metric: None,
            },
            Target::EndUser,
            "Clicks",
            |m| m.auto_create_users = auto_create,
        )
        .await;
        s.resync().await;
        let after = s
            .store
            .list_end_users(&s.tenant)
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.id == u.id)
            .unwrap();
        assert_eq!(after.name.as_deref(), Some("Keep"), "never overwritten");
        assert_eq!(after.surname, sv.last_name, "filled when empty");
        let want_email = if auto_create {
            Some(e1.to_lowercase())
        } else {
            None
        };
        assert_eq!(
            after.email, want_email,
            "email only with auto-create (auto_create={auto_create})"
        );
    }
}

#[tokio::test]
async fn passive_activity_shows_in_recent_activity_but_never_moves_last_seen() {
    let s = Stack::start().await;
    s.settings(with_user_fields(false)).await;
    s.add_companies(&[]).await;
    let f = s.feature(-323232);
    let (v1, a1, _, _) = active_visitors(&s, &f)[0].clone();
    let u = s.add_user(&a1, Some(&v1), None, None).await;
    let passive = s
        .mapping(
            MappingKind::Feature {
                feature_id: f.clone(),
                minutes_metric: None,
            },
            Target::Company,
            "Passive clicks",
            |m| m.passive = true,
        )
        .await;
    s.resync().await;
    let who = ObjectRef {
        kind: Target::EndUser,
        id: u.id.clone(),
    };
    let sys = s.app.system_metrics(&s.tenant, &who).await.unwrap();
    assert_eq!((sys.last_seen, sys.last_active), (None, None));
    let company = ObjectRef {
        kind: Target::Company,
        id: a1.clone(),
    };
    assert_eq!(
        s.app
            .system_metrics(&s.tenant, &company)
            .await
            .unwrap()
            .users_active_last_7_days,
        Some(0)
    );
    let recent = s
        .store
        .recent_activity(
            &s.tenant,
            &pendo_sync::store::ActivityOf::EndUser(u.id.clone()),
            d("2026-10-01"),
            100,
        )
        .await
        .unwrap();
    assert!(
        !recent.is_empty()
            && recent
                .iter()
                .all(|a| a.passive && a.mapping_id == passive.id)
    );

    // The same events through an active mapping do move them.
    s.mapping(
        MappingKind::Feature {
            feature_id: f,
            minutes_metric: None,
        },
        Target::Company,
        "Clicks",
        |_| {},
    )
    .await;
    s.resync().await;
    let last_day = recent.iter().map(|a| a.day).max();
    let sys = s.app.system_metrics(&s.tenant, &who).await.unwrap();
    assert_eq!(sys.last_seen, last_day);
    assert!(
        s.app
            .system_metrics(&s.tenant, &company)
            .await
            .unwrap()
            .users_active_last_7_days
            .unwrap()
            >= 1
    );
}
