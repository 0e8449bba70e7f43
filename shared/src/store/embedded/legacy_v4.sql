-- The value and activity tables of schema versions 1 to 4, created only while a file of an
-- earlier version is migrated (`migrate.rs`): the steps from versions 0-2 fill them, then they
-- are converted to version 5's tables and dropped.
-- A metric value series: one object's metric for one app. Values refer to it by its integer id,
-- so each value's keys are a few bytes instead of the text of its tenant, object, metric and app.
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    app TEXT NOT NULL,
    UNIQUE (tenant, object_kind, object_id, metric, app)
);
-- Metric values (schema version 1; version 0 kept them in `metric_values`, keyed by text).
-- `day` is the day number of the common era (chrono's `num_days_from_ce`) and `bucket` is
-- `day >> 3`: the table is clustered by 8-day bucket, then series, so the write of a chunk (a
-- window of days) touches a few small regions of it instead of a page of every series.
CREATE TABLE IF NOT EXISTS series_values (
    bucket INTEGER NOT NULL,
    series INTEGER NOT NULL,
    day INTEGER NOT NULL,
    value REAL NOT NULL,
    mapping INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (bucket, series, day)
) WITHOUT ROWID;
-- What a mapping wrote on which days: the replace, delete and purge paths.
CREATE INDEX IF NOT EXISTS series_values_by_mapping ON series_values (mapping, day);
-- Activity records (schema version 2; earlier versions kept them in `activities`, keyed by end
-- user first). Keyed by mapping and day first, so the write of a chunk (one mapping's window of
-- days) goes into a few regions of the table instead of a page of every end user; the indexes
-- serve an end user's and a company's activity.
CREATE TABLE IF NOT EXISTS activity_records (
    tenant TEXT NOT NULL,
    end_user_id TEXT NOT NULL,
    mapping_id TEXT NOT NULL,
    day TEXT NOT NULL,
    company_id TEXT NOT NULL,
    label TEXT NOT NULL,
    events REAL NOT NULL,
    minutes REAL NOT NULL,
    passive INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (tenant, mapping_id, day, end_user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activity_records_by_user ON activity_records (tenant, end_user_id, day);
CREATE INDEX IF NOT EXISTS activity_records_by_company ON activity_records (tenant, company_id, day);
