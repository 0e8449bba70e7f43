//! The directory the metrics land on: companies, end users, assets and projects, each with an
//! external id (normally owned by another system; the API is how they get here).

use super::ids::check_id;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// The value of a directory field (a cell, a JSON string) that clears the stored field. An
/// absent, `null` or empty field leaves the stored one as it is.
pub const CLEAR: &str = "-";

/// A company, asset or project: an external id and a display name. In a write (the store's
/// upsert), a `None` field leaves the stored one as it is and `Some("")` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryObject {
    pub external_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// For assets and projects: the company they belong to.
    #[serde(default)]
    pub company_id: Option<String>,
}

impl DirectoryObject {
    pub fn validated(&self) -> Result<Self, ValidationError> {
        Ok(Self {
            external_id: check_id("externalId", &self.external_id)?,
            name: clean_text("name", self.name.as_deref())?,
            company_id: match self.company_id.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(CLEAR) => Some(String::new()),
                Some(c) => Some(check_id("companyId", c)?),
            },
        })
    }
}

/// An end user. `id` is the service's own id; external id and email are each unique within the
/// company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndUser {
    pub id: String,
    pub company_id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub surname: Option<String>,
}

/// An end user as the directory API receives it. In a write, a `None` name or surname leaves
/// the stored one as it is and `Some("")` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndUserInput {
    pub company_id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
}

impl EndUserInput {
    /// Validates; an end user needs an external id or an email.
    pub fn validated(&self) -> Result<EndUserInput, ValidationError> {
        let external_id = self
            .external_id
            .as_deref()
            .map(|e| check_id("externalId", e))
            .transpose()?;
        let email = self.email.as_deref().map(normalize_email).transpose()?;
        if external_id.is_none() && email.is_none() {
            return Err(ValidationError::new(
                "externalId",
                "an external id or an email is required",
            ));
        }
        Ok(EndUserInput {
            company_id: check_id("companyId", &self.company_id)?,
            external_id,
            email,
            name: clean_text("name", self.name.as_deref())?,
            surname: clean_text("surname", self.surname.as_deref())?,
        })
    }
}

/// Emails are compared case-insensitively: stored trimmed and lower-cased.
pub fn normalize_email(raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim().to_lowercase();
    let ok = s.len() <= 254
        && s.split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && !d.is_empty())
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(s)
    } else {
        Err(ValidationError::new("email", "must be an email address"))
    }
}

/// A text field of a directory row: `None` (keep) when absent or empty, `Some("")` (clear)
/// for [`CLEAR`], the trimmed text otherwise.
fn clean_text(field: &str, raw: Option<&str>) -> Result<Option<String>, ValidationError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(CLEAR) => Ok(Some(String::new())),
        Some(s) if s.len() > 200 || s.chars().any(char::is_control) => Err(ValidationError::new(
            field,
            "must be at most 200 characters, without control characters",
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_user_needs_an_id_or_email() {
        let u = EndUserInput {
            company_id: "c".into(),
            external_id: None,
            email: Some(" Ann@X.io ".into()),
            name: Some(" ".into()),
            surname: None,
        };
        let v = u.validated().unwrap();
        assert_eq!(v.email.as_deref(), Some("ann@x.io"));
        assert_eq!(v.name, None);
        let none = EndUserInput { email: None, ..u };
        assert_eq!(none.validated().unwrap_err().field, "externalId");
    }

    #[test]
    fn an_empty_field_keeps_and_a_dash_clears() {
        let o = |name: Option<&str>, company: Option<&str>| {
            DirectoryObject {
                external_id: " a1 ".into(),
                name: name.map(Into::into),
                company_id: company.map(Into::into),
            }
            .validated()
            .unwrap()
        };
        let v = o(Some(" "), Some(""));
        assert_eq!(
            (v.external_id.as_str(), v.name, v.company_id),
            ("a1", None, None)
        );
        let v = o(Some(" - "), Some("-"));
        assert_eq!(
            (v.name, v.company_id),
            (Some(String::new()), Some(String::new()))
        );
        let v = o(Some("Acme"), Some(" c1 "));
        assert_eq!(
            (v.name, v.company_id),
            (Some("Acme".into()), Some("c1".into()))
        );
        let u = EndUserInput {
            company_id: "c".into(),
            external_id: Some("v1".into()),
            email: None,
            name: Some("-".into()),
            surname: Some("".into()),
        };
        let v = u.validated().unwrap();
        assert_eq!((v.name, v.surname), (Some(String::new()), None));
        let dash = EndUserInput {
            email: Some("-".into()),
            ..u
        };
        assert_eq!(dash.validated().unwrap_err().field, "email");
    }

    #[test]
    fn emails() {
        assert!(normalize_email("a@b").is_ok());
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a b@c").is_err());
    }
}
