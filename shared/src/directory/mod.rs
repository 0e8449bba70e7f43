//! Directory batches (`PUT /v1/directory/{kind}`): each row parsed and validated on its own,
//! invalid rows reported by index, field and reason in the product's words, the valid rows
//! upserted by external id. A CSV upload (`csv.rs`) is read back as such batches.
//!
//! End users: a row is matched within its company on its external id (on its email when it has
//! none). A row whose email belongs to another end user of the company is refused, naming both;
//! nothing is rewritten. A batch names each end user once: a row repeating the email or the
//! external id of an earlier row of the same company is refused, naming that row.

#[cfg(feature = "api")]
pub mod csv;
pub mod import;

use crate::domain::{DirectoryObject, EndUserInput, Target};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Largest number of rows in one batch.
pub const MAX_BATCH: usize = 1000;

/// Why one row of a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// The row's position in `items`, from 0.
    pub index: usize,
    /// The field the error is about, as a JSON path within the row (`companyId`, `email`);
    /// `null` when the row as a whole is refused.
    pub field: Option<String>,
    pub message: String,
}

/// The outcome of a batch: how many rows were stored, and why the others were not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub errors: Vec<RowError>,
}

/// Per-row errors an upload lists in full; past this many they are only counted.
pub const MAX_LISTED_ERRORS: usize = 1000;

/// The outcome of a CSV upload: its rows, how many were stored, and why the others were not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadResult {
    /// Data rows in the upload.
    pub rows: usize,
    pub accepted: usize,
    /// The first per-row errors (`index` counts the upload's data rows from 0).
    pub errors: Vec<RowError>,
    /// Per-row errors past the first `MAX_LISTED_ERRORS`, counted only.
    pub errors_not_listed: usize,
}

/// Parses one row; a refusal names the field and says why in the product's words (never
/// serde's or the store's).
pub(crate) fn parse_row<T: serde::de::DeserializeOwned>(
    index: usize,
    v: &Value,
) -> Result<T, RowError> {
    if !v.is_object() {
        return Err(RowError {
            index,
            field: None,
            message: "each item must be a JSON object".into(),
        });
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let quoted = msg.split('`').nth(1).map(str::to_string);
        let (field, message) = if msg.starts_with("unknown field") {
            let name = quoted.unwrap_or_default();
            let message = format!("unknown field '{name}'");
            (Some(name), message)
        } else if msg.starts_with("missing field") {
            (quoted, "is required".to_string())
        } else {
            let expected = msg
                .split_once(", expected ")
                .map(|(_, x)| format!("must be {x}"))
                .unwrap_or_else(|| "has an invalid value".into());
            (Some(path).filter(|p| p != "."), expected)
        };
        RowError {
            index,
            field,
            message,
        }
    })
}

pub(crate) fn invalid(index: usize, e: crate::ValidationError) -> RowError {
    RowError {
        index,
        field: Some(e.field),
        message: e.reason,
    }
}

