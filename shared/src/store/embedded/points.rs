//! Writes of metric values and activity records (schema version 5): a chunk's replace, the
//! purge of older generations and a mapping's delete.
//!
//! Both tables are keyed so that a chunk's write is one contiguous region of each: values by
//! (metric key, day, object key), activity by (mapping key, day, end-user key), with activity's
//! company index by (mapping key, day, company key). A chunk (one mapping, a window of days)
//! deletes and inserts ranges that no other mapping shares, and its records arrive in key order,
//! so it touches only the pages of its own records. The earlier layout's indexes of activity by
//! end user and by company took every record to a random page of a table of millions: a large
//! re-sync spent most of its time reading, writing and checkpointing those pages.

use super::blocks::{filter_days, ActivityEntry, Group, GroupWriter, Table, ValueEntry};
use super::keys::{
    ensure_mapping_key, mapping_key, KeyCache, KeyTable, KeyTx, RecentKeys, SlotKeys,
};
use super::EmbeddedStore;
use super::{write_tx, StoreError};
use crate::domain::Window;
use crate::domain::{Activity, Generations, MappingId, MetricValue, TenantId};
use crate::store::DataStore;
use crate::store::{ChunkRecords, Text};
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use rusqlite::{params, Connection};

/// The integer a day is stored as: its day number of the common era.
pub(super) fn day_num(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

pub(super) fn num_day(n: i64) -> Result<NaiveDate, StoreError> {
    i32::try_from(n)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| StoreError::corrupt(format!("day number {n} is out of range")))
}

/// A slot the records gave without its object (a bug of the records' producer).
fn missing(what: &str, slot: u32) -> StoreError {
    StoreError::corrupt(format!(
        "the chunk's records name no {what} for slot {slot}"
    ))
}

/// Replaces everything `mapping` wrote on the window's days with `records`, in one
/// transaction, if `generation` is the one the mapping writes.
pub(super) fn replace_chunk(
    c: &mut Connection,
    cache: &mut KeyCache,
    t: &TenantId,
    generation: u64,
    mapping: &MappingId,
    window: Window,
    records: &dyn ChunkRecords,
) -> Result<(), StoreError> {
    let tx = write_tx(c)?;
    let writes = super::config::generations(&tx, t)?.map(|g| g.writes(mapping));
    if writes != Some(generation) {
        return Err(StoreError::StaleGeneration(generation));
    }
    let generation = generation as i64;
    let m = ensure_mapping_key(&tx, t, mapping)?;
    let days = (day_num(window.from), day_num(window.to));
    delete_days(&tx, m, Gens::One(generation), Some(days))?;
    let mut space = cache.take_space(t, records.slot_space());
    let mut keys = KeyTx::new(&tx, cache, t);
    {
        let mut rows = GroupWriter::new(Table::Values);
        let mut metrics = SlotKeys::default();
        let mut recent = RecentKeys::default();
        let mut written: Vec<i64> = Vec::new();
        records.for_each_value(Text::Unslotted, &mut |v, slots| {
            let kind = v.object.kind.as_str();
            let resolve = || keys.key(KeyTable::Metric, [kind, &v.metric, &v.app]);
            let metric = match slots.metric {
                Some(_) => metrics.get(slots.metric, resolve)?,
                None => recent.metric(v.object.kind, &v.metric, &v.app, resolve)?,
            };
            if !written.contains(&metric) {
                written.push(metric);
            }
            let object = match slots.object {
                Some(slot) => space.objects(v.object.kind).get(Some(slot), || {
                    let id = records
                        .slot_object(slot)
                        .ok_or_else(|| missing("object", slot))?
                        .id;
                    keys.key(KeyTable::Object, [kind, &id, ""])
                })?,
                None => recent.object(v.object.kind, &v.object.id, || {
                    keys.key(KeyTable::Object, [kind, &v.object.id, ""])
                })?,
            };
            let e = ValueEntry {
                object,
                value: v.value,
                mapping: m,
                generation,
            };
            rows.push(&tx, metric, day_num(v.day), e)
        })?;
        rows.flush(&tx)?;
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO mapping_metrics (mapping, metric) VALUES (?1, ?2)",
        )?;
        for metric in written {
            st.execute([m, metric])?;
        }
    }
    {
        let mut rows = GroupWriter::new(Table::Activity);
        let mut labels = SlotKeys::default();
        let (user_kind, company_kind) = (
            crate::domain::Target::EndUser.as_str(),
            crate::domain::Target::Company.as_str(),
        );
        records.for_each_activity(Text::Unslotted, &mut |a, slots| {
            let (end_user, company) = space.owners.get(slots.object, || {
                let (user, company) = match slots.object {
                    Some(slot) => records
                        .slot_owner(slot)
                        .ok_or_else(|| missing("end user", slot))?,
                    None => (a.end_user_id.clone(), a.company_id.clone()),
                };
                Ok((
                    keys.key(KeyTable::Object, [user_kind, &user, ""])?,
                    keys.key(KeyTable::Object, [company_kind, &company, ""])?,
                ))
            })?;
            let label = labels.get(slots.metric, || {
                keys.key(KeyTable::Label, [&a.label, "", ""])
            })?;
            let e = ActivityEntry {
                end_user,
                company,
                label,
                passive: a.passive,
                events: a.events,
                minutes: a.minutes,
                mapping: m,
                generation,
            };
            rows.push(&tx, m, day_num(a.day), e)
        })?;
        rows.flush(&tx)?;
    }
    let new = keys.into_new();
    tx.commit()?;
    cache.absorb(new);
    cache.keep_space(space);
    Ok(())
}

