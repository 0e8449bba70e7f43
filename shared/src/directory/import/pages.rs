//! The Pendo side of an import: the requests that read a page of accounts or identified
//! visitors through the field mappings (keyset pages in Pendo id order), and the rows they give.

use crate::domain::{FieldMappings, FieldRecord, FieldRef};
use serde_json::{json, Map, Value};

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
