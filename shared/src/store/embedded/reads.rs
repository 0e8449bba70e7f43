//! Reads of metric values and activity: an object's series and metrics, an end user's or a
//! company's recent activity, and the export. Only the generation each mapping shows
//! (`Generations::shows`) is visible: a Re-sync all's rows, or a mapping's rebuild's, are not
//! until they are published.
//!
//! The tables are keyed for the chunk's write (see `blocks.rs`): rows of values by (metric,
//! day, object), of activity by (mapping, day, end user). A read of one object therefore seeks
//! one row per (metric or mapping, day) within the days that group holds, newest first where it
//! can stop early: a few hundred seeks for a year of a metric. A company's activity is read from
//! every row of its mappings' days (a company's records are spread over its users' keys).

use super::blocks::{self, ActivityEntry, Entry, Group, Table, ValueEntry};
use super::keys::{find, KeyTable};
use super::points::{day_num, num_day};
use super::EmbeddedStore;
use super::StoreError;
use crate::domain::{Activity, ExportRow, MappingId, ObjectRef, Target, TenantId};
use crate::store::ReadStore;
use crate::store::{newest_first, ActivityOf, MetricInfo, SeriesPoint};
use async_trait::async_trait;
use chrono::NaiveDate;
use rusqlite::{params, Connection};

/// What reads of a tenant show: the integration's published generation, except for the
/// mappings (by key) that show one of their own.
struct Shown {
    published: i64,
    own: rustc_hash::FxHashMap<i64, i64>,
    /// Every generation some mapping shows (usually one).
    all: Vec<i64>,
}

impl Shown {
    /// The generation the mapping of key `m` shows.
    fn of(&self, m: i64) -> i64 {
        self.own.get(&m).copied().unwrap_or(self.published)
    }

    /// Whether a record of mapping `m` in generation `g` is shown.
    fn shows(&self, m: i64, g: i64) -> bool {
        self.of(m) == g
    }
}

fn shown(c: &Connection, t: &TenantId) -> Result<Option<Shown>, StoreError> {
    let Some(g) = super::config::generations(c, t)? else {
        return Ok(None);
    };
    let mut own = rustc_hash::FxHashMap::default();
    for m in g.own.keys() {
        if let Some(key) = super::keys::mapping_key(c, t, m)? {
            own.insert(key, g.shows(m) as i64);
        }
    }
    Ok(Some(Shown {
        published: g.published as i64,
        own,
        all: g.shown().into_iter().map(|g| g as i64).collect(),
    }))
}

/// The first and last day stored under a metric key (or a mapping key for activity) in a
/// generation.
fn day_span(c: &Connection, sql: &str, group: Group) -> Result<Option<(i64, i64)>, StoreError> {
    let span: (Option<i64>, Option<i64>) = c
        .prepare_cached(sql)?
        .query_row([group.id, group.generation], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match span {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    })
}

const METRIC_SPAN: &str =
    "SELECT (SELECT day FROM metric_blocks WHERE metric = ?1 AND generation = ?2
            ORDER BY day LIMIT 1),
        (SELECT day FROM metric_blocks WHERE metric = ?1 AND generation = ?2
            ORDER BY day DESC LIMIT 1)";
const ACTIVITY_SPAN: &str =
    "SELECT (SELECT day FROM activity_blocks WHERE mapping = ?1 AND generation = ?2
            ORDER BY day LIMIT 1),
        (SELECT day FROM activity_blocks WHERE mapping = ?1 AND generation = ?2
            ORDER BY day DESC LIMIT 1)";

/// The metric keys of a tenant for an object kind: (key, metric, app), by metric and app.
fn metric_keys(
    c: &Connection,
    t: &TenantId,
    kind: Target,
    metric: Option<&str>,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT id, metric, app FROM metric_keys WHERE tenant=?1 AND kind=?2 AND (?3 IS NULL OR metric=?3)
         ORDER BY metric, app",
    )?;
    let rows = st.query_map(params![t.as_str(), kind.as_str(), metric], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.map(|r| r.map_err(StoreError::from)).collect()
}