/// The metric keys a mapping has written values of.
fn metrics_of(c: &Connection, m: i64) -> Result<Vec<i64>, StoreError> {
    let mut st = c.prepare_cached("SELECT metric FROM mapping_metrics WHERE mapping = ?1")?;
    let rows = st.query_map([m], |r| r.get(0))?;
    rows.map(|r| r.map_err(StoreError::from)).collect()
}

/// `head` (a select list, or `DELETE`) over the rows of a group in one generation (`?1`, `?2`)
/// in the days `?3..=?4` that `filter` selects (SQL over the row's columns, `?5` its argument).
fn rows_sql(table: Table, head: &str, filter: &str) -> String {
    table.sql(&format!(
        "{head} FROM {{t}} WHERE {{key}} AND day BETWEEN ?3 AND ?4 AND ({filter})"
    ))
}

/// The days of rows in `from..=to` of a group that `filter` selects (SQL over the row's
/// columns, `?5` its argument).
fn days_of(
    c: &Connection,
    table: Table,
    group: Group,
    (from, to): (i64, i64),
    filter: &str,
    arg: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut st = c.prepare_cached(&rows_sql(table, "SELECT DISTINCT day", filter))?;
    let rows = st.query_map(params![group.id, group.generation, from, to, arg], |r| {
        r.get(0)
    })?;
    rows.map(|r| r.map_err(StoreError::from)).collect()
}

/// Records of rows in a group's days that `filter` selects (the `n` of each row).
fn count(
    c: &Connection,
    table: Table,
    group: Group,
    (from, to): (i64, i64),
    filter: &str,
    arg: i64,
) -> Result<usize, StoreError> {
    let n: i64 = c
        .prepare_cached(&rows_sql(table, "SELECT coalesce(sum(n), 0)", filter))?
        .query_row(params![group.id, group.generation, from, to, arg], |r| {
            r.get(0)
        })?;
    Ok(n as usize)
}

/// Deletes the rows of a group's days that `filter` selects.
fn delete_rows(
    c: &Connection,
    table: Table,
    group: Group,
    (from, to): (i64, i64),
    filter: &str,
    arg: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(&rows_sql(table, "DELETE", filter))?
        .execute(params![group.id, group.generation, from, to, arg])?;
    Ok(())
}

/// Every generation with rows of a group.
fn generations_of(c: &Connection, table: Table, group: i64) -> Result<Vec<i64>, StoreError> {
    let mut st = c.prepare_cached(
        &table.sql("SELECT DISTINCT generation FROM {t} WHERE {g} = ?1 ORDER BY generation"),
    )?;
    let rows = st.query_map([group], |r| r.get(0))?;
    rows.map(|r| r.map_err(StoreError::from)).collect()
}

/// Which generations of a mapping's rows a delete covers.
#[derive(Clone, Copy)]
enum Gens<'a> {
    One(i64),
    /// Every generation but these (all of them when empty).
    AllBut(&'a [u64]),
}

