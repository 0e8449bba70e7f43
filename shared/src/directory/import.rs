//! The directory from Pendo (pure parts): the requests that read a page of the subscription's
//! accounts or identified visitors through the field mappings, the rows they give, and what an
//! import does with each row against the directory as it stands.
//!
//! - Companies come from accounts: external id from the company id field (`accountId` or an
//!   account metadata path), name from the chosen account field. A company id field that reads
//!   visitor metadata has no account to read: companies are then left to the API or a CSV.
//! - End users come from identified visitors: external id, email, name and surname through the
//!   field mappings, company from the company id field (a visitor's account is
//!   `metadata.auto.accountid`). A visitor is matched within its company on its external id
//!   (on its email when it has none), like a directory batch.
//! - Nothing non-empty is ever overwritten: a known company gets a name only where it has none,
//!   a known end user an email, name or surname only where that field is empty (an email only
//!   when no other end user of the company has it).
//!
//! Pages are read in the order of the Pendo id (keyset: `filter id > last`, `sort`, `limit`), so
//! an import can stop after any page and go on from the last id it recorded.

use crate::domain::{
    DirectoryObject, EndUser, EndUserInput, FieldMappings, FieldRecord, FieldRef, ImportCounts,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// Rows per Pendo call, unless an import asks for fewer.
pub const PAGE_ROWS: u32 = 5000;

/// Output columns of the import requests.
mod col {
    pub const KEY: &str = "pendoId";
    pub const COMPANY: &str = "company";
    pub const END_USER: &str = "endUser";
    pub const EMAIL: &str = "email";
    pub const NAME: &str = "name";
    pub const SURNAME: &str = "surname";
}

/// The expression of a field on a `visitors` row (its account, when needed, expanded into
/// `account`).
fn on_visitor(f: &FieldRef) -> String {
    match f.record {
        FieldRecord::Row if f.path == "accountId" => "accountId".into(),
        FieldRecord::Row => f.path.clone(),
        FieldRecord::Visitor => format!("metadata.{}", f.path),
        FieldRecord::Account => format!("account.{}", f.path),
    }
}

/// The expression of a field on an `accounts` row; `None` for a visitor field.
fn on_account(f: &FieldRef) -> Option<String> {
    match f.record {
        FieldRecord::Row if f.path == "accountId" => Some("accountId".into()),
        FieldRecord::Account => Some(format!("metadata.{}", f.path)),
        _ => None,
    }
}

fn request(
    id: &str,
    source: Value,
    key: &str,
    (after, limit): (Option<&str>, u32),
    mut rest: Vec<Value>,
) -> Value {
    let mut pipeline = vec![source];
    if let Some(after) = after {
        // A JSON string is the expression language's string literal.
        let literal = serde_json::to_string(after).unwrap_or_default();
        pipeline.push(json!({ "filter": format!("{key} > {literal}") }));
    }
    pipeline.push(json!({ "sort": [key] }));
    pipeline.push(json!({ "limit": limit }));
    pipeline.append(&mut rest);
    json!({
        "response": { "mimeType": "application/json" },
        "request": { "name": "pendo-sync", "requestId": id, "pipeline": pipeline },
    })
}

/// Whether companies can be read from accounts with these field mappings.
pub fn companies_from_accounts(fields: &FieldMappings) -> bool {
    on_account(&fields.company_id).is_some()
}

/// The accounts after `after` (a page of at most `limit`, in id order): Pendo id, company id,
/// name. `None` when the company id field reads visitor metadata.
pub fn accounts_page(
    fields: &FieldMappings,
    name: Option<&FieldRef>,
    page: (Option<&str>, u32),
    request_id: &str,
) -> Option<Value> {
    let company = on_account(&fields.company_id)?;
    let mut select = Map::new();
    select.insert(col::KEY.into(), "accountId".into());
    select.insert(col::COMPANY.into(), company.into());
    if let Some(name) = name.and_then(on_account) {
        select.insert(col::NAME.into(), name.into());
    }
    let source = json!({ "source": { "accounts": null } });
    Some(request(
        request_id,
        source,
        "accountId",
        page,
        vec![json!({ "select": select })],
    ))
}

/// The identified visitors after `after` (a page of at most `limit`, in id order): Pendo id,
/// and the end-user fields through the field mappings.
pub fn visitors_page(fields: &FieldMappings, page: (Option<&str>, u32), request_id: &str) -> Value {
    let mapped: Vec<(&str, &FieldRef)> = [
        (col::COMPANY, Some(&fields.company_id)),
        (col::END_USER, fields.end_user_id.as_ref()),
        (col::EMAIL, fields.email.as_ref()),
        (col::NAME, fields.name.as_ref()),
        (col::SURNAME, fields.surname.as_ref()),
    ]
    .into_iter()
    .filter_map(|(c, f)| f.map(|f| (c, f)))
    .collect();
    let mut rest = vec![json!({ "eval": { "accountId": "metadata.auto.accountid" } })];
    if mapped.iter().any(|(_, f)| f.record == FieldRecord::Account) {
        rest.push(json!({ "bulkExpand": { "account": { "account": "accountId" } } }));
    }
    let mut select = Map::new();
    select.insert(col::KEY.into(), "visitorId".into());
    for (c, f) in mapped {
        select.insert(c.into(), on_visitor(f).into());
    }
    rest.push(json!({ "select": select }));
    let source = json!({ "source": { "visitors": { "identified": true } } });
    request(request_id, source, "visitorId", page, rest)
}

/// A cell as text: strings trimmed (empty is absent), numbers written out, anything else absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One row of an import page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendoRow {
    /// The account or visitor id (the page's sort key).
    pub key: String,
    pub company: Option<String>,
    pub end_user: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub surname: Option<String>,
}

