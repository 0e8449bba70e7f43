//! The directory on SQLite: companies, assets and projects (`objects`) and end users, with the
//! tenant's directory stamp bumped in the transaction of every write that changes them.

use super::EmbeddedStore;
use super::{write_tx, StoreError};
use crate::domain::{DirectoryObject, EndUser, EndUserInput, Target, TenantId};
use crate::store::DirectoryStore;
use crate::store::{merged_user, new_end_user, EmailTaken};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Marks the tenant's directory as changed (in the caller's write transaction).
fn bump_directory_stamp(c: &Connection, t: &TenantId) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO directory_stamps (tenant, stamp) VALUES (?1, 1)
         ON CONFLICT(tenant) DO UPDATE SET stamp = stamp + 1",
    )?
    .execute([t.as_str()])?;
    Ok(())
}

fn end_user(r: &Row<'_>) -> rusqlite::Result<EndUser> {
    Ok(EndUser {
        id: r.get(0)?,
        company_id: r.get(1)?,
        external_id: r.get(2)?,
        email: r.get(3)?,
        name: r.get(4)?,
        surname: r.get(5)?,
    })
}

const USER_COLS: &str = "id, company_id, external_id, email, name, surname";

/// The end users of tenant `t` selected `from` (the query after `FROM`, binding the tenant).
fn users(c: &Connection, t: &TenantId, from: &str) -> Result<Vec<EndUser>, StoreError> {
    // Sized first: a directory of 50,000 users grown by doubling held half as much again.
    let n: i64 = c
        .prepare_cached("SELECT count(*) FROM end_users WHERE tenant=?1")?
        .query_row([t.as_str()], |r| r.get(0))?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut st = c.prepare_cached(&format!("SELECT {USER_COLS} FROM {from}"))?;
    for r in st.query_map([t.as_str()], end_user)? {
        out.push(r?);
    }
    Ok(out)
}

/// The user of `company` whose `col` (`external_id` or `email`) is `value`.
fn user_by(
    c: &Connection,
    t: &TenantId,
    company: &str,
    col: &str,
    value: &str,
) -> Result<Option<EndUser>, StoreError> {
    Ok(c.query_row(
        &format!(
            "SELECT {USER_COLS} FROM end_users WHERE tenant=?1 AND company_id=?2 AND {col}=?3"
        ),
        params![t.as_str(), company, value],
        end_user,
    )
    .optional()?)
}

/// Matches on external id, then on email, within the company.
fn find_user(
    c: &Connection,
    t: &TenantId,
    u: &EndUserInput,
) -> Result<Option<EndUser>, StoreError> {
    if let Some(ext) = &u.external_id {
        if let Some(found) = user_by(c, t, &u.company_id, "external_id", ext)? {
            return Ok(Some(found));
        }
    }
    match &u.email {
        Some(email) => user_by(c, t, &u.company_id, "email", email),
        None => Ok(None),
    }
}

/// A unique-key failure names no storage detail: the checks before each write make it a lost
/// race or a user whose service id is taken.
fn clash(user: &EndUser) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(format!(
            "end user {} clashes with another end user of company {}",
            user.external_id.as_deref().unwrap_or(&user.id),
            user.company_id
        )),
        _ => StoreError::from(e),
    }
}

fn insert_user(c: &Connection, t: &TenantId, user: &EndUser) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO end_users (tenant, id, company_id, external_id, email, name, surname) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![t.as_str(), user.id, user.company_id, user.external_id, user.email, user.name, user.surname],
    )
    .map_err(clash(user))?;
    Ok(())
}

