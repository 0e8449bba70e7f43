//! The embedded store's file format versions (`PRAGMA user_version`) and the migration of a file
//! written by an earlier version, in one transaction when it is opened.
//!
//! - 0: metric values in `metric_values`, keyed by the text of tenant, object, metric, app, day.
//! - 1: values in `series_values` by integer series; activity still in `activities`, keyed by
//!   end user first.
//! - 2: activity in `activity_records`, keyed by mapping and day, with indexes by end user and
//!   by company.
//! - 3: runs as a header, a row per chunk and a row per (run, mapping) instead of one JSON body.
//! - 4: a run's status per mapping (`run_mappings.chunks` … `last_at`) and a mapping's last
//!   successful run (`mapping_state.last_ok_run`; see `run_status.rs`).
//! - 5: values in `metric_blocks` and activity in `activity_blocks`, up to 64 records to a
//!   row, referring to objects, metrics, labels and mappings by integer keys (`object_keys`,
//!   `metric_keys`, `label_keys`, `mapping_keys`; see `blocks.rs` and `points.rs`).
//! - 6: `mapping_state.synced_from`, the first day of a mapping's synced range (empty until
//!   its next sync from scratch: until then its charts show no zero days).
//! - 7: the generation in the key of the block rows (`metric_blocks`, `activity_blocks`: a
//!   Re-sync all writes the next generation beside the shown one) and
//!   `integrations.published`, the generation reads show.
//! - 8: `mapping_state.previous`, the synced range of the shown generation while a Re-sync all
//!   builds the next.
//!
//! The tables of versions 1-4 are created (`legacy_v4.sql`) while migrating, so the older steps
//! fill them as they always did, then converted to version 5 and dropped. `metric_values` and
//! `activities` remain as read-only views of the rows, for SQL written against them.

use super::blocks::{self, ActivityEntry, Group, GroupWriter, Table, ValueEntry};
use super::{run_status, runs, write_tx, StoreError};
use rusqlite::Connection;

/// The layout `schema.sql` describes.
pub(super) const SCHEMA_VERSION: i64 = 8;

/// Brings a file written by an earlier version to [`SCHEMA_VERSION`], in one transaction (a
/// failure leaves the file as it was; another process opening it at the same time waits).
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(()); // without the write lock: opening a file another process writes to
    }
    let tx = write_tx(conn)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let table = |name: &str| -> Result<bool, StoreError> {
        Ok(tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1)",
            [name],
            |r| r.get(0),
        )?)
    };
    run_status::migrate_status(&tx)?;
    tx.execute_batch(include_str!("legacy_v4.sql"))?;
    if table("metric_values")? {
        // Version 0. Day numbers of the common era: the Julian day of 0001-01-01 is 1721425.5.
        tx.execute_batch(
            "INSERT OR IGNORE INTO mapping_keys (tenant, mapping_id)
                SELECT DISTINCT tenant, mapping_id FROM metric_values;
             INSERT OR IGNORE INTO series (tenant, object_kind, object_id, metric, app)
                SELECT DISTINCT tenant, object_kind, object_id, metric, app FROM metric_values;
             INSERT OR REPLACE INTO series_values (bucket, series, day, value, mapping, generation)
                SELECT day >> 3, series, day, value, mapping, generation FROM (
                    SELECT s.id AS series, CAST(julianday(v.day) - 1721424.5 AS INTEGER) AS day,
                        v.value AS value, m.id AS mapping, v.generation AS generation
                    FROM metric_values v
                    JOIN series s ON s.tenant = v.tenant AND s.object_kind = v.object_kind
                        AND s.object_id = v.object_id AND s.metric = v.metric AND s.app = v.app
                    JOIN mapping_keys m ON m.tenant = v.tenant AND m.mapping_id = v.mapping_id
                )
                ORDER BY day >> 3, series, day;
             DROP TABLE metric_values;",
        )?;
    }
    if table("activities")? {
        // Versions 0 and 1: the same columns in the same order; only the key's order changed.
        tx.execute_batch(
            "INSERT OR REPLACE INTO activity_records SELECT * FROM activities
                ORDER BY tenant, mapping_id, day, end_user_id;
             DROP TABLE activities;",
        )?;
    }
    runs::migrate_runs(&tx)?;
    to_version_5(&tx)?;
    run_status::add_column(&tx, "mapping_state", "synced_from", "TEXT")?;
    to_version_7(&tx)?;
    run_status::add_column(&tx, "mapping_state", "previous", "TEXT")?;
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    tx.commit()?;
    Ok(())
}

