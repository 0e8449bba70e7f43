//! Saved visitor/account reports: each carries a real aggregation pipeline the engine runs.
//!
//! Discriminators (our choice, documented in the README): `kind` and `level` are
//! `"visitor"` or `"account"`, `target` is `"visitors"`/`"accounts"`, and
//! `definition.dateRanges.primaryDateRange.type` is `"relative"` (pipeline `first` is a
//! `now()` expression with a negative `count`) or `"fixed"` (absolute ms `first`/`last`).

use serde_json::{json, Value};

use super::Subscription;
use crate::timeutil::{add_days, day_start_ms};

fn relative_ts(days: i64) -> Value {
    json!({ "period": "dayRange", "first": "now()", "count": -days })
}

fn field(name: &str, title: &str, ty: &str) -> Value {
    json!({ "field": name, "title": title, "type": ty })
}

#[allow(clippy::too_many_arguments)]
fn report(
    id: &str,
    name: &str,
    level: &str,
    range: &str,
    ts: &Value,
    pipeline: Value,
    fields: Value,
    created: i64,
) -> Value {
    json!({
        "id": id,
        "name": name,
        "kind": level,
        "level": level,
        "target": format!("{level}s"),
        "type": "table",
        "shared": true,
        "createdAt": created,
        "lastUpdatedAt": created,
        "definition": {
            "kind": level,
            "type": "table",
            "dateRanges": { "primaryDateRange": { "type": range },
                            "useSecondaryDateRange": false },
            "timeSeries": { "type": range, "primaryTimeSeries": ts },
        },
        "aggregation": { "fields": fields, "pipeline": pipeline },
    })
}

fn visitor_usage(ts: &Value, source: &str) -> Value {
    json!([
        { "source": { source: { "appId": "expandAppIds(\"*\")" }, "timeSeries": ts } },
        { "identified": "visitorId" },
        { "group": { "group": ["visitorId"], "fields": [
            { "numEvents": { "sum": "numEvents" } },
            { "numMinutes": { "sum": "numMinutes" } },
            { "daysActive": { "count": "day" } } ] } },
        { "bulkExpand": { "visitor": { "visitor": "visitorId" } } },
        { "select": { "visitorId": "visitorId", "visitor_agent_email": "visitor.agent.email",
                      "numEvents": "numEvents", "numMinutes": "numMinutes",
                      "daysActive": "daysActive" } },
        { "sort": ["visitorId"] }
    ])
}

fn account_usage(ts: &Value) -> Value {
    json!([
        { "source": { "events": { "appId": "expandAppIds(\"*\")" }, "timeSeries": ts } },
        { "identified": "accountId" },
        { "group": { "group": ["accountId"], "fields": {
            "numEvents": { "sum": "numEvents" },
            "numMinutes": { "sum": "numMinutes" },
            "daysActive": { "count": "day" },
            "numVisitors": { "count": "visitorId" } } } },
        { "bulkExpand": { "account": { "account": "accountId" } } },
        { "select": { "accountId": "accountId", "account_agent_name": "account.agent.name",
                      "account_custom_plan": "account.custom.plan",
                      "numEvents": "numEvents", "numMinutes": "numMinutes",
                      "daysActive": "daysActive", "numVisitors": "numVisitors" } },
        { "sort": ["accountId"] }
    ])
}

/// Per account and app: rows carry `appId`, so a multi-app mapping splits them.
fn account_app_usage(ts: &Value) -> Value {
    json!([
        { "source": { "events": { "appId": "expandAppIds(\"*\")" }, "timeSeries": ts } },
        { "identified": "accountId" },
        { "group": { "group": ["accountId", "appId"], "fields": {
            "numEvents": { "sum": "numEvents" },
            "numMinutes": { "sum": "numMinutes" } } } },
        { "select": { "accountId": "accountId", "appId": "appId",
                      "numEvents": "numEvents", "numMinutes": "numMinutes" } },
        { "sort": ["accountId", "appId"] }
    ])
}

