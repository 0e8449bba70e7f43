-- The layout of schema version 0 (before `series`), to test the migration of such a file.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = OFF;

CREATE TABLE IF NOT EXISTS integrations (
    tenant TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mappings (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS mapping_state (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    last_synced_day TEXT,
    last_run TEXT,
    last_error TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS runs (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS objects (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT,
    company_id TEXT,
    PRIMARY KEY (tenant, kind, external_id)
);
CREATE TABLE IF NOT EXISTS end_users (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    company_id TEXT NOT NULL,
    external_id TEXT,
    email TEXT,
    name TEXT,
    surname TEXT,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, company_id, external_id),
    UNIQUE (tenant, company_id, email)
);
CREATE TABLE IF NOT EXISTS metric_values (
    tenant TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    app TEXT NOT NULL,
    day TEXT NOT NULL,
    value REAL NOT NULL,
    mapping_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (tenant, object_kind, object_id, metric, app, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_values_by_mapping ON metric_values (tenant, mapping_id, day);
CREATE TABLE IF NOT EXISTS activities (
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
    PRIMARY KEY (tenant, end_user_id, mapping_id, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activities_by_mapping ON activities (tenant, mapping_id, day);
CREATE INDEX IF NOT EXISTS activities_by_company ON activities (tenant, company_id, day);