/// Deletes what the mapping `m` wrote in `which` generations on the days `from..=to` (every
/// day when `None`); returns how many records went. Its values are in
/// the metrics it ever wrote (`mapping_metrics`): rows of only its values go by range; rows it
/// shares with another mapping's values are rewritten without its own. Its activity rows are
/// its own.
fn delete_days(
    c: &Connection,
    m: i64,
    which: Gens,
    days: Option<(i64, i64)>,
) -> Result<usize, StoreError> {
    let days = days.unwrap_or((i64::MIN, i64::MAX));
    let gens = |table: Table, group: i64| -> Result<Vec<i64>, StoreError> {
        match which {
            Gens::One(g) => Ok(vec![g]),
            Gens::AllBut(keep) => Ok(generations_of(c, table, group)?
                .into_iter()
                .filter(|g| !keep.contains(&(*g as u64)))
                .collect::<Vec<_>>()),
        }
    };
    let mut n = 0;
    for metric in metrics_of(c, m)? {
        for g in gens(Table::Values, metric)? {
            let group = Group::new(metric, g);
            n += count(c, Table::Values, group, days, "mapping = ?5", m)?;
            delete_rows(c, Table::Values, group, days, "mapping = ?5", m)?;
            let mixed = days_of(
                c,
                Table::Values,
                group,
                days,
                "mapping IS NULL AND ?5 = ?5",
                m,
            )?;
            n += filter_days(c, Table::Values, group, mixed, &|e: &ValueEntry| {
                e.mapping == m
            })?;
        }
    }
    for g in gens(Table::Activity, m)? {
        let group = Group::new(m, g);
        n += count(c, Table::Activity, group, days, "?5 = ?5", m)?;
        delete_rows(c, Table::Activity, group, days, "?5 = ?5", m)?;
    }
    Ok(n)
}

/// Deletes the values and activity a mapping wrote in generations not in `keep` (every one
/// when empty); returns how many records went.
pub(super) fn delete_values_of(
    c: &Connection,
    t: &TenantId,
    m: &MappingId,
    keep: &[u64],
) -> Result<usize, StoreError> {
    match mapping_key(c, t, m)? {
        Some(key) => delete_days(c, key, Gens::AllBut(keep), None),
        None => Ok(0),
    }
}

#[async_trait]
impl DataStore for EmbeddedStore {
    async fn replace_chunk(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        values: &[MetricValue],
        activities: &[Activity],
    ) -> Result<(), StoreError> {
        let records = crate::store::RecordSlices { values, activities };
        self.with_keys(|c, keys| replace_chunk(c, keys, t, generation, mapping, window, &records))
    }

    async fn replace_chunk_from(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        records: &dyn crate::store::ChunkRecords,
    ) -> Result<(), StoreError> {
        self.with_keys(|c, keys| replace_chunk(c, keys, t, generation, mapping, window, records))
    }