/// Versions 1-4's values and activity into version 5's keyed block rows; the old tables and
/// views go, and the views are made again over the new tables.
fn to_version_5(tx: &Connection) -> Result<(), StoreError> {
    tx.execute_batch(
        "DROP VIEW IF EXISTS metric_values;
         DROP VIEW IF EXISTS activities;
         INSERT OR IGNORE INTO object_keys (tenant, kind, external_id)
            SELECT DISTINCT tenant, object_kind, object_id FROM series;
         INSERT OR IGNORE INTO metric_keys (tenant, kind, metric, app)
            SELECT DISTINCT tenant, object_kind, metric, app FROM series;
         CREATE TEMP VIEW legacy_values AS
            SELECT k.id AS metric, v.day AS day, o.id AS object, v.value AS value,
                v.mapping AS mapping, v.generation AS generation
            FROM series_values v JOIN series s ON s.id = v.series
            JOIN metric_keys k ON k.tenant = s.tenant AND k.kind = s.object_kind
                AND k.metric = s.metric AND k.app = s.app
            JOIN object_keys o ON o.tenant = s.tenant AND o.kind = s.object_kind
                AND o.external_id = s.object_id;
         INSERT OR IGNORE INTO mapping_metrics (mapping, metric)
            SELECT DISTINCT mapping, metric FROM legacy_values;
         INSERT OR IGNORE INTO mapping_keys (tenant, mapping_id)
            SELECT DISTINCT tenant, mapping_id FROM activity_records;
         INSERT OR IGNORE INTO object_keys (tenant, kind, external_id)
            SELECT DISTINCT tenant, 'endUser', end_user_id FROM activity_records;
         INSERT OR IGNORE INTO object_keys (tenant, kind, external_id)
            SELECT DISTINCT tenant, 'company', company_id FROM activity_records;
         INSERT OR IGNORE INTO label_keys (tenant, label)
            SELECT DISTINCT tenant, label FROM activity_records;
         CREATE TEMP VIEW legacy_activity AS
            SELECT m.id AS mapping, CAST(julianday(a.day) - 1721424.5 AS INTEGER) AS day,
                u.id AS end_user, c.id AS company, l.id AS label, a.passive AS passive,
                a.events AS events, a.minutes AS minutes, a.generation AS generation
            FROM activity_records a
            JOIN mapping_keys m ON m.tenant = a.tenant AND m.mapping_id = a.mapping_id
            JOIN object_keys u ON u.tenant = a.tenant AND u.kind = 'endUser'
                AND u.external_id = a.end_user_id
            JOIN object_keys c ON c.tenant = a.tenant AND c.kind = 'company'
                AND c.external_id = a.company_id
            JOIN label_keys l ON l.tenant = a.tenant AND l.label = a.label;",
    )?;
    let mut rows = GroupWriter::new(Table::Values);
    {
        let mut st = tx.prepare(
            "SELECT metric, day, object, value, mapping, generation FROM legacy_values
             ORDER BY metric, day, object",
        )?;
        let mut r = st.query([])?;
        while let Some(r) = r.next()? {
            let e = ValueEntry {
                object: r.get(2)?,
                value: r.get(3)?,
                mapping: r.get(4)?,
                generation: r.get(5)?,
            };
            rows.push(tx, r.get(0)?, r.get(1)?, e)?;
        }
    }
    rows.flush(tx)?;
    let mut rows = GroupWriter::new(Table::Activity);
    {
        let mut st = tx.prepare(
            "SELECT mapping, day, end_user, company, label, passive, events, minutes, generation
             FROM legacy_activity ORDER BY mapping, day, end_user",
        )?;
        let mut r = st.query([])?;
        while let Some(r) = r.next()? {
            let mapping: i64 = r.get(0)?;
            let e = ActivityEntry {
                end_user: r.get(2)?,
                company: r.get(3)?,
                label: r.get(4)?,
                passive: r.get(5)?,
                events: r.get(6)?,
                minutes: r.get(7)?,
                mapping,
                generation: r.get(8)?,
            };
            rows.push(tx, mapping, r.get(1)?, e)?;
        }
    }
    rows.flush(tx)?;
    tx.execute_batch(DROPS)?;
    tx.execute_batch(VIEWS)?;
    Ok(())
}