fn object_key(c: &Connection, t: &TenantId, o: &ObjectRef) -> Result<Option<i64>, StoreError> {
    find(
        c,
        KeyTable::Object,
        t.as_str(),
        [o.kind.as_str(), o.id.as_str(), ""],
    )
}

/// The text of an object or label key (cached per read).
struct Names<'c> {
    c: &'c Connection,
    known: rustc_hash::FxHashMap<(bool, i64), String>,
}

impl Names<'_> {
    fn get(&mut self, label: bool, id: i64) -> Result<String, StoreError> {
        if let Some(s) = self.known.get(&(label, id)) {
            return Ok(s.clone());
        }
        let sql = if label {
            "SELECT label FROM label_keys WHERE id = ?1"
        } else {
            "SELECT external_id FROM object_keys WHERE id = ?1"
        };
        let s: String = self.c.prepare_cached(sql)?.query_row([id], |r| r.get(0))?;
        self.known.insert((label, id), s.clone());
        Ok(s)
    }
}

#[async_trait]
impl ReadStore for EmbeddedStore {
    async fn read_series(
        &self,
        t: &TenantId,
        o: &ObjectRef,
        metric: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.with(|c| {
            let (Some(object), Some(shown)) = (object_key(c, t, o)?, shown(c, t)?) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for (key, _, app) in metric_keys(c, t, o.kind, Some(metric))? {
                for &generation in &shown.all {
                    let group = Group::new(key, generation);
                    let Some((first, last)) = day_span(c, METRIC_SPAN, group)? else {
                        continue;
                    };
                    for day in day_num(from).max(first)..=day_num(to).min(last) {
                        let point: Option<ValueEntry> =
                            blocks::find(c, Table::Values, group, day, object)?;
                        let shows = |p: &ValueEntry| {
                            p.generation == generation && shown.shows(p.mapping, generation)
                        };
                        if let Some(p) = point.filter(shows) {
                            out.push(SeriesPoint {
                                day: num_day(day)?,
                                app: app.clone(),
                                value: p.value,
                            });
                        }
                    }
                }
            }
            out.sort_by(|a, b| a.day.cmp(&b.day).then_with(|| a.app.cmp(&b.app)));
            Ok(out)
        })
    }

    /// An object's metrics with a value of the current generation: for each metric of the object's
    /// kind, its days are tried newest first until one holds a value of the object.
    async fn list_metrics(
        &self,
        t: &TenantId,
        o: &ObjectRef,
    ) -> Result<Vec<MetricInfo>, StoreError> {
        self.with(|c| {
            let (Some(object), Some(shown)) = (object_key(c, t, o)?, shown(c, t)?) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for (key, metric, app) in metric_keys(c, t, o.kind, None)? {
                if has_value(c, &shown, key, object)? {
                    out.push(MetricInfo { metric, app });
                }
            }
            Ok(out)
        })
    }

