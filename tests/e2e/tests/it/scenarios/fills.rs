//! Report and Aggregation mappings to end users fill name, surname and email from the row's
//! columns that the field mappings name (a metadata field by the column name Pendo's reports
//! give it, `visitor_agent_email`), only where the user's field is empty, and the email only on
//! a mapping with "Auto-create users?" on (DESIGN §2) — as Feature and Page mappings do.

use crate::helpers::*;
use chrono::NaiveDate;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::mapping::FieldMetric;
use pendo_sync::domain::{EndUser, FieldMappingsInput, MappingKind, Target};
use pendo_sync::store::prelude::*;
use serde_json::{json, Value};

fn user_fields() -> SettingsUpdate {
    SettingsUpdate {
        field_mappings: Some(FieldMappingsInput {
            email: Some("metadata.agent.email".into()),
            name: Some("metadata.agent.firstname".into()),
            surname: Some("metadata.agent.lastname".into()),
            ..Default::default()
        }),
        auto_detect_end_users: Some(true),
        ..Default::default()
    }
}

/// Identified visitors with an account, an email, a first and a last name, among `rows`
/// (`visitorId` column), as (visitor id, account id).
fn named_visitors(s: &Stack, rows: &[Value]) -> Vec<(String, String)> {
    let sub = s.sim.subscription();
    rows.iter()
        .filter_map(|r| {
            let v = sub.visitor(r["visitorId"].as_str()?)?;
            let a = sub.account_id_of(v)?;
            (v.email.is_some() && v.first_name.is_some() && v.last_name.is_some())
                .then(|| (v.id.clone(), a.to_string()))
        })
        .collect()
}

async fn users(s: &Stack) -> Vec<EndUser> {
    s.store.list_end_users(&s.tenant).await.unwrap()
}

fn the(users: &[EndUser], company: &str, visitor: &str) -> EndUser {
    users
        .iter()
        .find(|u| u.company_id == company && u.external_id.as_deref() == Some(visitor))
        .unwrap_or_else(|| panic!("no end user {visitor} of {company}"))
        .clone()
}

/// Local noon in New York of `day`.
fn ny_noon(day: NaiveDate) -> i64 {
    use chrono::TimeZone;
    NY.from_local_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn a_saved_report_to_end_users_fills_the_email_only_with_auto_create() {
    for auto_create in [false, true] {
        let s = Stack::start().await;
        s.ny_days(3).await;
        s.settings(user_fields()).await;
        s.add_companies(&[]).await;
        // The report as the product runs it for the last day: its 7-day window ending then.
        let report = s
            .sim
            .subscription()
            .report("rpt-visitor-7d")
            .unwrap()
            .clone();
        let mut pipeline = report["aggregation"]["pipeline"].clone();
        pipeline[0]["source"]["timeSeries"] =
            json!({"period": "dayRange", "first": ny_noon(d("2026-10-29")), "count": 7});
        let rows = s
            .sim
            .run_aggregation(&json!({ "request": { "pipeline": pipeline } }))
            .unwrap();
        let named = named_visitors(&s, &rows);
        let (known, new) = (&named[0], &named[1]);
        s.add_user(&known.1, Some(&known.0), None, None).await;
        s.mapping(
            MappingKind::Report {
                report_id: "rpt-visitor-7d".into(),
                columns: vec![FieldMetric {
                    field: "numEvents".into(),
                    metric: "Events 7d".into(),
                }],
            },
            Target::EndUser,
            "Events 7d",
            |m| m.auto_create_users = auto_create,
        )
        .await;
        s.resync().await;
        let all = users(&s).await;
        let sub = s.sim.subscription();
        let email = |v: &str| {
            sub.visitor(v)
                .unwrap()
                .email
                .clone()
                .map(|e| e.to_lowercase())
        };
        let u = the(&all, &known.1, &known.0);
        // The report has an email column but no name columns.
        assert_eq!(
            (u.email.clone(), u.name.clone(), u.surname.clone()),
            (if auto_create { email(&known.0) } else { None }, None, None),
            "auto_create={auto_create}"
        );
        if auto_create {
            let created = the(&all, &new.1, &new.0);
            assert_eq!(created.email, email(&new.0));
        } else {
            assert_eq!(all.len(), 1, "no user created without auto-create");
        }
    }
}

#[tokio::test]
async fn an_aggregation_to_end_users_fills_names_and_emails_only_where_empty() {
    let s = Stack::start().await;
    s.ny_days(3).await;
    s.settings(user_fields()).await;
    s.add_companies(&[]).await;
    let pipeline = json!([
        {"source": {"events": {"appId": "expandAppIds(\"*\")"},
            "timeSeries": {"first": "now()", "count": 1, "period": "dayRange"}}},
        {"identified": "visitorId"},
        {"group": {"group": ["visitorId"], "fields": {"numEvents": {"sum": "numEvents"},
            "accountId": {"first": "accountId"}}}},
        {"bulkExpand": {"visitor": {"visitor": "visitorId"}}},
        {"select": {"visitorId": "visitorId", "accountId": "accountId",
            "visitor_agent_email": "visitor.agent.email",
            "visitor_agent_firstname": "visitor.agent.firstname",
            "visitor_agent_lastname": "visitor.agent.lastname", "events": "numEvents"}}
    ]);
    let mut last_day = pipeline.clone();
    last_day[0]["source"]["timeSeries"] =
        json!({"period": "dayRange", "first": ny_noon(d("2026-11-04")), "count": 1});
    let rows = s
        .sim
        .run_aggregation(&json!({ "request": { "pipeline": last_day } }))
        .unwrap();
    let named = named_visitors(&s, &rows);
    let (blank, kept, new) = (&named[0], &named[1], &named[2]);
    s.add_user(&blank.1, Some(&blank.0), None, None).await;
    s.add_user(
        &kept.1,
        Some(&kept.0),
        Some("kept@example.org"),
        Some("Kept"),
    )
    .await;
    let before = users(&s).await.len();
    let m = s
        .mapping(
            MappingKind::Aggregation {
                pipeline,
                fields: vec![FieldMetric {
                    field: "events".into(),
                    metric: "Events".into(),
                }],
            },
            Target::EndUser,
            "Events",
            |m| m.auto_create_users = true,
        )
        .await;
    s.resync().await;
    let all = users(&s).await;
    let sub = s.sim.subscription();
    let sim = |v: &str| {
        let v = sub.visitor(v).unwrap();
        (
            v.email.clone().map(|e| e.to_lowercase()),
            v.first_name.clone(),
            v.last_name.clone(),
        )
    };
    let fields = |u: EndUser| (u.email, u.name, u.surname);
    // Empty fields filled from the row, the email too (auto-create is on).
    assert_eq!(fields(the(&all, &blank.1, &blank.0)), sim(&blank.0));
    // Stored fields kept: only the empty surname is filled.
    assert_eq!(
        fields(the(&all, &kept.1, &kept.0)),
        (
            Some("kept@example.org".to_string()),
            Some("Kept".to_string()),
            sim(&kept.0).2
        )
    );
    // A new user gets the row's fields.
    assert_eq!(fields(the(&all, &new.1, &new.0)), sim(&new.0));
    // The mapping's status counts the users its run created.
    let status = s.app.mapping_status(&m).await.unwrap().unwrap();
    let last = status.last_run.unwrap();
    assert_eq!(last.users_created as usize, all.len() - before);
    assert!(last.users_created > 0);
}