impl EmbeddedStore {
    /// One directory entry deleted by `sql`, the directory stamp moved with it; false when
    /// there was none.
    fn delete_entry(
        &self,
        t: &TenantId,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let n = tx.execute(sql, args)?;
            if n > 0 {
                bump_directory_stamp(&tx, t)?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }
}

#[async_trait]
impl DirectoryStore for EmbeddedStore {
    async fn upsert_objects(
        &self,
        t: &TenantId,
        kind: Target,
        objects: &[DirectoryObject],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            {
                // A NULL parameter keeps the stored field, '' clears it.
                let mut st = tx.prepare_cached(
                    "INSERT INTO objects (tenant, kind, external_id, name, company_id) VALUES (?1, ?2, ?3, NULLIF(?4, ''), NULLIF(?5, ''))
             ON CONFLICT(tenant, kind, external_id) DO UPDATE SET
               name = CASE WHEN ?4 IS NULL THEN objects.name ELSE NULLIF(?4, '') END,
               company_id = CASE WHEN ?5 IS NULL THEN objects.company_id ELSE NULLIF(?5, '') END",
                )?;
                for o in objects {
                    st.execute(params![
                        t.as_str(),
                        kind.as_str(),
                        o.external_id,
                        o.name,
                        o.company_id
                    ])?;
                }
            }
            if !objects.is_empty() {
                bump_directory_stamp(&tx, t)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn list_objects(
        &self,
        t: &TenantId,
        kind: Target,
    ) -> Result<Vec<DirectoryObject>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT external_id, name, company_id FROM objects WHERE tenant=?1 AND kind=?2 ORDER BY external_id",
            )?;
            let rows = st.query_map(params![t.as_str(), kind.as_str()], |r| {
                Ok(DirectoryObject {
                    external_id: r.get(0)?,
                    name: r.get(1)?,
                    company_id: r.get(2)?,
                })
            })?;
            rows.map(|r| r.map_err(StoreError::from)).collect()
        })
    }

    async fn list_end_users(&self, t: &TenantId) -> Result<Vec<EndUser>, StoreError> {
        self.with(|c| users(c, t, "end_users WHERE tenant=?1 ORDER BY id"))
    }

    async fn list_end_users_unordered(&self, t: &TenantId) -> Result<Vec<EndUser>, StoreError> {
        // The table in its stored order: walking the (tenant, id) index, as the ordered list
        // does, reads each user's row by a lookup of its own, and that was most of loading a
        // directory of 46,875 users, the sync's largest fixed cost (`make bench`, CPU per
        // million rows by kind). The scan reads other tenants' rows too: an embedded file
        // holds one tenant or a few.
        self.with(|c| users(c, t, "end_users NOT INDEXED WHERE tenant=?1"))
    }

    async fn directory_stamp(&self, t: &TenantId) -> Result<Option<u64>, StoreError> {
        self.with(|c| {
            let stamp: Option<i64> = c
                .prepare_cached("SELECT stamp FROM directory_stamps WHERE tenant = ?1")?
                .query_row([t.as_str()], |r| r.get(0))
                .optional()?;
            Ok(Some(stamp.unwrap_or(0) as u64))
        })
    }

    async fn create_end_user_if_absent(
        &self,
        t: &TenantId,
        u: &EndUserInput,
    ) -> Result<(EndUser, bool), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            if let Some(found) = find_user(&tx, t, u)? {
                return Ok((found, false));
            }
            let user = new_end_user(u);
            insert_user(&tx, t, &user)?;
            bump_directory_stamp(&tx, t)?;
            tx.commit()?;
            Ok((user, true))
        })
    }

    async fn upsert_end_user(&self, t: &TenantId, u: &EndUserInput) -> Result<EndUser, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let company = &u.company_id;
            let by_email = match &u.email {
                Some(e) => user_by(&tx, t, company, "email", e)?,
                None => None,
            };
            let found = match &u.external_id {
                Some(ext) => user_by(&tx, t, company, "external_id", ext)?,
                None => by_email.clone(),
            };
            if let (Some(email), Some(holder)) = (&u.email, &by_email) {
                if found.as_ref().map(|f| &f.id) != Some(&holder.id) {
                    return Err(EmailTaken::new(email, holder).into());
                }
            }
            let out = match found {
                Some(found) => {
                    let merged = merged_user(found, u);
                    tx.execute(
                "UPDATE end_users SET email=?3, name=?4, surname=?5 WHERE tenant=?1 AND id=?2",
                params![
                    t.as_str(),
                    merged.id,
                    merged.email,
                    merged.name,
                    merged.surname
                ],
            )
            .map_err(clash(&merged))?;
                    merged
                }
                None => {
                    let user = new_end_user(u);
                    insert_user(&tx, t, &user)?;
                    user
                }
            };
            bump_directory_stamp(&tx, t)?;
            tx.commit()?;
            Ok(out)
        })
    }

    async fn delete_object(
        &self,
        t: &TenantId,
        kind: Target,
        external_id: &str,
    ) -> Result<bool, StoreError> {
        self.delete_entry(
            t,
            "DELETE FROM objects WHERE tenant=?1 AND kind=?2 AND external_id=?3",
            params![t.as_str(), kind.as_str(), external_id],
        )
    }

    async fn delete_end_user(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.delete_entry(
            t,
            "DELETE FROM end_users WHERE tenant=?1 AND id=?2",
            params![t.as_str(), id],
        )
    }

    async fn fill_end_user(
        &self,
        t: &TenantId,
        id: &str,
        email: Option<&str>,
        name: Option<&str>,
        surname: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let mut changed = 0;
            for (col, v) in [("name", name), ("surname", surname)] {
                if let Some(v) = v {
                    changed += tx.execute(
                        &format!("UPDATE end_users SET {col}=?3 WHERE tenant=?1 AND id=?2 AND ({col} IS NULL OR {col}='')"),
                        params![t.as_str(), id, v],
                    )?;
                }
            }
            if let Some(e) = email {
                // The email is unique within the company: a clash leaves the stored user as it is.
                changed += tx.execute(
                    "UPDATE OR IGNORE end_users SET email=?3 WHERE tenant=?1 AND id=?2 AND (email IS NULL OR email='')",
                    params![t.as_str(), id, e],
                )?;
            }
            if changed > 0 {
                bump_directory_stamp(&tx, t)?;
            }
            tx.commit()?;
            Ok(())
        })
    }
}
