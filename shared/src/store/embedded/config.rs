//! Configuration on SQLite: the tenant's integration, its mappings and their state (cursor, last
//! run, last error), and its directory imports; each a JSON body keyed by tenant.

use super::{corrupt, from_json, parse_day, to_json, write_tx, EmbeddedStore};
use crate::domain::mapping::{LastError, SyncedRange};
use crate::domain::{
    DirectoryImport, ImportId, Integration, Mapping, MappingId, MappingState, RunId, TenantId,
};
use crate::store::{ConfigStore, StoreError};
use async_trait::async_trait;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};

/// The decoded JSON body of row `id` of `table`, a table of JSON bodies keyed by tenant and id
/// (mappings, imports).
fn read_body<T: serde::de::DeserializeOwned>(
    c: &Connection,
    table: &'static str,
    t: &TenantId,
    id: &str,
) -> Result<Option<T>, StoreError> {
    let body: Option<String> = c
        .query_row(
            &format!("SELECT body FROM {table} WHERE tenant=?1 AND id=?2"),
            params![t.as_str(), id],
            |r| r.get(0),
        )
        .optional()?;
    body.as_deref().map(from_json).transpose()
}

fn read_state(conn: &Connection, t: &str, id: &str) -> Result<Option<MappingState>, StoreError> {
    let row = conn
        .query_row(
            "SELECT generation, last_synced_day, last_run, last_error, last_ok_run, synced_from,
                previous
             FROM mapping_state WHERE tenant=?1 AND id=?2",
            params![t, id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((generation, day, run, err, ok_run, from, previous)) = row else {
        return Ok(None);
    };
    let run_id = |r: Option<String>| r.as_deref().map(RunId::parse).transpose().map_err(corrupt);
    Ok(Some(MappingState {
        generation: generation as u64,
        last_synced_day: day.as_deref().map(parse_day).transpose()?,
        synced_from: from.as_deref().map(parse_day).transpose()?,
        last_run: run_id(run)?,
        last_successful_run: run_id(ok_run)?,
        last_error: err.as_deref().map(from_json::<LastError>).transpose()?,
        previous: previous
            .as_deref()
            .map(from_json::<SyncedRange>)
            .transpose()?,
    }))
}

/// The tenant's integration, if it has one.
pub(super) fn integration(c: &Connection, t: &TenantId) -> Result<Option<Integration>, StoreError> {
    let body: Option<String> = c
        .prepare_cached("SELECT body FROM integrations WHERE tenant=?1")?
        .query_row([t.as_str()], |r| r.get(0))
        .optional()?;
    body.as_deref().map(from_json).transpose()
}

/// The tenant's generations (which one each mapping writes and shows), if it has an integration.
pub(super) fn generations(
    c: &Connection,
    t: &TenantId,
) -> Result<Option<crate::domain::Generations>, StoreError> {
    Ok(integration(c, t)?.map(|i| i.generations()))
}

#[async_trait]
impl ConfigStore for EmbeddedStore {
    async fn get_integration(&self, t: &TenantId) -> Result<Option<Integration>, StoreError> {
        self.with(|c| integration(c, t))
    }

    async fn put_integration(&self, i: &Integration) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let body = to_json(&stored)?;
        self.with(|c| {
            let tx = write_tx(c)?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM integrations WHERE tenant=?1",
                    [i.tenant.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if current.unwrap_or(0) as u64 != i.version {
                return Err(StoreError::Conflict(format!(
                    "integration version is {}, expected {}",
                    current.unwrap_or(0),
                    i.version
                )));
            }
            tx.execute(
                "INSERT INTO integrations (tenant, version, generation, body, published)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(tenant) DO UPDATE SET version=excluded.version,
                    generation=excluded.generation, body=excluded.body,
                    published=excluded.published",
                params![
                    i.tenant.as_str(),
                    stored.version as i64,
                    stored.generation as i64,
                    body,
                    stored.read_generation() as i64
                ],
            )?;
            tx.commit()?;
            Ok(stored.version)
        })
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT tenant FROM integrations ORDER BY tenant")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| {
                r.map_err(StoreError::from)
                    .and_then(|s| TenantId::parse(&s).map_err(corrupt))
            })
            .collect()
        })
    }

    async fn put_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
        let body = to_json(m)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO mappings (tenant, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(tenant, id) DO UPDATE SET body=excluded.body",
                params![m.tenant.as_str(), m.id.as_str(), body],
            )?;
            Ok(())
        })
    }

    async fn get_mapping(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<Mapping>, StoreError> {
        self.with(|c| read_body(c, "mappings", t, id.as_str()))
    }

    async fn list_mappings(&self, t: &TenantId) -> Result<Vec<Mapping>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT body FROM mappings WHERE tenant=?1")?;
            let rows = st.query_map([t.as_str()], |r| r.get::<_, String>(0))?;
            let mut out: Vec<Mapping> = rows
                .map(|r| r.map_err(StoreError::from).and_then(|s| from_json(&s)))
                .collect::<Result<_, _>>()?;
            out.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.id.cmp(&b.id))
            });
            Ok(out)
        })
    }

    async fn delete_mapping(&self, t: &TenantId, id: &MappingId) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let p = params![t.as_str(), id.as_str()];
            let n = tx.execute("DELETE FROM mappings WHERE tenant=?1 AND id=?2", p)?;
            tx.execute("DELETE FROM mapping_state WHERE tenant=?1 AND id=?2", p)?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    async fn get_mapping_state(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<MappingState>, StoreError> {
        self.with(|c| read_state(c, t.as_str(), id.as_str()))
    }

    async fn reset_mapping_state_keeping(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        previous: Option<SyncedRange>,
    ) -> Result<(), StoreError> {
        let previous = previous.as_ref().map(to_json).transpose()?;
        self.with(|c| {
            c.execute(
                "INSERT INTO mapping_state (tenant, id, generation, last_synced_day, last_run, last_error,
                    previous)
                 VALUES (?1, ?2, ?3, NULL, NULL, NULL, ?4)
                 ON CONFLICT(tenant, id) DO UPDATE SET generation=excluded.generation, last_synced_day=NULL,
                    synced_from=NULL, previous=excluded.previous",
                params![t.as_str(), id.as_str(), generation as i64, previous],
            )?;
            Ok(())
        })
    }

    async fn set_synced_from(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        let day = day.format("%Y-%m-%d").to_string();
        self.with(|c| {
            c.execute(
                "UPDATE mapping_state SET synced_from=?4 WHERE tenant=?1 AND id=?2 AND generation=?3",
                params![t.as_str(), id.as_str(), generation as i64, day],
            )?;
            Ok(())
        })
    }

    async fn advance_cursor(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        to: NaiveDate,
        succeeded: Option<&RunId>,
    ) -> Result<(), StoreError> {
        let day = to.format("%Y-%m-%d").to_string();
        self.with(|c| {
            let n = c.execute(
                "UPDATE mapping_state SET
                    last_synced_day = CASE WHEN last_synced_day IS NULL OR last_synced_day < ?4 THEN ?4 ELSE last_synced_day END,
                    last_ok_run = coalesce(?5, last_ok_run),
                    last_error = CASE WHEN ?5 IS NULL THEN last_error END
                 WHERE tenant=?1 AND id=?2 AND generation=?3",
                params![t.as_str(), id.as_str(), generation as i64, day, succeeded.map(RunId::as_str)],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("mapping {id} is not at generation {generation}")));
            }
            Ok(())
        })
    }

    async fn set_last_run(
        &self,
        t: &TenantId,
        id: &MappingId,
        run: &RunId,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mapping_state SET last_run=?3 WHERE tenant=?1 AND id=?2",
                params![t.as_str(), id.as_str(), run.as_str()],
            )?;
            Ok(())
        })
    }

    async fn set_mapping_error(
        &self,
        t: &TenantId,
        id: &MappingId,
        error: Option<LastError>,
    ) -> Result<(), StoreError> {
        let e = error.as_ref().map(to_json).transpose()?;
        self.with(|c| {
            c.execute(
                "UPDATE mapping_state SET last_error=?3 WHERE tenant=?1 AND id=?2",
                params![t.as_str(), id.as_str(), e],
            )?;
            Ok(())
        })
    }

    async fn put_import(&self, i: &DirectoryImport) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let body = to_json(&stored)?;
        self.with(|c| {
            let tx = write_tx(c)?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM imports WHERE tenant=?1 AND id=?2",
                    params![i.tenant.as_str(), i.id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if current.unwrap_or(0) as u64 != i.version {
                return Err(StoreError::Conflict(format!(
                    "import {} is not at version {}",
                    i.id, i.version
                )));
            }
            tx.execute(
                "INSERT INTO imports (tenant, id, started_at, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(tenant, id) DO UPDATE SET version=excluded.version, body=excluded.body",
                params![
                    i.tenant.as_str(),
                    i.id.as_str(),
                    i.started_at.to_rfc3339(),
                    stored.version as i64,
                    body
                ],
            )?;
            tx.commit()?;
            Ok(stored.version)
        })
    }

    async fn get_import(
        &self,
        t: &TenantId,
        id: &ImportId,
    ) -> Result<Option<DirectoryImport>, StoreError> {
        self.with(|c| read_body(c, "imports", t, id.as_str()))
    }

    async fn list_imports(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<DirectoryImport>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT body FROM imports WHERE tenant=?1 ORDER BY started_at DESC, id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![t.as_str(), limit as i64], |r| {
                r.get::<_, String>(0)
            })?;
            rows.map(|r| r.map_err(StoreError::from).and_then(|s| from_json(&s)))
                .collect()
        })
    }
}
