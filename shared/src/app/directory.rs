//! The directory use cases: a batch of rows (JSON) or a checked CSV upload, upserted by external
//! id with per-row errors (the rules are in `crate::directory`).

use super::{App, AppError};
#[cfg(feature = "api")]
use crate::directory::{csv, UploadResult, MAX_LISTED_ERRORS};
use crate::directory::{end_user_rows, invalid, parse_row, BatchResult, RowError};
use crate::domain::{DirectoryObject, EndUser, Target, TenantId};
use crate::store::StoreError;
use serde_json::Value;

impl App {
    /// Upserts a directory batch of `kind` (at most `MAX_BATCH` rows, checked by the caller):
    /// the valid rows are stored, the others reported. A store failure other than a refused
    /// row fails the whole call.
    pub async fn upsert_directory(
        &self,
        t: &TenantId,
        kind: Target,
        items: &[Value],
    ) -> Result<BatchResult, AppError> {
        let store = &self.ports.store;
        let mut accepted = 0;
        let mut errors = Vec::new();
        if kind == Target::EndUser {
            let (valid, refused) = end_user_rows(items);
            errors = refused;
            for (index, u) in valid {
                match store.upsert_end_user(t, &u).await {
                    Ok(_) => accepted += 1,
                    Err(StoreError::EmailTaken(taken)) => errors.push(RowError {
                        index,
                        field: Some("email".into()),
                        message: match &u.external_id {
                            Some(ext) => {
                                format!("{taken}, not to end user {ext}; nothing was changed")
                            }
                            None => format!("{taken}; nothing was changed"),
                        },
                    }),
                    Err(StoreError::Conflict(m)) => errors.push(RowError {
                        index,
                        field: None,
                        message: m,
                    }),
                    Err(e) => return Err(e.into()),
                }
            }
            errors.sort_by_key(|e| e.index);
        } else {
            let mut valid = Vec::new();
            for (index, item) in items.iter().enumerate() {
                match parse_row::<DirectoryObject>(index, item)
                    .and_then(|o| o.validated().map_err(|e| invalid(index, e)))
                {
                    Ok(o) => valid.push(o),
                    Err(e) => errors.push(e),
                }
            }
            accepted = valid.len();
            store.upsert_objects(t, kind, &valid).await?;
        }
        Ok(BatchResult { accepted, errors })
    }
}

impl App {
    /// The tenant's companies, assets or projects.
    pub async fn directory_objects(
        &self,
        t: &TenantId,
        kind: Target,
    ) -> Result<Vec<DirectoryObject>, AppError> {
        Ok(self.ports.store.list_objects(t, kind).await?)
    }

    /// The tenant's end users (with their service ids).
    pub async fn directory_end_users(&self, t: &TenantId) -> Result<Vec<EndUser>, AppError> {
        Ok(self.ports.store.list_end_users(t).await?)
    }
}

#[cfg(feature = "api")]
impl App {
    /// Upserts a checked CSV upload, batch by batch, exactly as JSON batches.
    pub async fn upsert_directory_csv(
        &self,
        t: &TenantId,
        kind: Target,
        mut upload: csv::Spooled,
    ) -> Result<UploadResult, AppError> {
        let mut out = UploadResult {
            rows: upload.rows(),
            accepted: 0,
            errors: Vec::new(),
            errors_not_listed: 0,
        };
        let mut offset = 0;
        while let Some(batch) = upload.next_batch()? {
            let done = self.upsert_directory(t, kind, &batch).await?;
            out.accepted += done.accepted;
            for mut e in done.errors {
                if out.errors.len() < MAX_LISTED_ERRORS {
                    e.index += offset;
                    out.errors.push(e);
                } else {
                    out.errors_not_listed += 1;
                }
            }
            offset += batch.len();
        }
        Ok(out)
    }
}
