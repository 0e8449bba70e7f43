//! Directory, metric values and activity on SQLite. Values and activity carry the generation
//! they were written for; reads only see the integration's current generation.

use super::{corrupt, parse_day, write_tx, StoreError};
use crate::domain::{
    Activity, DirectoryObject, EndUser, EndUserInput, ExportRow, MappingId, MetricValue, ObjectRef,
    Target, TenantId,
};
use crate::store::{
    merged_user, new_end_user, ActivityOf, ChunkRecords, EmailTaken, MetricInfo, SeriesPoint,
};
use crate::sync::plan::Window;
use chrono::{Datelike, NaiveDate};
use rusqlite::{params, Connection, OptionalExtension, Row};

const CURRENT_GEN: &str = "(SELECT generation FROM integrations WHERE tenant = ?1)";

/// `YYYY-MM-DD` (what `%Y-%m-%d` gives), without the formatting machinery for the usual years:
/// it runs once per value written.
fn day(d: NaiveDate) -> String {
    let y = d.year();
    if !(0..=9999).contains(&y) {
        return d.format("%Y-%m-%d").to_string();
    }
    let mut s = String::with_capacity(10);
    for n in [
        (y / 1000) as u32,
        (y / 100 % 10) as u32,
        (y / 10 % 10) as u32,
        (y % 10) as u32,
    ] {
        s.push(char::from(b'0' + n as u8));
    }
    for part in [d.month(), d.day()] {
        s.push('-');
        s.push(char::from(b'0' + (part / 10) as u8));
        s.push(char::from(b'0' + (part % 10) as u8));
    }
    s
}

/// Marks the tenant's directory as changed (in the caller's write transaction).
fn bump_directory_stamp(c: &Connection, t: &TenantId) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO directory_stamps (tenant, stamp) VALUES (?1, 1)
         ON CONFLICT(tenant) DO UPDATE SET stamp = stamp + 1",
    )?
    .execute([t.as_str()])?;
    Ok(())
}

pub(super) fn directory_stamp(c: &Connection, t: &TenantId) -> Result<u64, StoreError> {
    let stamp: Option<i64> = c
        .prepare_cached("SELECT stamp FROM directory_stamps WHERE tenant = ?1")?
        .query_row([t.as_str()], |r| r.get(0))
        .optional()?;
    Ok(stamp.unwrap_or(0) as u64)
}

pub(super) fn upsert_objects(
    c: &mut Connection,
    t: &TenantId,
    kind: Target,
    objects: &[DirectoryObject],
) -> Result<(), StoreError> {
    let tx = write_tx(c)?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO objects (tenant, kind, external_id, name, company_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(tenant, kind, external_id) DO UPDATE SET name=excluded.name, company_id=excluded.company_id",
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
}

pub(super) fn list_objects(
    c: &mut Connection,
    t: &TenantId,
    kind: Target,
) -> Result<Vec<DirectoryObject>, StoreError> {
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

pub(super) fn list_end_users(c: &mut Connection, t: &TenantId) -> Result<Vec<EndUser>, StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM end_users WHERE tenant=?1 ORDER BY id"
    ))?;
    let rows = st.query_map([t.as_str()], end_user)?;
    rows.map(|r| r.map_err(StoreError::from)).collect()
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

pub(super) fn create_end_user_if_absent(
    c: &mut Connection,
    t: &TenantId,
    u: &EndUserInput,
) -> Result<(EndUser, bool), StoreError> {
    let tx = write_tx(c)?;
    if let Some(found) = find_user(&tx, t, u)? {
        return Ok((found, false));
    }
    let user = new_end_user(u);
    insert_user(&tx, t, &user)?;
    bump_directory_stamp(&tx, t)?;
    tx.commit()?;
    Ok((user, true))
}

pub(super) fn upsert_end_user(
    c: &mut Connection,
    t: &TenantId,
    u: &EndUserInput,
) -> Result<EndUser, StoreError> {
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
}

pub(super) fn fill_end_user(
    c: &mut Connection,
    t: &TenantId,
    id: &str,
    email: Option<&str>,
    name: Option<&str>,
    surname: Option<&str>,
) -> Result<(), StoreError> {
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
}

