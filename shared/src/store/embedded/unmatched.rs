//! Unmatched identities on the embedded store: one row per (mapping, generation, day, reason,
//! identity); a chunk's replace deletes its days and inserts what it found, in one transaction.

use super::EmbeddedStore;
use super::{corrupt, write_tx};
use crate::domain::Window;
use crate::domain::{MappingId, TenantId, UnmatchedEntry, UnmatchedReason};
use crate::store::StoreError;
use crate::store::UnmatchedStore;
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use rusqlite::params;

fn day_num(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

#[async_trait]
impl UnmatchedStore for EmbeddedStore {
    async fn replace_unmatched(
        &self,
        t: &TenantId,
        m: &MappingId,
        generation: u64,
        window: Window,
        entries: &[UnmatchedEntry],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let (tenant, mapping, g) = (t.as_str(), m.as_str(), generation as i64);
            tx.execute(
                "DELETE FROM unmatched WHERE tenant=?1 AND mapping=?2 AND generation<?3",
                params![tenant, mapping, g],
            )?;
            tx.execute(
                "DELETE FROM unmatched WHERE tenant=?1 AND mapping=?2 AND generation=?3 AND day BETWEEN ?4 AND ?5",
                params![tenant, mapping, g, day_num(window.from), day_num(window.to)],
            )?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR REPLACE INTO unmatched (tenant, mapping, generation, day, reason, identity, rows, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for e in entries
                    .iter()
                    .filter(|e| e.day >= window.from && e.day <= window.to)
                {
                    ins.execute(params![
                        tenant,
                        mapping,
                        g,
                        day_num(e.day),
                        e.reason.as_str(),
                        e.identity.as_deref().unwrap_or(""),
                        i64::try_from(e.rows).unwrap_or(i64::MAX),
                        e.value
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn unmatched_of(
        &self,
        t: &TenantId,
        m: &MappingId,
        generation: u64,
    ) -> Result<Vec<UnmatchedEntry>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT day, reason, identity, rows, value FROM unmatched
         WHERE tenant=?1 AND mapping=?2 AND generation=?3",
            )?;
            let rows = st.query_map(params![t.as_str(), m.as_str(), generation as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, f64>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (day, reason, identity, n, value) = row?;
                out.push(UnmatchedEntry {
                    reason: UnmatchedReason::parse(&reason)
                        .ok_or_else(|| corrupt(format!("unknown reason {reason}")))?,
                    identity: (!identity.is_empty()).then_some(identity),
                    day: i32::try_from(day)
                        .ok()
                        .and_then(NaiveDate::from_num_days_from_ce_opt)
                        .ok_or_else(|| corrupt(format!("bad day number {day}")))?,
                    rows: u64::try_from(n).unwrap_or(0),
                    value,
                });
            }
            crate::domain::unmatched::sort_entries(&mut out);
            Ok(out)
        })
    }

    async fn delete_unmatched(&self, t: &TenantId, m: &MappingId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM unmatched WHERE tenant=?1 AND mapping=?2",
                params![t.as_str(), m.as_str()],
            )?;
            Ok(())
        })
    }
}