/// What one upload (a JSON batch, or every batch of a CSV file) remembers across its rows:
/// the row that first named each object or end user (a later row naming it again is
/// refused, naming that row), and how its rows are called in messages.
pub(crate) struct Upload {
    csv: bool,
    objects: HashMap<String, usize>,
    users: HashMap<(&'static str, String, String), usize>,
}

impl Upload {
    /// A JSON batch: rows are its items, from 0.
    pub(crate) fn batch() -> Self {
        Self {
            csv: false,
            objects: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// A CSV file: rows are its lines as a spreadsheet numbers them (the header is line 1).
    pub(crate) fn csv() -> Self {
        Self {
            csv: true,
            ..Self::batch()
        }
    }

    /// The row at `index` of the upload, in a message.
    fn row(&self, index: usize) -> String {
        if self.csv {
            format!("line {} of the file", index + 2)
        } else {
            format!("row {index} of this batch")
        }
    }

    fn whole(&self) -> &'static str {
        if self.csv {
            "a file"
        } else {
            "a batch"
        }
    }
}

/// A parsed row, or its error added to `errors`.
fn kept<T>(row: Result<T, RowError>, errors: &mut Vec<RowError>) -> Option<T> {
    row.map_err(|e| errors.push(e)).ok()
}

/// The rows of a batch of companies, assets or projects that may be written: valid, and each
/// naming an object no earlier row of the upload named. `offset`: the batch's first row in
/// the upload; indexes in the answer are within the batch.
pub(crate) fn object_rows(
    items: &[Value],
    offset: usize,
    kind: Target,
    up: &mut Upload,
) -> (Vec<DirectoryObject>, Vec<RowError>) {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let parsed = parse_row::<DirectoryObject>(index, item)
            .and_then(|o| o.validated().map_err(|e| invalid(index, e)));
        let Some(o) = kept(parsed, &mut errors) else {
            continue;
        };
        if let Some(first) = up.objects.get(&o.external_id) {
            errors.push(RowError {
                index,
                field: Some("externalId".into()),
                message: format!(
                    "{} already gives external id {}; {} names each {} once",
                    up.row(*first),
                    o.external_id,
                    up.whole(),
                    kind.noun()
                ),
            });
            continue;
        }
        up.objects.insert(o.external_id.clone(), offset + index);
        valid.push(o);
    }
    (valid, errors)
}

/// The rows of an end-user batch that may be written: valid, in a company of the directory
/// (`companies`), and each naming an end user no earlier row of the upload named.
pub(crate) fn end_user_rows(
    items: &[Value],
    offset: usize,
    companies: &HashSet<String>,
    up: &mut Upload,
) -> (Vec<(usize, EndUserInput)>, Vec<RowError>) {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let parsed = parse_row::<EndUserInput>(index, item)
            .and_then(|u| u.validated().map_err(|e| invalid(index, e)));
        let Some(u) = kept(parsed, &mut errors) else {
            continue;
        };
        if !companies.contains(&u.company_id) {
            errors.push(RowError {
                index,
                field: Some("companyId".into()),
                message: format!(
                    "company {} is not in the directory; add it to the companies first",
                    u.company_id
                ),
            });
            continue;
        }
        let keys = [("externalId", &u.external_id), ("email", &u.email)];
        let repeated = keys.iter().find_map(|(field, v)| {
            let v = v.as_ref()?;
            let first = up.users.get(&(*field, u.company_id.clone(), v.clone()))?;
            let what = if *field == "email" {
                "email"
            } else {
                "external id"
            };
            Some(RowError {
                index,
                field: Some((*field).into()),
                message: format!(
                    "{} already gives {what} {v} in company {}; {} names each end user once",
                    up.row(*first),
                    u.company_id,
                    up.whole()
                ),
            })
        });
        if let Some(e) = repeated {
            errors.push(e);
            continue;
        }
        for (field, v) in keys {
            if let Some(v) = v {
                up.users
                    .insert((field, u.company_id.clone(), v.clone()), offset + index);
            }
        }
        valid.push((index, u));
    }
    (valid, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn row_errors_name_the_field_in_the_products_words() {
        let e = |v: Value| parse_row::<EndUserInput>(3, &v).unwrap_err();
        let row = |field: &str, message: &str| RowError {
            index: 3,
            field: Some(field.into()),
            message: message.into(),
        };
        assert_eq!(
            e(json!({"externalId": "v1"})),
            row("companyId", "is required")
        );
        assert_eq!(
            e(json!({"companyId": null})),
            row("companyId", "must be a string")
        );
        assert_eq!(
            e(json!({"companyId": "c", "email": 5})),
            row("email", "must be a string")
        );
        assert_eq!(
            e(json!({"companyId": "c", "colour": "red"})),
            row("colour", "unknown field 'colour'")
        );
        assert_eq!(
            e(json!(["c"])),
            RowError {
                index: 3,
                field: None,
                message: "each item must be a JSON object".into()
            }
        );
    }

    #[test]
    fn a_batch_names_each_end_user_once() {
        let items = [
            json!({"companyId": "c", "externalId": "v1", "email": "a@x.io"}),
            json!({"companyId": "c", "externalId": "v2", "email": "A@x.io"}),
            json!({"companyId": "d", "externalId": "v2", "email": "a@x.io"}),
            json!({"companyId": "c", "externalId": "v1"}),
            json!({"companyId": "c", "email": "b@x.io"}),
        ];
        let companies = HashSet::from(["c".to_string(), "d".to_string()]);
        let (valid, errors) = end_user_rows(&items, 0, &companies, &mut Upload::batch());
        assert_eq!(
            valid.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        assert_eq!(
            errors,
            vec![
                RowError {
                    index: 1,
                    field: Some("email".into()),
                    message: "row 0 of this batch already gives email a@x.io in company c; a batch names each end user once".into(),
                },
                RowError {
                    index: 3,
                    field: Some("externalId".into()),
                    message: "row 0 of this batch already gives external id v1 in company c; a batch names each end user once".into(),
                },
            ]
        );
    }

    #[test]
    fn a_file_names_each_object_once_across_its_batches() {
        let mut up = Upload::csv();
        let first = [json!({"externalId": "a1"}), json!({"externalId": "a2"})];
        let (valid, errors) = object_rows(&first, 0, Target::Company, &mut up);
        assert_eq!((valid.len(), errors), (2, vec![]));
        let second = [
            json!({"externalId": "a3"}),
            json!({"externalId": " a2 ", "name": "Two"}),
        ];
        let (valid, errors) = object_rows(&second, 2, Target::Company, &mut up);
        assert_eq!(valid.len(), 1);
        assert_eq!(
            errors,
            vec![RowError {
                index: 1,
                field: Some("externalId".into()),
                message: "line 3 of the file already gives external id a2; a file names each company once".into(),
            }]
        );
    }

    #[test]
    fn an_end_user_needs_its_company_in_the_directory() {
        let companies = HashSet::from(["c".to_string()]);
        let items = [json!({"companyId": "zz", "externalId": "v1"})];
        let (valid, errors) = end_user_rows(&items, 0, &companies, &mut Upload::batch());
        assert!(valid.is_empty());
        assert_eq!(
            errors,
            vec![RowError {
                index: 0,
                field: Some("companyId".into()),
                message: "company zz is not in the directory; add it to the companies first".into(),
            }]
        );
    }
}
