//! The import's unit tests: the page requests, reading rows, and the plans for companies and
//! end users.

use super::*;
use crate::domain::{
    DirectoryObject, EndUser, EndUserInput, FieldMappings, FieldRef, FieldRole, ImportCounts,
};
use serde_json::{json, Value};
use std::collections::HashMap;

fn field(s: &str, role: FieldRole) -> FieldRef {
    FieldRef::parse("f", s, role).unwrap()
}

fn pipeline(v: &Value) -> Vec<Value> {
    v["request"]["pipeline"].as_array().unwrap().clone()
}

#[test]
fn the_visitors_request_reads_the_mapped_fields_after_the_last_id() {
    let fields = FieldMappings {
        email: Some(field("metadata.agent.email", FieldRole::EndUser)),
        name: Some(field("account.metadata.agent.name", FieldRole::EndUser)),
        ..FieldMappings::default()
    };
    let r = visitors_page(&fields, (Some("v\"9"), PAGE_ROWS), "imp-1");
    assert_eq!(
        pipeline(&r),
        vec![
            json!({"source": {"visitors": {"identified": true}}}),
            json!({"filter": "visitorId > \"v\\\"9\""}),
            json!({"sort": ["visitorId"]}),
            json!({"limit": PAGE_ROWS}),
            json!({"eval": {"accountId": "metadata.auto.accountid"}}),
            json!({"bulkExpand": {"account": {"account": "accountId"}}}),
            json!({"select": {"pendoId": "visitorId", "company": "accountId", "endUser": "visitorId",
                "email": "metadata.agent.email", "name": "account.agent.name"}}),
        ]
    );
    assert_eq!(r["request"]["requestId"], "imp-1");
}

#[test]
fn the_accounts_request_reads_the_company_id_and_name_or_is_none_for_a_visitor_field() {
    let fields = FieldMappings::default();
    let name = field("metadata.agent.name", FieldRole::Object);
    let r = accounts_page(&fields, Some(&name), (None, 20), "imp").unwrap();
    assert_eq!(
        pipeline(&r),
        vec![
            json!({"source": {"accounts": null}}),
            json!({"sort": ["accountId"]}),
            json!({"limit": 20}),
            json!({"select": {"pendoId": "accountId", "company": "accountId", "name": "metadata.agent.name"}}),
        ]
    );
    let by_visitor = FieldMappings {
        company_id: field("visitor.metadata.agent.company", FieldRole::Object),
        ..FieldMappings::default()
    };
    assert_eq!(accounts_page(&by_visitor, None, (None, 20), "imp"), None);
    assert!(!companies_from_accounts(&by_visitor));
}