fn visitor_fields() -> Value {
    json!([
        field("visitorId", "Visitor ID", "string"),
        field("visitor_agent_email", "Email", "string"),
        field("numEvents", "Number of Events", "number"),
        field("numMinutes", "Number of Minutes", "number"),
        field("daysActive", "Days Active", "number"),
    ])
}

fn account_fields() -> Value {
    json!([
        field("accountId", "Account ID", "string"),
        field("account_agent_name", "Account Name", "string"),
        field("account_custom_plan", "Plan", "string"),
        field("numEvents", "Number of Events", "number"),
        field("numMinutes", "Number of Minutes", "number"),
        field("daysActive", "Days Active", "number"),
        field("numVisitors", "Active Visitors", "number"),
    ])
}

/// Build the saved reports of a subscription.
pub fn build(sub: &Subscription) -> Vec<Value> {
    let tz = sub.timezone;
    let created = day_start_ms(tz, sub.first_date);
    // Fixed range: the 7 local days ending 7 days before the last history date.
    let fixed_first = day_start_ms(tz, add_days(sub.last_date, -13));
    let fixed_last = day_start_ms(tz, add_days(sub.last_date, -6));
    let fixed_ts = json!({ "period": "dayRange", "first": fixed_first, "last": fixed_last });
    let t7 = relative_ts(7);
    let t30 = relative_ts(30);
    let t90 = relative_ts(90);
    let t365 = relative_ts(365);
    let contacts = json!([
        { "source": { "events": { "appId": "expandAppIds(\"*\")" }, "timeSeries": t30 } },
        { "identified": "visitorId" },
        { "group": { "group": ["visitorId"] } },
        { "bulkExpand": { "visitor": { "visitor": "visitorId" } } },
        { "select": { "visitorId": "visitorId", "visitor_agent_email": "visitor.agent.email",
                      "visitor_agent_firstname": "visitor.agent.firstname",
                      "visitor_custom_projectid": "visitor.custom.projectid" } },
        { "sort": ["visitorId"] }
    ]);
    vec![
        report(
            "rpt-visitor-7d",
            "Visitor activity, last 7 days",
            "visitor",
            "relative",
            &t7,
            visitor_usage(&t7, "events"),
            visitor_fields(),
            created,
        ),
        report(
            "rpt-account-30d",
            "Account activity, last 30 days",
            "account",
            "relative",
            &t30,
            account_usage(&t30),
            account_fields(),
            created,
        ),
        report(
            "rpt-visitor-features-90d",
            "Visitor feature usage, last 90 days",
            "visitor",
            "relative",
            &t90,
            visitor_usage(&t90, "featureEvents"),
            visitor_fields(),
            created,
        ),
        report(
            "rpt-account-fixed",
            "Account activity, fixed week",
            "account",
            "fixed",
            &fixed_ts,
            account_usage(&fixed_ts),
            account_fields(),
            created,
        ),
        report(
            "rpt-visitor-contacts",
            "Active visitor contacts, last 30 days",
            "visitor",
            "relative",
            &t30,
            contacts,
            json!([
                field("visitorId", "Visitor ID", "string"),
                field("visitor_agent_email", "Email", "string"),
                field("visitor_agent_firstname", "First Name", "string"),
                field("visitor_custom_projectid", "Project ID", "string"),
            ]),
            created,
        ),
        report(
            "rpt-account-apps-14d",
            "Account activity per app, last 14 days",
            "account",
            "relative",
            &relative_ts(14),
            account_app_usage(&relative_ts(14)),
            json!([
                field("accountId", "Account ID", "string"),
                field("appId", "App ID", "number"),
                field("numEvents", "Number of Events", "number"),
                field("numMinutes", "Number of Minutes", "number"),
            ]),
            created,
        ),
        report(
            "rpt-account-365d",
            "Account activity, last 365 days",
            "account",
            "relative",
            &t365,
            account_usage(&t365),
            account_fields(),
            created,
        ),
    ]
}
