//! The apps table (Pendo app id → metric prefix, with its two permanent rows) and the segments
//! table (segment id → name) that Feature and Page mappings may be limited to.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// The default web app of older Pendo subscriptions: a permanent row.
pub const DEFAULT_APP: &str = "-323232";
/// The catch-all row every app id missing from the table goes to: a permanent row.
pub const UNKNOWN_APP: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRow {
    /// A Pendo app id (an integer, as text) or `unknown`.
    pub app_id: String,
    /// Metric prefix; may be empty (then the per-app metric carries no prefix).
    pub prefix: String,
}

/// The apps table. Always holds `-323232` and `unknown`; ids are unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppsTable {
    rows: Vec<AppRow>,
}

impl Default for AppsTable {
    fn default() -> Self {
        Self {
            rows: vec![
                AppRow {
                    app_id: DEFAULT_APP.into(),
                    prefix: String::new(),
                },
                AppRow {
                    app_id: UNKNOWN_APP.into(),
                    prefix: String::new(),
                },
            ],
        }
    }
}

/// Why an apps-table change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppsError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("app {0} is a permanent row and cannot be deleted")]
    Permanent(String),
    #[error("app {0} is not in the table")]
    NotFound(String),
}

impl AppsTable {
    pub fn rows(&self) -> &[AppRow] {
        &self.rows
    }

    /// Checks an app id: an integer (Pendo app ids are 64-bit integers) or `unknown`.
    pub fn parse_app_id(raw: &str) -> Result<String, ValidationError> {
        let s = raw.trim();
        if s == UNKNOWN_APP || s.parse::<i64>().is_ok() {
            Ok(s.parse::<i64>()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| s.to_string()))
        } else {
            Err(ValidationError::new(
                "appId",
                "must be a Pendo app id (an integer) or 'unknown'",
            ))
        }
    }

    fn check_prefix(prefix: &str) -> Result<String, ValidationError> {
        let p = prefix.trim();
        if p.len() > 100 || p.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "prefix",
                "must be at most 100 characters, without control characters",
            ));
        }
        Ok(p.to_string())
    }

    /// Adds a row or replaces the prefix of an existing one.
    pub fn upsert(&mut self, app_id: &str, prefix: &str) -> Result<(), AppsError> {
        let id = Self::parse_app_id(app_id)?;
        let prefix = Self::check_prefix(prefix)?;
        match self.rows.iter_mut().find(|r| r.app_id == id) {
            Some(row) => row.prefix = prefix,
            None => self.rows.push(AppRow { app_id: id, prefix }),
        }
        Ok(())
    }

    pub fn remove(&mut self, app_id: &str) -> Result<(), AppsError> {
        let id = app_id.trim();
        if id == DEFAULT_APP || id == UNKNOWN_APP {
            return Err(AppsError::Permanent(id.to_string()));
        }
        let before = self.rows.len();
        self.rows.retain(|r| r.app_id != id);
        if self.rows.len() == before {
            return Err(AppsError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// The table row an app id of a Pendo row goes to: its own, or `unknown`.
    pub fn row_for(&self, app_id: i64) -> AppRow {
        let id = app_id.to_string();
        self.rows
            .iter()
            .find(|r| r.app_id == id)
            .or_else(|| self.rows.iter().find(|r| r.app_id == UNKNOWN_APP))
            .cloned()
            .unwrap_or(AppRow {
                app_id: UNKNOWN_APP.into(),
                prefix: String::new(),
            })
    }
}

/// Multi-app metric naming: `"{prefix} - {name}"`, or just `name` when the prefix is empty.
pub fn multi_app_metric_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix} - {name}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub id: String,
    pub name: String,
}

impl Segment {
    pub fn parse(id: &str, name: &str) -> Result<Self, ValidationError> {
        let id = crate::domain::ids::check_id("segmentId", id)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(ValidationError::new("name", "must be 1 to 200 characters"));
        }
        Ok(Self {
            id,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_rows_cannot_be_removed() {
        let mut t = AppsTable::default();
        assert_eq!(
            t.remove("-323232"),
            Err(AppsError::Permanent("-323232".into()))
        );
        assert_eq!(
            t.remove("unknown"),
            Err(AppsError::Permanent("unknown".into()))
        );
        t.upsert("5629499534213120", "Cloud Store").unwrap();
        assert_eq!(t.rows().len(), 3);
        t.remove("5629499534213120").unwrap();
        assert_eq!(t.rows().len(), 2);
        assert!(matches!(t.remove("42"), Err(AppsError::NotFound(_))));
    }

    #[test]
    fn unmapped_apps_go_to_unknown() {
        let mut t = AppsTable::default();
        t.upsert("unknown", "Other Apps").unwrap();
        t.upsert("-323232", "Web").unwrap();
        assert_eq!(t.row_for(-323232).prefix, "Web");
        assert_eq!(t.row_for(99).app_id, "unknown");
        assert_eq!(t.row_for(99).prefix, "Other Apps");
    }

    #[test]
    fn app_ids_must_be_integers() {
        let mut t = AppsTable::default();
        assert!(t.upsert("abc", "x").is_err());
        assert!(t.upsert("12", "a\nb").is_err());
        t.upsert(" 0012 ", "x").unwrap();
        assert_eq!(t.rows()[2].app_id, "12");
    }

    #[test]
    fn naming() {
        assert_eq!(
            multi_app_metric_name("Cloud Store", "Clicks"),
            "Cloud Store - Clicks"
        );
        assert_eq!(multi_app_metric_name("", "Clicks"), "Clicks");
    }
}