#[test]
fn rows_are_read_as_trimmed_text() {
    let r = PendoRow::read(
        br#"{"pendoId":"v1","company":42,"email":" Ann@X.test ","name":"","surname":null}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        r,
        PendoRow {
            key: "v1".into(),
            company: Some("42".into()),
            email: Some("ann@x.test".into()),
            ..PendoRow::default()
        }
    );
    assert_eq!(PendoRow::read(br#"{"company":"a"}"#).unwrap(), None);
    assert!(PendoRow::read(b"[1]").is_err());
}

fn row(key: &str, company: Option<&str>, name: Option<&str>) -> PendoRow {
    PendoRow {
        key: key.into(),
        company: company.map(str::to_string),
        name: name.map(str::to_string),
        ..PendoRow::default()
    }
}

#[test]
fn companies_are_created_or_named_never_renamed() {
    let known: HashMap<String, Option<String>> = [
        ("a".to_string(), None),
        ("b".to_string(), Some("Beta Inc".to_string())),
        ("c".to_string(), Some(String::new())),
    ]
    .into();
    let rows = [
        row("a", Some("a"), Some("Alpha")),
        row("b", Some("b"), Some("Beta renamed")),
        row("c", Some("c"), None),
        row("d", Some("d"), Some("Delta")),
        row("e", None, Some("Echo")),
        row("f", Some("d"), None),
    ];
    let mut counts = ImportCounts::default();
    let plan = plan_companies(&rows, &known, &mut counts);
    let obj = |id: &str, name: Option<&str>| DirectoryObject {
        external_id: id.into(),
        name: name.map(str::to_string),
        company_id: None,
    };
    assert_eq!(plan[0].1, Action::NameCompany(obj("a", Some("Alpha"))));
    assert_eq!(plan[1].1, Action::Unchanged);
    assert_eq!(plan[2].1, Action::Unchanged);
    assert_eq!(plan[3].1, Action::CreateCompany(obj("d", Some("Delta"))));
    assert!(matches!(
        plan[4].1,
        Action::Skip {
            reason: "noCompanyId",
            ..
        }
    ));
    assert_eq!(
        plan[5].1,
        Action::skip("repeated", "account d already gives company id d")
    );
    assert_eq!(
        counts,
        ImportCounts {
            read: 6,
            created: 1,
            filled: 1,
            unchanged: 2,
            skipped: [("noCompanyId".into(), 1), ("repeated".into(), 1)].into(),
        }
    );
}

fn user(
    id: &str,
    company: &str,
    ext: Option<&str>,
    email: Option<&str>,
    name: Option<&str>,
) -> EndUser {
    EndUser {
        id: id.into(),
        company_id: company.into(),
        external_id: ext.map(str::to_string),
        email: email.map(str::to_string),
        name: name.map(str::to_string),
        surname: None,
    }
}

fn visitor(
    key: &str,
    company: &str,
    ext: Option<&str>,
    email: Option<&str>,
    name: Option<&str>,
) -> PendoRow {
    PendoRow {
        key: key.into(),
        company: Some(company.into()),
        end_user: ext.map(str::to_string),
        email: email.map(str::to_string),
        name: name.map(str::to_string),
        surname: None,
    }
}

#[test]
fn end_users_are_created_or_filled_where_empty_and_never_take_an_email() {
    let companies = vec![DirectoryObject {
        external_id: "acme".into(),
        name: None,
        company_id: None,
    }];
    let users = vec![
        user("u1", "acme", Some("v1"), None, Some("Ann")),
        user("u2", "acme", Some("v2"), Some("bob@acme.test"), None),
    ];
    let dir = UserDirectory::new(&companies, &users);
    let rows = [
        // Known, empty email: filled; a name never replaced.
        visitor(
            "v1",
            "acme",
            Some("v1"),
            Some("ann@acme.test"),
            Some("Anne"),
        ),
        // Known, everything set already.
        visitor("v2", "acme", Some("v2"), Some("bob@acme.test"), None),
        visitor("v3", "acme", Some("v3"), Some("cid@acme.test"), Some("Cid")),
        // Another visitor with bob's email: not created, never given it.
        visitor("v4", "acme", Some("v4"), Some("bob@acme.test"), None),
        visitor("v5", "zeta", Some("v5"), None, None),
        visitor("v6", "acme", None, None, Some("Nobody")),
        visitor("v7", "acme", Some("v3"), None, None),
    ];
    let mut counts = ImportCounts::default();
    let plan = plan_end_users(&rows, &dir, &mut counts);
    assert_eq!(
        plan[0].1,
        Action::FillUser {
            user: users[0].clone(),
            email: Some("ann@acme.test".into()),
            name: None,
            surname: None,
        }
    );
    assert_eq!(plan[1].1, Action::Unchanged);
    assert_eq!(
        plan[2].1,
        Action::CreateUser(EndUserInput {
            company_id: "acme".into(),
            external_id: Some("v3".into()),
            email: Some("cid@acme.test".into()),
            name: Some("Cid".into()),
            surname: None,
        })
    );
    assert_eq!(
        plan[3].1,
        Action::skip(
            "emailTaken",
            "email bob@acme.test belongs to end user v2 of company acme"
        )
    );
    assert_eq!(
        plan[4].1,
        Action::skip(
            "companyNotInDirectory",
            "company zeta of visitor v5 is not in the directory"
        )
    );
    assert!(matches!(
        plan[5].1,
        Action::Skip {
            reason: "noIdOrEmail",
            ..
        }
    ));
    assert_eq!(
        plan[6].1,
        Action::skip("repeated", "visitor v3 already gives this end user")
    );
    assert_eq!(
        (counts.read, counts.created, counts.filled, counts.unchanged),
        (7, 1, 1, 1)
    );
    assert_eq!(counts.skipped.values().sum::<u64>(), 4);
}