impl PendoRow {
    /// Reads a row of an import request's output; `None` without a Pendo id.
    pub fn read(raw: &[u8]) -> Result<Option<PendoRow>, String> {
        let row: Map<String, Value> =
            serde_json::from_slice(raw).map_err(|e| format!("bad import row: {e}"))?;
        let Some(key) = text(row.get(col::KEY)) else {
            return Ok(None);
        };
        Ok(Some(PendoRow {
            key,
            company: text(row.get(col::COMPANY)),
            end_user: text(row.get(col::END_USER)),
            email: text(row.get(col::EMAIL)).map(|e| e.to_lowercase()),
            name: text(row.get(col::NAME)),
            surname: text(row.get(col::SURNAME)),
        }))
    }
}

/// Counts one row's action.
fn count(counts: &mut ImportCounts, action: &Action) {
    counts.read += 1;
    match action {
        Action::CreateCompany(_) | Action::CreateUser(_) => counts.created += 1,
        Action::NameCompany(_) | Action::FillUser { .. } => counts.filled += 1,
        Action::Unchanged => counts.unchanged += 1,
        Action::Skip { reason, .. } => *counts.skipped.entry((*reason).into()).or_default() += 1,
    }
}

/// What an import does with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateCompany(DirectoryObject),
    /// A known company without a name gets this one.
    NameCompany(DirectoryObject),
    CreateUser(EndUserInput),
    /// A known end user gets the fields it has empty.
    FillUser {
        user: EndUser,
        email: Option<String>,
        name: Option<String>,
        surname: Option<String>,
    },
    Unchanged,
    Skip {
        reason: &'static str,
        detail: String,
    },
}

impl Action {
    fn skip(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::Skip {
            reason,
            detail: detail.into(),
        }
    }
}

/// A row and what the import does with it, for a dry run's sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SampleRow {
    /// The account or visitor id in Pendo.
    pub pendo_id: String,
    /// `create`, `fill` or `skip`.
    pub action: String,
    pub external_id: Option<String>,
    pub company_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub surname: Option<String>,
    /// Why a row is skipped, in the product's words.
    pub reason: Option<String>,
}

impl SampleRow {
    pub fn of(key: &str, action: &Action) -> Option<Self> {
        let row = |action: &str| SampleRow {
            pendo_id: key.to_string(),
            action: action.into(),
            external_id: None,
            company_id: None,
            name: None,
            email: None,
            surname: None,
            reason: None,
        };
        Some(match action {
            Action::CreateCompany(o) | Action::NameCompany(o) => SampleRow {
                external_id: Some(o.external_id.clone()),
                name: o.name.clone(),
                ..row(if matches!(action, Action::CreateCompany(_)) {
                    "create"
                } else {
                    "fill"
                })
            },
            Action::CreateUser(u) => SampleRow {
                external_id: u.external_id.clone(),
                company_id: Some(u.company_id.clone()),
                name: u.name.clone(),
                email: u.email.clone(),
                surname: u.surname.clone(),
                ..row("create")
            },
            Action::FillUser {
                user,
                email,
                name,
                surname,
            } => SampleRow {
                external_id: user.external_id.clone(),
                company_id: Some(user.company_id.clone()),
                name: name.clone(),
                email: email.clone(),
                surname: surname.clone(),
                ..row("fill")
            },
            Action::Skip { detail, .. } => SampleRow {
                reason: Some(detail.clone()),
                ..row("skip")
            },
            Action::Unchanged => return None,
        })
    }
}

fn empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

/// What to do with a page of account rows, given the companies' current names by external id.
/// Counts go into `counts`.
pub fn plan_companies(
    rows: &[PendoRow],
    known: &HashMap<String, Option<String>>,
    counts: &mut ImportCounts,
) -> Vec<(String, Action)> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let action = match &row.company {
            None => Action::skip(
                "noCompanyId",
                format!("account {} has no value in the company id field", row.key),
            ),
            Some(id) => match seen.get(id.as_str()) {
                Some(first) => Action::skip(
                    "repeated",
                    format!("account {first} already gives company id {id}"),
                ),
                None => {
                    seen.insert(id, &row.key);
                    let object = DirectoryObject {
                        external_id: id.clone(),
                        name: row.name.clone(),
                        company_id: None,
                    };
                    match object.validated() {
                        Err(e) => Action::skip("invalid", format!("{}: {}", e.field, e.reason)),
                        Ok(object) => match known.get(id) {
                            None => Action::CreateCompany(object),
                            Some(name) if empty(name) && object.name.is_some() => {
                                Action::NameCompany(object)
                            }
                            Some(_) => Action::Unchanged,
                        },
                    }
                }
            },
        };
        count(counts, &action);
        out.push((row.key.clone(), action));
    }
    out
}