    async fn purge_generations(&self, t: &TenantId, live: &Generations) -> Result<u64, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let keep = live.live();
            let all = (i64::MIN, i64::MAX);
            let groups = |sql: &str| -> Result<Vec<i64>, StoreError> {
                let mut st = tx.prepare_cached(sql)?;
                let rows = st.query_map([t.as_str()], |r| r.get(0))?;
                rows.map(|r| r.map_err(StoreError::from)).collect()
            };
            let mut n = 0;
            for (table, sql) in [
                (
                    Table::Values,
                    "SELECT id FROM metric_keys WHERE tenant = ?1",
                ),
                (
                    Table::Activity,
                    "SELECT id FROM mapping_keys WHERE tenant = ?1",
                ),
            ] {
                for id in groups(sql)? {
                    for g in generations_of(&tx, table, id)? {
                        if keep.contains(&(g as u64)) {
                            continue;
                        }
                        let group = Group::new(id, g);
                        n += count(&tx, table, group, all, "?5 = ?5", 0)?;
                        delete_rows(&tx, table, group, all, "?5 = ?5", 0)?;
                    }
                }
            }
            // A rebuilt mapping's values of the generation it showed before.
            for (m, keep) in live.own_keep() {
                n += delete_values_of(&tx, t, &m, &keep)?;
            }
            tx.commit()?;
            Ok(n as u64)
        })
    }

    async fn delete_mapping_data(
        &self,
        t: &TenantId,
        m: &MappingId,
        keep: &[u64],
    ) -> Result<u64, StoreError> {
        self.with(|c| {
            let tx = write_tx(c)?;
            let n = delete_values_of(&tx, t, m, keep)?;
            tx.commit()?;
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk's deletes and counts are ranges of a group's rows, never a scan of the table.
    #[test]
    fn a_chunks_deletes_are_ranges_of_its_own_rows() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::embedded::SCHEMA).unwrap();
        for table in [Table::Values, Table::Activity] {
            for head in [
                "DELETE",
                "SELECT coalesce(sum(n), 0)",
                "SELECT DISTINCT day",
            ] {
                for filter in ["mapping = ?5", "?5 = ?5"] {
                    if table == Table::Activity && filter.starts_with("mapping") {
                        continue;
                    }
                    let plan = super::super::reads::query_plan(&c, &rows_sql(table, head, filter));
                    assert!(
                        plan.iter().any(|l| l.contains("USING PRIMARY KEY")
                            && l.contains("=? AND day>? AND day<?)")),
                        "{plan:#?}"
                    );
                    assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
                }
            }
        }
    }

    /// A chunk of more values than one row holds, with values repeated for one series and day
    /// (within a row's records, across rows, in the last row): every value is stored and the
    /// later of two wins.
    #[tokio::test]
    async fn a_large_chunk_is_stored_whole_and_the_later_value_wins() {
        use crate::domain::{
            Activity, Integration, MappingId, MetricValue, ObjectRef, Target, TenantId,
        };
        use crate::store::prelude::*;
        use chrono::NaiveDate;
        let s = super::super::EmbeddedStore::in_memory().unwrap();
        let t = TenantId::parse("t1").unwrap();
        s.put_integration(&Integration::new(t.clone()))
            .await
            .unwrap();
        let m = MappingId::parse("m1").unwrap();
        let first = NaiveDate::from_ymd_opt(2024, 2, 25).unwrap();
        let value = |object: usize, day: u64, v: f64| MetricValue {
            object: ObjectRef {
                kind: Target::Company,
                id: format!("c{object:03}"),
            },
            metric: "Clicks".into(),
            app: String::new(),
            day: first + chrono::Days::new(day),
            value: v,
        };
        // 300 values: objects 0..100 on days 0..3 (2024-02-25 to 27), in day order.
        let mut values: Vec<MetricValue> = (0..300)
            .map(|i| value(i % 100, (i / 100) as u64, i as f64))
            .collect();
        values[20] = value(7, 0, 1000.0); // repeats [7] (day 0) in its day's records
        values[200] = value(3, 0, 2000.0); // repeats [3] among day 2's (merged into day 0's rows)
        values[299] = value(290 % 100, 2, 3000.0); // repeats [290] in the last day's records
        assert_eq!(super::super::blocks::BLOCK, 64);
        let window = crate::domain::Window {
            from: first,
            to: first + chrono::Days::new(2),
        };
        // The same shape for activity: users 0..100 on days 0..3, three records repeated.
        let activity = |user: usize, day: u64, events: f64| Activity {
            end_user_id: format!("u{user:03}"),
            company_id: "acme".into(),
            mapping_id: m.clone(),
            label: "Clicks".into(),
            day: first + chrono::Days::new(day),
            events,
            minutes: 1.0,
            passive: false,
        };
        let mut activities: Vec<Activity> = (0..300)
            .map(|i| activity(i % 100, (i / 100) as u64, i as f64))
            .collect();
        activities[20] = activity(7, 0, 1000.0);
        activities[200] = activity(3, 0, 2000.0);
        activities[299] = activity(90, 2, 3000.0);
        s.replace_chunk(&t, 1, &m, window, &values, &activities)
            .await
            .unwrap();
        let (recorded, stored): (Vec<_>, Vec<_>) = s
            .export(None)
            .await
            .unwrap()
            .into_iter()
            .partition(|r| r.record == "activity");
        let recorded: Vec<(String, NaiveDate, f64)> = recorded
            .into_iter()
            .map(|r| (r.object_id.replace('u', "c"), r.day, r.value))
            .collect();
        let stored: Vec<(String, NaiveDate, f64)> = stored
            .into_iter()
            .map(|r| (r.object_id, r.day, r.value))
            .collect();
        let mut expected = Vec::new();
        for object in 0..100 {
            for day in 0..3u64 {
                let i = day as usize * 100 + object;
                let v = match (object, day) {
                    (7, 0) => 1000.0,
                    (3, 0) => 2000.0,
                    (90, 2) => 3000.0,
                    (20, 0) | (0, 2) | (99, 2) => continue,
                    _ => i as f64,
                };
                expected.push((format!("c{object:03}"), first + chrono::Days::new(day), v));
            }
        }
        assert_eq!(stored.len(), 297);
        assert_eq!(stored, expected);
        assert_eq!(recorded, expected);
    }

    /// The records of a transformed chunk, written by their slots (each object's text read once,
    /// slot keys kept from chunk to chunk of one directory snapshot), are stored as the same
    /// records written as text: for company and end-user chunks, two chunks of one snapshot,
    /// then a chunk of a new snapshot in which the same slots are other end users.
    #[tokio::test]
    async fn chunk_records_written_by_their_slots_are_the_records_written_as_text() {
        use crate::domain::{
            AppsTable, DirectoryObject, EndUser, Integration, MappingId, Target, TenantId,
        };
        use crate::pendo::RowSink;
        use crate::store::{collect_records, prelude::*};
        use crate::sync::identity::{Directory, IdentityRules};
        use crate::sync::transform::{ChunkAccumulator, TransformSpec};
        use chrono::NaiveDate;
        let t = TenantId::parse("t1").unwrap();
        let day0 = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let ms = |d: i64| {
            (day0 - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() * 86_400_000
                + d * 86_400_000
        };
        // Users u{j} (visitor v{j}) of company c{j % 3}, listed in `order`.
        let directory = |order: &[usize]| {
            let users = order
                .iter()
                .map(|&j| EndUser {
                    id: format!("u{j}"),
                    company_id: format!("c{}", j % 3),
                    external_id: Some(format!("v{j}")),
                    email: None,
                    name: None,
                    surname: None,
                })
                .collect();
            let companies = (0..3)
                .map(|c| DirectoryObject {
                    external_id: format!("c{c}"),
                    name: None,
                    company_id: None,
                })
                .collect();
            Directory::new(companies, Vec::new(), Vec::new(), users)
        };
        let spec = |m: &str, target: Target, from: i64| TransformSpec {
            mapping_id: MappingId::parse(m).unwrap(),
            target,
            metric: format!("{m} clicks"),
            minutes_metric: Some(format!("{m} minutes")),
            multi_app: false,
            passive: false,
            auto_create: false,
            rules: IdentityRules {
                email_mapped: false,
                may_create: false,
            },
            tz: None,
            window: crate::domain::Window {
                from: day0 + chrono::Days::new(from as u64),
                to: day0 + chrono::Days::new(from as u64 + 2),
            },
            apps: AppsTable::default(),
        };
        let by_slots = super::super::EmbeddedStore::in_memory().unwrap();
        let as_text = super::super::EmbeddedStore::in_memory().unwrap();
        for s in [&by_slots, &as_text] {
            s.put_integration(&Integration::new(t.clone()))
                .await
                .unwrap();
        }
        let first = directory(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let reordered = directory(&[7, 6, 5, 4, 3, 2, 1, 0]);
        let chunks = [
            (&first, spec("m1", Target::Company, 0)),
            (&first, spec("m2", Target::EndUser, 0)),
            (&first, spec("m2", Target::EndUser, 3)),
            (&reordered, spec("m2", Target::EndUser, 6)),
            (&reordered, spec("m1", Target::Company, 6)),
        ];
        for (dir, spec) in chunks {
            let (mapping, window) = (spec.mapping_id.clone(), spec.window);
            let from = (window.from - day0).num_days();
            let mut acc = ChunkAccumulator::new(spec, dir);
            for j in 0..9i64 {
                for d in 0..3 {
                    let row = format!(
                        r#"{{"day":{},"appId":0,"company":"c{}","endUser":"v{j}","numEvents":{},"numMinutes":{}}}"#,
                        ms(from + d),
                        j % 3,
                        j * 10 + d + from,
                        j + d
                    );
                    acc.row(row.as_bytes()).unwrap();
                }
            }
            let prepared = acc.prepare(Vec::new());
            by_slots
                .replace_chunk_from(&t, 1, &mapping, window, &prepared)
                .await
                .unwrap();
            let (values, activities) = collect_records(&prepared).unwrap();
            as_text
                .replace_chunk(&t, 1, &mapping, window, &values, &activities)
                .await
                .unwrap();
        }
        let stored = by_slots.export(None).await.unwrap();
        // Company chunks: 3 companies x 3 days x 2 metrics, and 8 users x 3 days of activity;
        // end-user chunks: 8 users x 3 days x 2 metrics, and the same activity.
        assert_eq!(stored.len(), 2 * (18 + 24) + 3 * (48 + 24));
        assert_eq!(stored, as_text.export(None).await.unwrap());
    }
}