/// Version 7: block rows keyed by generation. Rows of versions 5 and 6 are copied as they are
/// (a row of one generation) or split by generation (a row that mixed them); the views over
/// the tables are made again; `integrations.published` is added, empty (= `generation`).
fn to_version_7(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    run_status::add_column(tx, "integrations", "published", "INTEGER")?;
    let keyed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('metric_blocks')
            WHERE name = 'generation' AND pk > 0)",
        [],
        |r| r.get(0),
    )?;
    if keyed {
        return Ok(());
    }
    tx.execute_batch(
        "DROP VIEW IF EXISTS metric_values;
         DROP VIEW IF EXISTS activities;
         ALTER TABLE metric_blocks RENAME TO metric_blocks_v6;
         ALTER TABLE activity_blocks RENAME TO activity_blocks_v6;",
    )?;
    tx.execute_batch(include_str!("blocks.sql"))?;
    tx.execute_batch(
        "INSERT INTO metric_blocks (metric, generation, day, first, n, mapping, points)
            SELECT metric, generation, day, first, n, mapping, points FROM metric_blocks_v6
            WHERE generation IS NOT NULL;
         INSERT INTO activity_blocks (mapping, generation, day, first, n, points)
            SELECT mapping, generation, day, first, n, points FROM activity_blocks_v6
            WHERE generation IS NOT NULL;",
    )?;
    let mut values = GroupWriter::new(Table::Values);
    let mut activity = GroupWriter::new(Table::Activity);
    {
        let mut st = tx.prepare(
            "SELECT 0, metric, day, points FROM metric_blocks_v6 WHERE generation IS NULL
             UNION ALL
             SELECT 1, mapping, day, points FROM activity_blocks_v6 WHERE generation IS NULL
             ORDER BY 1, 2, 3",
        )?;
        let mut r = st.query([])?;
        while let Some(r) = r.next()? {
            let (table, group, day, points): (i64, i64, i64, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            // Each record carries its generation: the writer puts it in that generation's rows.
            let any = Group::new(group, 0);
            if table == 0 {
                for e in blocks::parse::<ValueEntry>(Table::Values, any, &points)? {
                    values.push(tx, group, day, e)?;
                }
            } else {
                for e in blocks::parse::<ActivityEntry>(Table::Activity, any, &points)? {
                    activity.push(tx, group, day, e)?;
                }
            }
        }
    }
    values.flush(tx)?;
    activity.flush(tx)?;
    tx.execute_batch(
        "DROP TABLE metric_blocks_v6;
         DROP TABLE activity_blocks_v6;",
    )?;
    tx.execute_batch(VIEWS)?;
    Ok(())
}

/// The old tables go.
const DROPS: &str = "
    DROP VIEW legacy_values;
    DROP VIEW legacy_activity;
    DROP TABLE series_values;
    DROP TABLE series;
    DROP TABLE activity_records;
