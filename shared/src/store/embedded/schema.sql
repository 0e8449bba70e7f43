-- 8 KiB pages for a new file (an existing one keeps its own): measured ~15% faster chunk writes
-- than 4 KiB. The page cache is SQLite's default 2 MiB whatever the page size.
PRAGMA page_size = 8192;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = OFF;

CREATE TABLE IF NOT EXISTS integrations (
    tenant TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    -- The generation runs write, and the one reads show (NULL: the same).
    generation INTEGER NOT NULL,
    body TEXT NOT NULL,
    published INTEGER
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
    -- The latest run planned with the mapping, and the latest in which all its chunks were
    -- done (schema version 4; `last_run` was the last run that moved the cursor before).
    last_run TEXT,
    last_error TEXT,
    last_ok_run TEXT,
    -- The first day of the synced range (schema version 6).
    synced_from TEXT,
    -- The synced range of the generation reads show while a Re-sync all builds this state's
    -- (JSON of `SyncedRange`; schema version 8).
    previous TEXT,
    PRIMARY KEY (tenant, id)
);
-- Runs (schema version 3; earlier versions kept a run and all its chunks as one JSON `body` in
-- `runs`, rewritten whole for every chunk's outcome). A header with the counters the workers'
-- decisions read, a row per chunk and a row per (run, mapping): recording a chunk's outcome
-- reads and writes three small rows whatever the run's size.
CREATE TABLE IF NOT EXISTS run_headers (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    -- The run without its chunks (JSON of `SyncRun`).
    body TEXT NOT NULL,
    total INTEGER NOT NULL,
    open INTEGER NOT NULL,
    creators_open INTEGER NOT NULL,
    deferred INTEGER NOT NULL,
    -- JSON of `Release`.
    release TEXT NOT NULL,
    queued INTEGER NOT NULL,
    -- Until when a delivery of a Re-sync all's message holds its planning (RFC 3339).
    planning_until TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS run_headers_by_start ON run_headers (tenant, started_at, id);
CREATE TABLE IF NOT EXISTS run_chunks (
    tenant TEXT NOT NULL,
    run TEXT NOT NULL,
    idx INTEGER NOT NULL,
    -- JSON of `ChunkRecord`.
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, run, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_mappings (
    tenant TEXT NOT NULL,
    run TEXT NOT NULL,
    mapping TEXT NOT NULL,
    open INTEGER NOT NULL,
    not_done INTEGER NOT NULL,
    end_day TEXT,
    -- What planning read from Pendo for the mapping (`SyncRun::sources`), JSON.
    source TEXT,
    -- The mapping's status in the run (schema version 4; `MappingRunCounters`): its chunks,
    -- those that failed, the sums of its chunks' stats (JSON of `ChunkStats`), the error of
    -- the last that failed and when an outcome was last recorded (RFC 3339).
    chunks INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    stats TEXT,
    error TEXT,
    last_at TEXT,
    PRIMARY KEY (tenant, run, mapping)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT,
    company_id TEXT,
    PRIMARY KEY (tenant, kind, external_id)
);
-- A tenant's directory stamp: bumped in the transaction of every write that changes its
-- objects or end users (`Store::directory_stamp`). No row = 0.
CREATE TABLE IF NOT EXISTS directory_stamps (
    tenant TEXT PRIMARY KEY,
    stamp INTEGER NOT NULL
) WITHOUT ROWID;
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
-- Integer keys (schema version 5): the point tables below refer to objects, metrics, labels and
-- mappings by these, so a value or an activity record is a few small integers. A key row is
-- never changed or deleted (the store caches them in memory, `keys.rs`).
CREATE TABLE IF NOT EXISTS object_keys (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    UNIQUE (tenant, kind, external_id)
);
-- A metric of an object kind, for one app ('' without multi-app).
CREATE TABLE IF NOT EXISTS metric_keys (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    metric TEXT NOT NULL,
    app TEXT NOT NULL,
    UNIQUE (tenant, kind, metric, app)
);
CREATE TABLE IF NOT EXISTS label_keys (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    label TEXT NOT NULL,
    UNIQUE (tenant, label)
);
-- A tenant's mapping as an integer, for the values and activity it wrote.
CREATE TABLE IF NOT EXISTS mapping_keys (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    mapping_id TEXT NOT NULL,
    UNIQUE (tenant, mapping_id)
);
-- The metrics a mapping ever wrote: its replace and delete clear those metrics' rows.
CREATE TABLE IF NOT EXISTS mapping_metrics (
    mapping INTEGER NOT NULL,
    metric INTEGER NOT NULL,
    PRIMARY KEY (mapping, metric)
) WITHOUT ROWID;
-- Metric values and activity records: `blocks.sql`.
-- Directory imports from Pendo (`DirectoryImport` as JSON), written with a version.
CREATE TABLE IF NOT EXISTS imports (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS imports_by_start ON imports (tenant, started_at);
-- The local runner's queue (queue/embedded.rs): messages with SQS's states. `visible_at` is
-- when the message may be received (ms since the Unix epoch): the send time, then after each
-- receive the end of its visibility timeout, or of its retry delay once it is returned. A
-- message with `dead_at` set is a dead letter. A delete or a return names the receive it
-- answers (`receive_count`), so an answer to an older receive changes nothing.
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    dead_at INTEGER
);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (visible_at, id)
    WHERE dead_at IS NULL;
-- What a mapping's chunks could not use (`UnmatchedEntry`): per generation, day, reason and Pendo
-- identity ('' for the identities past the bound, summed). `day` is a day number as in
-- `metric_blocks`.
CREATE TABLE IF NOT EXISTS unmatched (
    tenant TEXT NOT NULL,
    mapping TEXT NOT NULL,
    generation INTEGER NOT NULL,
    day INTEGER NOT NULL,
    reason TEXT NOT NULL,
    identity TEXT NOT NULL,
    rows INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (tenant, mapping, generation, day, reason, identity)
) WITHOUT ROWID;

-- Pendo subscriptions' request budgets (domain/budget.rs), by an opaque subscription id: a JSON
-- body written with a compare-and-set on its version (store/embedded/budget.rs).
CREATE TABLE IF NOT EXISTS pendo_budgets (
    subscription TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
