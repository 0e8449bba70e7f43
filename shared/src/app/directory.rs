//! The directory use cases: a batch of rows (JSON) or a checked CSV upload, upserted by external
//! id with per-row errors (the rules are in `crate::directory`).

use super::{App, AppError};
#[cfg(feature = "api")]
use crate::directory::{csv, UploadResult, MAX_LISTED_ERRORS};
use crate::directory::{end_user_rows, object_rows, BatchResult, RowError, Upload};
use crate::domain::{DirectoryObject, EndUser, Target, TenantId};
use crate::store::StoreError;
use serde_json::Value;
use std::collections::HashSet;

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
        let companies = self.company_ids(t, kind).await?;
        self.upsert_rows(t, kind, items, 0, &companies, &mut Upload::batch())
            .await
    }

    /// The external ids of the tenant's companies, which end users must belong to (read only
    /// for end users).
    async fn company_ids(&self, t: &TenantId, kind: Target) -> Result<HashSet<String>, AppError> {
        if kind != Target::EndUser {
            return Ok(HashSet::new());
        }
        let companies = self.ports.store.list_objects(t, Target::Company).await?;
        Ok(companies.into_iter().map(|c| c.external_id).collect())
    }

    /// One batch of an upload whose first row is the upload's row `offset`.
    async fn upsert_rows(
        &self,
        t: &TenantId,
        kind: Target,
        items: &[Value],
        offset: usize,
        companies: &HashSet<String>,
        up: &mut Upload,
    ) -> Result<BatchResult, AppError> {
        let store = &self.ports.store;
        let mut accepted = 0;
        let mut errors;
        if kind == Target::EndUser {
            let (valid, refused) = end_user_rows(items, offset, companies, up);
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
            let (valid, refused) = object_rows(items, offset, kind, up);
            errors = refused;
            accepted = valid.len();
            store.upsert_objects(t, kind, &valid).await?;
        }
        Ok(BatchResult { accepted, errors })
    }
}

/// What deleting a directory entry did, in the user's words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub deleted: String,
    /// What happens to its values and activity.
    pub values: String,
}

/// What becomes of a deleted entry's values: kept until the next Re-sync all.
pub const DELETED_VALUES: &str = "its values and activity stay as stored (reads and the \
    export still show them) and are no longer updated: the next syncs skip its rows as not in \
    the directory, and the next Re-sync all, which rebuilds from the directory, drops them";

impl App {
    /// Deletes a company, asset or project (by external id) or an end user (by its service
    /// id) from the directory. A company that end users, assets or projects still belong to
    /// is refused (nothing changed), naming how many.
    pub async fn delete_directory_entry(
        &self,
        t: &TenantId,
        kind: Target,
        id: &str,
    ) -> Result<Deleted, AppError> {
        let store = &self.ports.store;
        let not_found = || AppError::NotFound {
            what: kind.noun(),
            id: id.to_string(),
        };
        if kind == Target::EndUser {
            if !store.delete_end_user(t, id).await? {
                return Err(not_found());
            }
        } else {
            if kind == Target::Company {
                self.refuse_if_in_use(t, id).await?;
            }
            if !store.delete_object(t, kind, id).await? {
                return Err(not_found());
            }
        }
        Ok(Deleted {
            deleted: format!("{} {id}", kind.noun()),
            values: DELETED_VALUES.into(),
        })
    }

    /// Refuses to delete company `id` while end users, assets or projects belong to it.
    async fn refuse_if_in_use(&self, t: &TenantId, id: &str) -> Result<(), AppError> {
        let store = &self.ports.store;
        let users = store.list_end_users(t).await?;
        let mut held = Vec::new();
        let n = users.iter().filter(|u| u.company_id == id).count();
        if n > 0 {
            held.push(plural(n, "end user"));
        }
        for kind in [Target::Asset, Target::Project] {
            let objects = store.list_objects(t, kind).await?;
            let n = objects
                .iter()
                .filter(|o| o.company_id.as_deref() == Some(id))
                .count();
            if n > 0 {
                held.push(plural(n, kind.noun()));
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        Err(AppError::Conflict(format!(
            "company {id} still has {}; delete them or move them to another company first; nothing was deleted",
            held.join(" and ")
        )))
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
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
    /// Upserts a checked CSV upload, batch by batch, as JSON batches (a row naming an object
    /// or end user an earlier line named is refused, across batches).
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
        let companies = self.company_ids(t, kind).await?;
        let mut up = Upload::csv();
        while let Some(batch) = upload.next_batch()? {
            let done = self
                .upsert_rows(t, kind, &batch, offset, &companies, &mut up)
                .await?;
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