/// The directory an end-user page is planned against.
pub struct UserDirectory<'a> {
    companies: HashSet<&'a str>,
    by_id: HashMap<(&'a str, &'a str), &'a EndUser>,
    by_email: HashMap<(&'a str, &'a str), &'a EndUser>,
}

impl<'a> UserDirectory<'a> {
    pub fn new(companies: &'a [DirectoryObject], users: &'a [EndUser]) -> Self {
        let mut by_id = HashMap::new();
        let mut by_email = HashMap::new();
        for u in users {
            if let Some(ext) = &u.external_id {
                by_id.insert((u.company_id.as_str(), ext.as_str()), u);
            }
            if let Some(email) = &u.email {
                by_email.insert((u.company_id.as_str(), email.as_str()), u);
            }
        }
        Self {
            companies: companies.iter().map(|c| c.external_id.as_str()).collect(),
            by_id,
            by_email,
        }
    }
}

/// What to do with a page of visitor rows. Counts go into `counts`.
pub fn plan_end_users(
    rows: &[PendoRow],
    dir: &UserDirectory<'_>,
    counts: &mut ImportCounts,
) -> Vec<(String, Action)> {
    // The end users this page names (company, external id or email), and by which visitor.
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let action = plan_end_user(row, dir, &mut seen);
        count(counts, &action);
        out.push((row.key.clone(), action));
    }
    out
}

fn plan_end_user(
    row: &PendoRow,
    dir: &UserDirectory<'_>,
    seen: &mut HashMap<(String, String), String>,
) -> Action {
    let Some(company) = row.company.as_deref() else {
        return Action::skip(
            "noCompanyId",
            format!("visitor {} has no value in the company id field", row.key),
        );
    };
    if !dir.companies.contains(company) {
        return Action::skip(
            "companyNotInDirectory",
            format!(
                "company {company} of visitor {} is not in the directory",
                row.key
            ),
        );
    }
    let input = EndUserInput {
        company_id: company.to_string(),
        external_id: row.end_user.clone(),
        email: row.email.clone(),
        name: row.name.clone(),
        surname: row.surname.clone(),
    };
    if input.external_id.is_none() && input.email.is_none() {
        return Action::skip(
            "noIdOrEmail",
            format!(
                "visitor {} has neither an end-user id nor an email",
                row.key
            ),
        );
    }
    let input = match input.validated() {
        Ok(i) => i,
        Err(e) => return Action::skip("invalid", format!("{}: {}", e.field, e.reason)),
    };
    let ident = match (&input.external_id, &input.email) {
        (Some(ext), _) => format!("id:{ext}"),
        (None, Some(email)) => format!("email:{email}"),
        (None, None) => {
            return Action::skip(
                "noIdOrEmail",
                format!(
                    "visitor {} has neither an end-user id nor an email",
                    row.key
                ),
            )
        }
    };
    let key = (company.to_string(), ident);
    if let Some(first) = seen.get(&key) {
        return Action::skip(
            "repeated",
            format!("visitor {first} already gives this end user"),
        );
    }
    seen.insert(key, row.key.clone());
    let found = match &input.external_id {
        Some(ext) => dir.by_id.get(&(company, ext.as_str())),
        None => input
            .email
            .as_deref()
            .and_then(|e| dir.by_email.get(&(company, e))),
    };
    let holder = input
        .email
        .as_deref()
        .and_then(|e| dir.by_email.get(&(company, e)));
    match found {
        None => match holder {
            Some(h) => Action::skip(
                "emailTaken",
                format!(
                    "email {} belongs to end user {} of company {company}",
                    input.email.as_deref().unwrap_or_default(),
                    h.external_id.as_deref().unwrap_or(&h.id)
                ),
            ),
            None => Action::CreateUser(input),
        },
        Some(user) => {
            let fill =
                |want: &Option<String>, have: &Option<String>| want.clone().filter(|_| empty(have));
            let email_free = holder.is_none_or(|h| h.id == user.id);
            let email = fill(&input.email, &user.email).filter(|_| email_free);
            let name = fill(&input.name, &user.name);
            let surname = fill(&input.surname, &user.surname);
            if email.is_none() && name.is_none() && surname.is_none() {
                Action::Unchanged
            } else {
                Action::FillUser {
                    user: (*user).clone(),
                    email,
                    name,
                    surname,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldRole;

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
}
