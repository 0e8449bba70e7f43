//! The directory the metrics land on: companies, end users, assets and projects, each with an
//! external id (normally owned by another system; the API is how they get here).

use super::ids::check_id;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// A company, asset or project: an external id and a display name.
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
            company_id: self
                .company_id
                .as_deref()
                .map(|c| check_id("companyId", c))
                .transpose()?,
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

/// An end user as the directory API receives it.
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

fn clean_text(field: &str, raw: Option<&str>) -> Result<Option<String>, ValidationError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
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
    fn emails() {
        assert!(normalize_email("a@b").is_ok());
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a b@c").is_err());
    }
}
