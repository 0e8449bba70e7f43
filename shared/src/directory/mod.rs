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

use crate::domain::EndUserInput;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

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

/// The rows of an end-user batch that may be written: valid, and each naming an end user no
/// earlier row of the batch named.
pub(crate) fn end_user_rows(items: &[Value]) -> (Vec<(usize, EndUserInput)>, Vec<RowError>) {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<(&'static str, String, String), usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let u = match parse_row::<EndUserInput>(index, item)
            .and_then(|u| u.validated().map_err(|e| invalid(index, e)))
        {
            Ok(u) => u,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let keys = [("externalId", &u.external_id), ("email", &u.email)];
        let repeated = keys.iter().find_map(|(field, v)| {
            let v = v.as_ref()?;
            let first = seen.get(&(*field, u.company_id.clone(), v.clone()))?;
            let what = if *field == "email" {
                "email"
            } else {
                "external id"
            };
            Some(RowError {
                index,
                field: Some((*field).into()),
                message: format!(
                    "row {first} of this batch already gives {what} {v} in company {}; a batch names each end user once",
                    u.company_id
                ),
            })
        });
        if let Some(e) = repeated {
            errors.push(e);
            continue;
        }
        for (field, v) in keys {
            if let Some(v) = v {
                seen.insert((field, u.company_id.clone(), v.clone()), index);
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
        let (valid, errors) = end_user_rows(&items);
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
}