/// The integer a day is stored as: its day number of the common era.
fn day_num(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

/// Values are clustered by 8-day bucket, then series, then day: a chunk (a window of a few days)
/// then writes into one or two small regions of the table, whatever the number of series, while
/// one series' days in a bucket stay together for reads.
fn bucket(day_num: i64) -> i64 {
    day_num >> BUCKET_BITS
}

const BUCKET_BITS: u32 = 3;

/// The buckets from `?from` to `?to` (bucket numbers), kept within those the table holds: reads
/// of a series seek once per bucket (`bucket = b.x AND series = ?`), as the table is keyed by
/// bucket first.
fn buckets_cte(from: &str, to: &str) -> String {
    format!(
        "WITH RECURSIVE b(x) AS (
            SELECT max({from}, (SELECT min(bucket) FROM series_values))
            UNION ALL
            SELECT x + 1 FROM b WHERE x < min({to}, (SELECT max(bucket) FROM series_values))
        )"
    )
}

fn num_day(n: i64) -> Result<NaiveDate, StoreError> {
    i32::try_from(n)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| StoreError::Corrupt(format!("day number {n} is out of range")))
}

/// The integer key of a tenant's mapping, if it ever wrote values.
fn mapping_key(c: &Connection, t: &TenantId, m: &MappingId) -> Result<Option<i64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT id FROM mapping_keys WHERE tenant=?1 AND mapping_id=?2")?
            .query_row(params![t.as_str(), m.as_str()], |r| r.get(0))
            .optional()?,
    )
}

fn ensure_mapping_key(c: &Connection, t: &TenantId, m: &MappingId) -> Result<i64, StoreError> {
    if let Some(k) = mapping_key(c, t, m)? {
        return Ok(k);
    }
    c.prepare_cached("INSERT INTO mapping_keys (tenant, mapping_id) VALUES (?1, ?2)")?
        .execute(params![t.as_str(), m.as_str()])?;
    Ok(c.last_insert_rowid())
}

/// Series ids of one write transaction: a chunk writes many values of each series, so each is
/// looked up (or created) once. Keyed by kind, object id, metric and app joined with NULs.
struct SeriesIds<'c> {
    tenant: &'c str,
    ids: rustc_hash::FxHashMap<String, i64>,
    key: String,
    find: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
    last_id: &'c Connection,
}

impl<'c> SeriesIds<'c> {
    fn new(c: &'c Connection, t: &'c TenantId) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: t.as_str(),
            ids: Default::default(),
            key: String::new(),
            find: c.prepare_cached(
                "SELECT id FROM series WHERE tenant=?1 AND object_kind=?2 AND object_id=?3 AND metric=?4 AND app=?5",
            )?,
            insert: c.prepare_cached(
                "INSERT INTO series (tenant, object_kind, object_id, metric, app) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            last_id: c,
        })
    }

    fn id(&mut self, v: &MetricValue) -> Result<i64, StoreError> {
        let kind = v.object.kind.as_str();
        self.key.clear();
        for part in [kind, &v.object.id, &v.metric, &v.app] {
            self.key.push_str(part);
            self.key.push('\0');
        }
        if let Some(&id) = self.ids.get(self.key.as_str()) {
            return Ok(id);
        }
        let p = params![self.tenant, kind, v.object.id, v.metric, v.app];
        let id = match self.find.query_row(p, |r| r.get(0)).optional()? {
            Some(id) => id,
            None => {
                self.insert.execute(p)?;
                self.last_id.last_insert_rowid()
            }
        };
        self.ids.insert(self.key.clone(), id);
        Ok(id)
    }
}

/// Rows per multi-row `INSERT`: one statement (bind, step, reset) per this many values.
pub(super) const BATCH_ROWS: usize = 128;

