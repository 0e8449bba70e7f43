//! What an import does with each row of a page, against the directory as it stands: create,
//! fill in what is empty, leave unchanged or skip (and why), counted; and a dry run's sample.

use super::pages::PendoRow;
use crate::domain::{DirectoryObject, EndUser, EndUserInput, ImportCounts};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

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
    pub(super) fn skip(reason: &'static str, detail: impl Into<String>) -> Self {
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