";

/// `metric_values` and `activities`, views of the block rows.
const VIEWS: &str = "
    CREATE VIEW metric_values AS
        SELECT k.tenant, k.kind AS object_kind, o.external_id AS object_id, k.metric, k.app,
            date(b.day + 1721424.5) AS day, p.value ->> 1 AS value, m.mapping_id,
            p.value ->> 3 AS generation
        FROM metric_blocks b, json_each(b.points) p
        JOIN metric_keys k ON k.id = b.metric
        JOIN object_keys o ON o.id = p.value ->> 0
        JOIN mapping_keys m ON m.id = p.value ->> 2;
    CREATE VIEW activities AS
        SELECT m.tenant, u.external_id AS end_user_id, m.mapping_id,
            date(b.day + 1721424.5) AS day, c.external_id AS company_id, l.label,
            p.value ->> 4 AS events, p.value ->> 5 AS minutes, p.value ->> 3 AS passive,
            p.value ->> 6 AS generation
        FROM activity_blocks b, json_each(b.points) p
        JOIN mapping_keys m ON m.id = b.mapping
        JOIN object_keys u ON u.id = p.value ->> 0
        JOIN object_keys c ON c.id = p.value ->> 1
        JOIN label_keys l ON l.id = p.value ->> 2;
";

#[cfg(test)]
mod tests {
    /// A file written before schema version 1 (values keyed by text in `metric_values`) opens
    /// with its values, activity and mappings as they were, in the new layout.
    #[tokio::test]
    async fn a_file_of_schema_version_0_is_migrated() {
        use crate::domain::{ExportRow, Integration, MappingId, ObjectRef, Target, TenantId};
        use crate::store::{prelude::*, MetricInfo, SeriesPoint};
        use chrono::NaiveDate;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pendo-sync.sqlite");
        let t = TenantId::parse("t1").unwrap();
        let mut integration = Integration::new(t.clone());
        integration.generation = 2;
        integration.version = 1;
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(include_str!("testdata/schema_v0.sql"))
                .unwrap();
            c.execute(
                "INSERT INTO integrations (tenant, version, generation, body) VALUES ('t1', 1, 2, ?1)",
                [serde_json::to_string(&integration).unwrap()],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO metric_values VALUES
                    ('t1', 'company', 'acme', 'Clicks', '', '2024-02-28', 3.0, 'm1', 2),
                    ('t1', 'company', 'acme', 'Clicks', '', '2024-02-29', 4.5, 'm1', 2),
                    ('t1', 'company', 'acme', 'Clicks', '-323', '2024-02-29', 1.0, 'm2', 2),
                    ('t1', 'company', 'acme', 'Minutes', '', '2024-03-01', 7.0, 'm1', 2),
                    ('t1', 'company', 'acme', 'Stale', '', '2024-03-01', 9.0, 'm1', 1),
                    ('t1', 'endUser', 'u1', 'Clicks', '', '2023-12-31', 2.0, 'm2', 2),
                    ('t2', 'company', 'acme', 'Clicks', '', '2024-02-28', 5.0, 'm1', 1);
                 INSERT INTO activities VALUES
                    ('t1', 'u1', 'm1', '2024-02-29', 'acme', 'Page', 6.0, 2.5, 0, 2);",
            )
            .unwrap();
        }
        let s = super::super::EmbeddedStore::open(&path).unwrap();
        let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
        let row = |kind: &str, id: &str, metric: &str, app: &str, day, value| ExportRow {
            tenant: "t1".into(),
            record: "value".into(),
            object_type: kind.into(),
            object_id: id.into(),
            metric: metric.into(),
            app: app.into(),
            day,
            value,
        };
        let activity = ExportRow {
            tenant: "t1".into(),
            record: "activity".into(),
            object_type: "endUser".into(),
            object_id: "u1".into(),
            metric: "m1".into(),
            app: String::new(),
            day: d(2, 29),
            value: 6.0,
        };
        let expected = vec![
            activity.clone(),
            row("company", "acme", "Clicks", "", d(2, 28), 3.0),
            row("company", "acme", "Clicks", "", d(2, 29), 4.5),
            row("company", "acme", "Clicks", "-323", d(2, 29), 1.0),
            row("company", "acme", "Minutes", "", d(3, 1), 7.0),
            row(
                "endUser",
                "u1",
                "Clicks",
                "",
                NaiveDate::from_ymd_opt(2023, 12, 31).unwrap(),
                2.0,
            ),
        ];
        assert_eq!(s.export(None).await.unwrap(), expected);
        let acme = ObjectRef {
            kind: Target::Company,
            id: "acme".into(),
        };
        let point = |day, app: &str, value| SeriesPoint {
            day,
            app: app.into(),
            value,
        };
        assert_eq!(
            s.read_series(&t, &acme, "Clicks", d(2, 1), d(3, 31))
                .await
                .unwrap(),
            vec![
                point(d(2, 28), "", 3.0),
                point(d(2, 29), "", 4.5),
                point(d(2, 29), "-323", 1.0)
            ]
        );
        let info = |metric: &str, app: &str| MetricInfo {
            metric: metric.into(),
            app: app.into(),
        };
        assert_eq!(
            s.list_metrics(&t, &acme).await.unwrap(),
            vec![
                info("Clicks", ""),
                info("Clicks", "-323"),
                info("Minutes", "")
            ]
        );
        // The migrated values still belong to their mapping: replacing m1's 2024-02-29 leaves
        // its other days and m2's value of that day.
        let m1 = MappingId::parse("m1").unwrap();
        let window = crate::domain::Window {
            from: d(2, 29),
            to: d(2, 29),
        };
        s.replace_chunk(&t, 2, &m1, window, &[], &[]).await.unwrap();
        let mut expected: Vec<ExportRow> = expected
            .into_iter()
            .filter(|r| !(r.metric == "Clicks" && r.day == d(2, 29) && r.app.is_empty()))
            .filter(|r| r.record != "activity")
            .collect();
        assert_eq!(s.export(None).await.unwrap(), expected);
        // The stale generation is still stored, and purged as before.
        assert_eq!(
            s.purge_generations(&t, &crate::domain::Generations::single(2))
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.delete_mapping_data(&t, &m1, &[]).await.unwrap(), 2);
        expected.retain(|r| r.metric != "Minutes" && r.day != d(2, 28));
        assert_eq!(s.export(None).await.unwrap(), expected);
        drop(s);
        let c = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::SCHEMA_VERSION);
        // A file keeps its page size (schema.sql's applies to new files).
        let page_size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(page_size, 4096);
        let old: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'
                    AND name IN ('metric_values', 'activities')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0);
        // The view of version 0's table shows the rows still stored, as they were written.
        let mut st = c
            .prepare(
                "SELECT tenant, object_kind, object_id, metric, app, day, value, mapping_id, generation
                 FROM metric_values ORDER BY tenant, object_id, metric, app, day",
            )
            .unwrap();
        let rows: Vec<String> = st
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {} {} [{}] {} {} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, f64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            rows,
            [
                "t1 company acme Clicks [-323] 2024-02-29 1 m2 2",
                "t1 endUser u1 Clicks [] 2023-12-31 2 m2 2",
                "t2 company acme Clicks [] 2024-02-28 5 m1 1",
            ]
        );
        drop(st);
        // t2's value (its integration is gone) was kept too, as before the migration.
        let t2: i64 = c
            .query_row(
                "SELECT sum(b.n) FROM metric_blocks b JOIN metric_keys k ON k.id = b.metric WHERE k.tenant = 't2'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(t2, 1);
        drop(c);
        // Opening it again does not migrate twice.
        let s = super::super::EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.export(None).await.unwrap(), expected);
    }

    /// A file of schema version 6 (block rows keyed without their generation, a row mixing
    /// two generations) opens with its rows keyed by generation: the shown generation reads as
    /// before, and the other is purged by generation.
    #[tokio::test]
    async fn a_file_of_schema_version_6_is_keyed_by_generation() {
        use crate::domain::{Integration, TenantId};
        use crate::store::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pendo-sync.sqlite");
        let t = TenantId::parse("t1").unwrap();
        let mut integration = Integration::new(t.clone());
        integration.generation = 2;
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(include_str!("schema.sql")).unwrap();
            c.execute_batch(
                "CREATE TABLE metric_blocks (metric INTEGER NOT NULL, day INTEGER NOT NULL,
                    first INTEGER NOT NULL, n INTEGER NOT NULL, mapping INTEGER,
                    generation INTEGER, points TEXT NOT NULL,
                    PRIMARY KEY (metric, day, first)) WITHOUT ROWID;
                 CREATE TABLE activity_blocks (mapping INTEGER NOT NULL, day INTEGER NOT NULL,
                    first INTEGER NOT NULL, n INTEGER NOT NULL, generation INTEGER,
                    points TEXT NOT NULL, PRIMARY KEY (mapping, day, first)) WITHOUT ROWID;
                 INSERT INTO object_keys (id, tenant, kind, external_id) VALUES
                    (1, 't1', 'company', 'acme'), (2, 't1', 'company', 'beta'),
                    (3, 't1', 'endUser', 'u1');
                 INSERT INTO metric_keys (id, tenant, kind, metric, app)
                    VALUES (1, 't1', 'company', 'Clicks', '');
                 INSERT INTO mapping_keys (id, tenant, mapping_id) VALUES (1, 't1', 'm1');
                 INSERT INTO label_keys (id, tenant, label) VALUES (1, 't1', 'Clicks');
                 -- 738000 and 738001: two days; the first row mixes generations 1 and 2.
                 INSERT INTO metric_blocks VALUES
                    (1, 738000, 1, 2, 1, NULL, '[[1,5.0,1,1],[2,6.0,1,2]]'),
                    (1, 738001, 1, 1, 1, 2, '[[1,7.0,1,2]]');
                 INSERT INTO activity_blocks VALUES
                    (1, 738000, 3, 1, 1, '[[3,1,1,0,4.0,1.5,1]]'),
                    (1, 738001, 3, 1, NULL, '[[3,1,1,0,8.0,0.5,2]]');
                 PRAGMA user_version = 6;",
            )
            .unwrap();
            let body = serde_json::to_string(&integration).unwrap();
            c.execute(
                "INSERT INTO integrations (tenant, version, generation, body) VALUES ('t1', 1, 2, ?1)",
                [body],
            )
            .unwrap();
        }
        let s = super::super::EmbeddedStore::open(&path).unwrap();
        let shown: Vec<(String, String, f64)> = s
            .export(Some(&t))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.object_id, r.day.to_string(), r.value))
            .collect();
        assert_eq!(
            shown,
            [
                ("u1".to_string(), "2021-07-30".to_string(), 8.0),
                ("acme".to_string(), "2021-07-30".to_string(), 7.0),
                ("beta".to_string(), "2021-07-29".to_string(), 6.0),
            ]
        );
        assert_eq!(
            s.purge_generations(&t, &crate::domain::Generations::single(2))
                .await
                .unwrap(),
            2
        );
        assert_eq!(s.export(Some(&t)).await.unwrap().len(), 3);
        drop(s);
        let c = rusqlite::Connection::open(&path).unwrap();
        let keyed: Vec<(i64, i64, i64)> = c
            .prepare("SELECT generation, day, n FROM metric_blocks ORDER BY generation, day")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(keyed, [(2, 738000, 1), (2, 738001, 1)]);
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::SCHEMA_VERSION);
    }
}