/// A row of a multi-row `INSERT OR REPLACE` ([`Batch`]).
trait BatchRow {
    /// `INSERT OR REPLACE INTO table (columns) VALUES `.
    const HEAD: &'static str;
    /// One row's values: `#` for each of the row's own parameters, `?1`, `?2`… for the
    /// parameters every row of the chunk shares.
    const TUPLE: &'static str;
    /// The order rows are inserted in within a batch (the table's key order).
    fn key_cmp(&self, other: &Self) -> std::cmp::Ordering;
    /// Binds the row's own parameters, numbered from `first`.
    fn bind(&self, st: &mut rusqlite::Statement<'_>, first: usize) -> Result<(), StoreError>;
}

/// The SQL of `n` rows of `R`, after `shared` parameters.
fn multi_row_sql<R: BatchRow>(shared: usize, n: usize) -> String {
    let own = R::TUPLE.matches('#').count();
    let mut sql = String::from(R::HEAD);
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        let mut p = shared + 1 + own * i;
        for (j, part) in R::TUPLE.split('#').enumerate() {
            if j > 0 {
                sql.push_str(&format!("?{p}"));
                p += 1;
            }
            sql.push_str(part);
        }
    }
    sql
}

/// The rows of a chunk, inserted [`BATCH_ROWS`] at a time in key order within a batch.
struct Batch<'c, R> {
    rows: Vec<R>,
    shared: Vec<rusqlite::types::Value>,
    own: usize,
    many: rusqlite::CachedStatement<'c>,
    one: rusqlite::CachedStatement<'c>,
}

impl<'c, R: BatchRow> Batch<'c, R> {
    fn new(c: &'c Connection, shared: Vec<rusqlite::types::Value>) -> Result<Self, StoreError> {
        Ok(Self {
            rows: Vec::with_capacity(BATCH_ROWS),
            own: R::TUPLE.matches('#').count(),
            many: c.prepare_cached(&multi_row_sql::<R>(shared.len(), BATCH_ROWS))?,
            one: c.prepare_cached(&multi_row_sql::<R>(shared.len(), 1))?,
            shared,
        })
    }

    fn push(&mut self, row: R) -> Result<(), StoreError> {
        self.rows.push(row);
        if self.rows.len() == BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Inserts the rows held. The sort is stable: of two rows with one key, the later still
    /// wins.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.rows.sort_by(R::key_cmp);
        if self.rows.len() == BATCH_ROWS {
            execute(&mut self.many, &self.shared, self.own, &self.rows)?;
        } else {
            for r in &self.rows {
                execute(
                    &mut self.one,
                    &self.shared,
                    self.own,
                    std::slice::from_ref(r),
                )?;
            }
        }
        self.rows.clear();
        Ok(())
    }
}

fn execute<R: BatchRow>(
    st: &mut rusqlite::Statement<'_>,
    shared: &[rusqlite::types::Value],
    own: usize,
    rows: &[R],
) -> Result<(), StoreError> {
    for (i, v) in shared.iter().enumerate() {
        st.raw_bind_parameter(i + 1, v)?;
    }
    for (i, r) in rows.iter().enumerate() {
        r.bind(st, shared.len() + 1 + own * i)?;
    }
    st.raw_execute()?;
    Ok(())
}

/// One value to insert (of the chunk's mapping and generation: `?1`, `?2`).
struct ValueRow {
    bucket: i64,
    series: i64,
    day: i64,
    value: f64,
}

impl BatchRow for ValueRow {
    const HEAD: &'static str =
        "INSERT OR REPLACE INTO series_values (bucket, series, day, value, mapping, generation) VALUES ";
    const TUPLE: &'static str = "(#, #, #, #, ?1, ?2)";
    fn key_cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.bucket, self.series, self.day).cmp(&(other.bucket, other.series, other.day))
    }
    fn bind(&self, st: &mut rusqlite::Statement<'_>, p: usize) -> Result<(), StoreError> {
        st.raw_bind_parameter(p, self.bucket)?;
        st.raw_bind_parameter(p + 1, self.series)?;
        st.raw_bind_parameter(p + 2, self.day)?;
        st.raw_bind_parameter(p + 3, self.value)?;
        Ok(())
    }
}

/// One activity record to insert (of the chunk's tenant, mapping and generation: `?1` to `?3`).
struct NewActivity {
    end_user_id: String,
    day: String,
    company_id: String,
    label: String,
    events: f64,
    minutes: f64,
    passive: bool,
}