    async fn recent_activity(
        &self,
        t: &TenantId,
        of: &ActivityOf,
        from: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        self.with(|c| {
            let (kind, id) = match of {
                ActivityOf::EndUser(id) => (Target::EndUser, id),
                ActivityOf::Company(id) => (Target::Company, id),
            };
            let owner = find(c, KeyTable::Object, t.as_str(), [kind.as_str(), id, ""])?;
            let (Some(owner), Some(shown)) = (owner, shown(c, t)?) else {
                return Ok(Vec::new());
            };
            // The tenant's mappings with activity, and the days each holds.
            let mut mappings: Vec<(i64, MappingId, i64, i64)> = Vec::new();
            {
                let mut st =
                    c.prepare_cached("SELECT id, mapping_id FROM mapping_keys WHERE tenant=?1")?;
                let keys: Vec<(i64, String)> = st
                    .query_map([t.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (key, m) in keys {
                    if let Some((first, last)) =
                        day_span(c, ACTIVITY_SPAN, Group::new(key, shown.of(key)))?
                    {
                        let m = MappingId::parse(&m).map_err(super::corrupt)?;
                        mappings.push((key, m, first, last));
                    }
                }
            }
            let Some(newest) = mappings.iter().map(|m| m.3).max() else {
                return Ok(Vec::new());
            };
            let mut found: Vec<(i64, usize, ActivityEntry)> = Vec::new();
            // Newest day first; a day is read whole, then the read stops once it has `limit` records.
            let mut day = newest;
            while day >= day_num(from) && found.len() < limit {
                for (i, (key, _, first, last)) in mappings.iter().enumerate() {
                    if day < *first || day > *last {
                        continue;
                    }
                    let generation = shown.of(*key);
                    let group = Group::new(*key, generation);
                    let records: Vec<ActivityEntry> = match of {
                        ActivityOf::EndUser(_) => {
                            blocks::find(c, Table::Activity, group, day, owner)?
                                .into_iter()
                                .collect()
                        }
                        ActivityOf::Company(_) => {
                            let mut all: Vec<ActivityEntry> =
                                blocks::load_group(c, Table::Activity, group, day)?;
                            all.retain(|e| e.company == owner);
                            all
                        }
                    };
                    found.extend(
                        records
                            .into_iter()
                            .filter(|e| e.generation == generation)
                            .map(|e| (day, i, e)),
                    );
                }
                if mappings.iter().all(|m| day <= m.2) {
                    break;
                }
                day -= 1;
            }
            let mut names = Names {
                c,
                known: Default::default(),
            };
            let mut out = Vec::with_capacity(found.len());
            for (day, i, e) in found {
                out.push(Activity {
                    end_user_id: names.get(false, e.end_user)?,
                    company_id: names.get(false, e.company)?,
                    mapping_id: mappings[i].1.clone(),
                    label: names.get(true, e.label)?,
                    day: num_day(day)?,
                    events: e.events,
                    minutes: e.minutes,
                    passive: e.passive,
                });
            }
            newest_first(&mut out, limit);
            Ok(out)
        })
    }

    async fn export(&self, t: Option<&TenantId>) -> Result<Vec<ExportRow>, StoreError> {
        self.with(|c| {
            let tenants = match t {
                Some(t) => vec![t.clone()],
                None => {
                    let mut st = c.prepare_cached("SELECT tenant FROM integrations")?;
                    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                    rows.map(|r| TenantId::parse(&r?).map_err(super::corrupt))
                        .collect::<Result<Vec<_>, StoreError>>()?
                }
            };
            let mut names = Names {
                c,
                known: Default::default(),
            };
            let mut out = Vec::new();
            for t in &tenants {
                if let Some(shown) = shown(c, t)? {
                    export_values(c, t, &shown, &mut names, &mut out)?;
                    export_activity(c, t, &shown, &mut names, &mut out)?;
                }
            }
            crate::store::sort_export(&mut out);
            Ok(out)
        })
    }
}

/// Whether the object of key `object` has a shown value under metric key `key`: its days are
/// tried newest first until one holds one.
fn has_value(c: &Connection, shown: &Shown, key: i64, object: i64) -> Result<bool, StoreError> {
    for &generation in &shown.all {
        let group = Group::new(key, generation);
        let Some((first, last)) = day_span(c, METRIC_SPAN, group)? else {
            continue;
        };
        for day in (first..=last).rev() {
            let point: Option<ValueEntry> = blocks::find(c, Table::Values, group, day, object)?;
            if point
                .is_some_and(|p| p.generation == generation && shown.shows(p.mapping, generation))
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The values of tenant `t` that reads show, as export rows.
fn export_values(
    c: &Connection,
    t: &TenantId,
    shown: &Shown,
    names: &mut Names,
    out: &mut Vec<ExportRow>,
) -> Result<(), StoreError> {
    let mut st = c.prepare_cached(
        "SELECT k.kind, k.metric, k.app, b.day, b.points
         FROM metric_keys k JOIN metric_blocks b ON b.metric = k.id AND b.generation = ?2
         WHERE k.tenant = ?1",
    )?;
    for &generation in &shown.all {
        let mut rows = st.query(params![t.as_str(), generation])?;
        while let Some(r) = rows.next()? {
            let (kind, metric, app): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let day = num_day(r.get(3)?)?;
            let points: String = r.get(4)?;
            for e in <ValueEntry as Entry>::parse(&points)? {
                if e.generation != generation || !shown.shows(e.mapping, generation) {
                    continue;
                }
                out.push(ExportRow {
                    tenant: t.as_str().to_string(),
                    record: "value".into(),
                    object_type: kind.clone(),
                    object_id: names.get(false, e.object)?,
                    metric: metric.clone(),
                    app: app.clone(),
                    day,
                    value: e.value,
                });
            }
        }
    }
    Ok(())
}

/// The activity records of tenant `t` that reads show, as export rows.
fn export_activity(
    c: &Connection,
    t: &TenantId,
    shown: &Shown,
    names: &mut Names,
    out: &mut Vec<ExportRow>,
) -> Result<(), StoreError> {
    let mut st = c.prepare_cached(
        "SELECT m.id, m.mapping_id, b.day, b.points
         FROM mapping_keys m JOIN activity_blocks b ON b.mapping = m.id AND b.generation = ?2
         WHERE m.tenant = ?1",
    )?;
    for &generation in &shown.all {
        let mut rows = st.query(params![t.as_str(), generation])?;
        while let Some(r) = rows.next()? {
            let (key, mapping): (i64, String) = (r.get(0)?, r.get(1)?);
            if !shown.shows(key, generation) {
                continue;
            }
            let day = num_day(r.get(2)?)?;
            let points: String = r.get(3)?;
            for e in <ActivityEntry as Entry>::parse(&points)? {
                if e.generation != generation {
                    continue;
                }
                out.push(ExportRow {
                    tenant: t.as_str().to_string(),
                    record: if e.passive {
                        "activity:passive".into()
                    } else {
                        "activity".into()
                    },
                    object_type: Target::EndUser.as_str().into(),
                    object_id: names.get(false, e.end_user)?,
                    metric: mapping.clone(),
                    app: String::new(),
                    day,
                    value: e.events,
                });
            }
        }
    }
    Ok(())
}

/// `EXPLAIN QUERY PLAN` of `sql` with every parameter NULL (tests).
#[cfg(test)]
pub(super) fn query_plan(c: &Connection, sql: &str) -> Vec<String> {
    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lookup of a read is a seek of a primary key or index, never a scan.
    #[test]
    fn reads_seek_by_key_and_day() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::embedded::SCHEMA).unwrap();
        let find = |t: Table| t.sql(blocks::FIND);
        let cases = [
            (
                find(Table::Values),
                "USING PRIMARY KEY (metric=? AND generation=? AND day=? AND first<?)",
            ),
            (
                find(Table::Activity),
                "USING PRIMARY KEY (mapping=? AND generation=? AND day=? AND first<?)",
            ),
            (
                METRIC_SPAN.to_string(),
                "USING PRIMARY KEY (metric=? AND generation=?)",
            ),
            (
                ACTIVITY_SPAN.to_string(),
                "USING PRIMARY KEY (mapping=? AND generation=?)",
            ),
        ];
        for (sql, seek) in cases {
            let plan = query_plan(&c, &sql);
            assert!(plan.iter().any(|l| l.contains(seek)), "{sql}: {plan:#?}");
            assert!(
                !plan
                    .iter()
                    .any(|l| l.starts_with("SCAN") && l != "SCAN CONSTANT ROW"),
                "{sql}: {plan:#?}"
            );
        }
    }
}
