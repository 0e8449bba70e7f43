-- Metric values and activity records, up to 64 to a row (`blocks.rs`): a row holds one group's
-- records of one generation and one day (values: of a metric key; activity: of a mapping key),
-- sorted by their object's key, as a JSON array of arrays in `points`:
--   values   [object, value, mapping, generation]
--   activity [end user, company, label, passive, events, minutes, generation]
-- keyed by (group, generation, day, key of its first record). `day` is the day number of the
-- common era (chrono's `num_days_from_ce`); `n` is the number of records; `mapping` is that of
-- every value of the row, or NULL when they differ. A chunk (a mapping's window of days) deletes
-- and writes one range of rows per group in its generation; the generation reads show
-- (`integrations.published`) is another range, untouched while a Re-sync all builds the next.
CREATE TABLE IF NOT EXISTS metric_blocks (
    metric INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    day INTEGER NOT NULL,
    first INTEGER NOT NULL,
    n INTEGER NOT NULL,
    mapping INTEGER,
    points TEXT NOT NULL,
    PRIMARY KEY (metric, generation, day, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity_blocks (
    mapping INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    day INTEGER NOT NULL,
    first INTEGER NOT NULL,
    n INTEGER NOT NULL,
    points TEXT NOT NULL,
    PRIMARY KEY (mapping, generation, day, first)
) WITHOUT ROWID;