impl BatchRow for NewActivity {
    const HEAD: &'static str = "INSERT OR REPLACE INTO activity_records (tenant, end_user_id, mapping_id, day, company_id, label, events, minutes, passive, generation) VALUES ";
    const TUPLE: &'static str = "(?1, #, ?2, #, #, #, #, #, #, ?3)";
    fn key_cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.day, &self.end_user_id).cmp(&(&other.day, &other.end_user_id))
    }
    fn bind(&self, st: &mut rusqlite::Statement<'_>, p: usize) -> Result<(), StoreError> {
        st.raw_bind_parameter(p, self.end_user_id.as_str())?;
        st.raw_bind_parameter(p + 1, self.day.as_str())?;
        st.raw_bind_parameter(p + 2, self.company_id.as_str())?;
        st.raw_bind_parameter(p + 3, self.label.as_str())?;
        st.raw_bind_parameter(p + 4, self.events)?;
        st.raw_bind_parameter(p + 5, self.minutes)?;
        st.raw_bind_parameter(p + 6, self.passive)?;
        Ok(())
    }
}

pub(super) fn replace_chunk(
    c: &mut Connection,
    t: &TenantId,
    generation: u64,
    mapping: &MappingId,
    window: Window,
    records: &dyn ChunkRecords,
) -> Result<(), StoreError> {
    let tx = write_tx(c)?;
    let current: Option<i64> = tx
        .query_row(
            "SELECT generation FROM integrations WHERE tenant=?1",
            [t.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    if current != Some(generation as i64) {
        return Err(StoreError::StaleGeneration(generation));
    }
    let key = ensure_mapping_key(&tx, t, mapping)?;
    tx.prepare_cached("DELETE FROM series_values WHERE mapping=?1 AND day BETWEEN ?2 AND ?3")?
        .execute(params![key, day_num(window.from), day_num(window.to)])?;
    tx.prepare_cached(
        "DELETE FROM activity_records WHERE tenant=?1 AND mapping_id=?2 AND day BETWEEN ?3 AND ?4",
    )?
    .execute(params![
        t.as_str(),
        mapping.as_str(),
        day(window.from),
        day(window.to)
    ])?;
    {
        let mut series = SeriesIds::new(&tx, t)?;
        let mut batch = Batch::<ValueRow>::new(&tx, vec![key.into(), (generation as i64).into()])?;
        records.for_each_value(&mut |v| {
            let d = day_num(v.day);
            batch.push(ValueRow {
                bucket: bucket(d),
                series: series.id(v)?,
                day: d,
                value: v.value,
            })
        })?;
        batch.flush()?;
        let mut batch = Batch::<NewActivity>::new(
            &tx,
            vec![
                t.as_str().to_string().into(),
                mapping.as_str().to_string().into(),
                (generation as i64).into(),
            ],
        )?;
        records.for_each_activity(&mut |a| {
            batch.push(NewActivity {
                end_user_id: a.end_user_id.clone(),
                day: day(a.day),
                company_id: a.company_id.clone(),
                label: a.label.clone(),
                events: a.events,
                minutes: a.minutes,
                passive: a.passive,
            })
        })?;
        batch.flush()?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn purge_below_generation(
    c: &mut Connection,
    t: &TenantId,
    generation: u64,
) -> Result<u64, StoreError> {
    let tx = write_tx(c)?;
    let p = params![t.as_str(), generation as i64];
    let n = tx.execute(
        "DELETE FROM series_values
         WHERE mapping IN (SELECT id FROM mapping_keys WHERE tenant=?1) AND generation < ?2",
        p,
    )? + tx.execute(
        "DELETE FROM activity_records WHERE tenant=?1 AND generation < ?2",
        p,
    )?;
    tx.commit()?;
    Ok(n as u64)
}

/// Deletes the values and activity a mapping wrote; returns how many records went.
pub(super) fn delete_values_of(
    c: &Connection,
    t: &TenantId,
    m: &MappingId,
) -> Result<usize, StoreError> {
    let values = match mapping_key(c, t, m)? {
        Some(key) => c.execute("DELETE FROM series_values WHERE mapping=?1", [key])?,
        None => 0,
    };
    Ok(values
        + c.execute(
            "DELETE FROM activity_records WHERE tenant=?1 AND mapping_id=?2",
            params![t.as_str(), m.as_str()],
        )?)
}

pub(super) fn delete_mapping_data(
    c: &mut Connection,
    t: &TenantId,
    m: &MappingId,
) -> Result<u64, StoreError> {
    let tx = write_tx(c)?;
    let n = delete_values_of(&tx, t, m)?;
    tx.commit()?;
    Ok(n as u64)
}

/// A series' points: the series found by its text key, then one seek per bucket.
fn read_series_sql() -> String {
    format!(
        "{}
         SELECT v.day, s.app, v.value FROM series s, b
         JOIN series_values v ON v.bucket = b.x AND v.series = s.id
         WHERE s.tenant=?1 AND s.object_kind=?2 AND s.object_id=?3 AND s.metric=?4
           AND v.day BETWEEN ?5 AND ?6 AND v.generation = {CURRENT_GEN}
         ORDER BY v.day, s.app",
        buckets_cte("?7", "?8")
    )
}

/// An object's metrics with a value of the current generation.
fn list_metrics_sql() -> String {
    format!(
        "{}
         SELECT s.metric, s.app FROM series s
         WHERE s.tenant=?1 AND s.object_kind=?2 AND s.object_id=?3
           AND EXISTS (SELECT 1 FROM b JOIN series_values v ON v.bucket = b.x AND v.series = s.id
                       WHERE v.generation = {CURRENT_GEN})
         ORDER BY s.metric, s.app",
        buckets_cte(&i64::MIN.to_string(), &i64::MAX.to_string())
    )
}

pub(super) fn read_series(
    c: &mut Connection,
    t: &TenantId,
    o: &ObjectRef,
    metric: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let mut st = c.prepare_cached(&read_series_sql())?;
    let (from, to) = (day_num(from), day_num(to));
    let rows = st.query_map(
        params![
            t.as_str(),
            o.kind.as_str(),
            o.id,
            metric,
            from,
            to,
            bucket(from),
            bucket(to)
        ],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
            ))
        },
    )?;
    rows.map(|r| {
        let (d, app, value) = r?;
        Ok(SeriesPoint {
            day: num_day(d)?,
            app,
            value,
        })
    })
    .collect()
}

pub(super) fn list_metrics(
    c: &mut Connection,
    t: &TenantId,
    o: &ObjectRef,
) -> Result<Vec<MetricInfo>, StoreError> {
    let mut st = c.prepare_cached(&list_metrics_sql())?;
    let rows = st.query_map(params![t.as_str(), o.kind.as_str(), o.id], |r| {
        Ok(MetricInfo {
            metric: r.get(0)?,
            app: r.get(1)?,
        })
    })?;
    rows.map(|r| r.map_err(StoreError::from)).collect()
}

/// An activity row as read: ids and day as text, to be parsed.
type ActivityRow = (String, String, String, String, String, f64, f64, bool);

fn activity(r: &Row<'_>) -> rusqlite::Result<ActivityRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

pub(super) fn recent_activity(
    c: &mut Connection,
    t: &TenantId,
    of: &ActivityOf,
    from: NaiveDate,
    limit: usize,
) -> Result<Vec<Activity>, StoreError> {
    let (col, id) = match of {
        ActivityOf::EndUser(id) => ("end_user_id", id),
        ActivityOf::Company(id) => ("company_id", id),
    };
    let mut st = c.prepare_cached(&format!(
        "SELECT end_user_id, company_id, mapping_id, day, label, events, minutes, passive FROM activity_records
         WHERE tenant=?1 AND {col}=?2 AND day >= ?3 AND generation = {CURRENT_GEN}
         ORDER BY day DESC, end_user_id, mapping_id LIMIT ?4"
    ))?;
    let rows = st.query_map(params![t.as_str(), id, day(from), limit as i64], activity)?;
    rows.map(|r| {
        let (end_user_id, company_id, m, d, label, events, minutes, passive) = r?;
        Ok(Activity {
            end_user_id,
            company_id,
            mapping_id: MappingId::parse(&m).map_err(corrupt)?,
            label,
            day: parse_day(&d)?,
            events,
            minutes,
            passive,
        })
    })
    .collect()
}

pub(super) fn export(
    c: &mut Connection,
    t: Option<&TenantId>,
) -> Result<Vec<ExportRow>, StoreError> {
    let tenant = t.map(|t| t.as_str().to_string());
    let mut out = Vec::new();
    {
        let mut st = c.prepare_cached(
            "SELECT s.tenant, s.object_kind, s.object_id, s.metric, s.app, v.day, v.value
             FROM integrations i JOIN series s ON s.tenant = i.tenant
             JOIN series_values v ON v.series = s.id AND v.generation = i.generation
             WHERE (?1 IS NULL OR i.tenant = ?1)",
        )?;
        let rows = st.query_map(params![tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, f64>(6)?,
            ))
        })?;
        for r in rows {
            let (tenant, kind, id, metric, app, d, value) = r?;
            out.push(ExportRow {
                tenant,
                record: "value".into(),
                object_type: kind,
                object_id: id,
                metric,
                app,
                day: num_day(d)?,
                value,
            });
        }
    }
    {
        let mut st = c.prepare_cached(
            "SELECT a.tenant, a.end_user_id, a.mapping_id, a.day, a.events, a.passive FROM activity_records a
             JOIN integrations i ON i.tenant = a.tenant AND i.generation = a.generation
             WHERE (?1 IS NULL OR a.tenant = ?1)",
        )?;
        let rows = st.query_map(params![tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, f64>(4)?,
                r.get::<_, bool>(5)?,
            ))
        })?;
        for r in rows {
            let (tenant, user, mapping, d, events, passive) = r?;
            out.push(ExportRow {
                tenant,
                record: if passive {
                    "activity:passive".into()
                } else {
                    "activity".into()
                },
                object_type: Target::EndUser.as_str().into(),
                object_id: user,
                metric: mapping,
                app: String::new(),
                day: parse_day(&d)?,
                value: events,
            });
        }
    }
    crate::store::sort_export(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_sql_numbers_each_row_after_the_shared_parameters() {
        assert_eq!(
            multi_row_sql::<ValueRow>(2, 2),
            "INSERT OR REPLACE INTO series_values (bucket, series, day, value, mapping, generation) \
             VALUES (?3, ?4, ?5, ?6, ?1, ?2),(?7, ?8, ?9, ?10, ?1, ?2)"
        );
        assert_eq!(
            multi_row_sql::<NewActivity>(3, 1),
            "INSERT OR REPLACE INTO activity_records (tenant, end_user_id, mapping_id, day, \
             company_id, label, events, minutes, passive, generation) \
             VALUES (?1, ?4, ?2, ?5, ?6, ?7, ?8, ?9, ?10, ?3)"
        );
    }

    /// The reads seek the values of one series by bucket, never scan the table.
    #[test]
    fn reads_seek_by_bucket_and_series() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("schema.sql")).unwrap();
        for sql in [read_series_sql(), list_metrics_sql()] {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; st.parameter_count()];
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(
                plan.iter()
                    .any(|l| l.starts_with("SEARCH v USING PRIMARY KEY (bucket=? AND series=?")),
                "{plan:#?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|l| l.starts_with("SCAN s") || l.starts_with("SCAN v")),
                "{plan:#?}"
            );
        }
    }

    #[test]
    fn day_text_is_the_chrono_format() {
        let mut dates: Vec<NaiveDate> = [
            (1, 1, 1),
            (9, 12, 31),
            (999, 2, 3),
            (1970, 1, 1),
            (2024, 2, 29),
            (2026, 11, 29),
            (9999, 12, 31),
            (10000, 1, 1),
            (-1, 6, 15),
        ]
        .iter()
        .filter_map(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
        .collect();
        dates.push(NaiveDate::from_ymd_opt(0, 1, 1).unwrap());
        let mut d = NaiveDate::from_ymd_opt(2023, 12, 25).unwrap();
        for _ in 0..800 {
            dates.push(d);
            d = d.succ_opt().unwrap();
        }
        assert_eq!(dates.len(), 810);
        for d in dates {
            assert_eq!(day(d), d.format("%Y-%m-%d").to_string(), "{d:?}");
        }
    }
}
