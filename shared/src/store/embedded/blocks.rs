//! Block rows: the store keeps metric values and activity records [`BLOCK`] to a row. A row
//! holds the records of one group (a metric, or a mapping for activity, in one generation) and
//! one day, sorted by their object's key, as a JSON array of arrays (`points`); it is keyed by
//! (group, generation, day, first key). Two generations of a group never share a row: a
//! Re-sync all writes the next generation's rows beside the shown generation's, untouched. A chunk writes a few hundred rows where it wrote tens of thousands:
//! the SQLite B-tree work per record (a descent, a cell, a page split now and then), which was
//! most of a large re-sync's CPU, is divided by the block size. A read of one object seeks the
//! one row whose range holds it (`first <= key`, the last such row).
//!
//! A group and day is the unit of a merge: when a write finds rows of its group and day (values
//! of a metric another mapping also wrote, or records written out of order), it reads them,
//! lets its records replace those of the same key, and writes the group's rows again. A row
//! of values whose records share one mapping says so in its `mapping` column, so a chunk's
//! replace deletes whole rows by range; rows that mix mappings (`NULL`) are read and rewritten.

use super::StoreError;
use rusqlite::{params, Connection};

/// Records per row: about 1.4 KB of text, within the 2 KB an 8 KiB page keeps in a cell.
pub(super) const BLOCK: usize = 64;

/// The two block tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    /// `metric_blocks`, grouped by metric key; each value carries its mapping.
    Values,
    /// `activity_blocks`, grouped by mapping key.
    Activity,
}

impl Table {
    /// `sql` with `{t}` replaced by the table's name, `{g}` by its group column and `{key}` by
    /// the condition of one group in one generation (`?1` the group, `?2` the generation).
    pub(super) fn sql(self, sql: &str) -> String {
        let (t, g) = match self {
            Table::Values => ("metric_blocks", "metric"),
            Table::Activity => ("activity_blocks", "mapping"),
        };
        sql.replace("{key}", "{g} = ?1 AND generation = ?2")
            .replace("{t}", t)
            .replace("{g}", g)
    }
}

/// The rows of one group (a metric key, or a mapping key for activity) in one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Group {
    pub id: i64,
    pub generation: i64,
}

impl Group {
    pub(super) fn new(id: i64, generation: i64) -> Self {
        Self { id, generation }
    }
}

/// A record of a block.
pub(super) trait Entry: Sized {
    /// The object's key (the order within a group and day).
    fn key(&self) -> i64;
    fn generation(&self) -> i64;
    /// The mapping that wrote it.
    fn mapping(&self) -> i64;
    /// Appends the record as a JSON array.
    fn write(&self, out: &mut String) -> Result<(), StoreError>;
    /// The records of a row's `points`.
    fn parse(points: &str) -> Result<Vec<Self>, StoreError>;
}

fn int(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn float(out: &mut String, x: f64) -> Result<(), StoreError> {
    if !x.is_finite() {
        return Err(StoreError::unavailable(format!(
            "{x} is not a number a value can hold"
        )));
    }
    out.push_str(zmij::Buffer::new().format_finite(x));
    Ok(())
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::corrupt_from("a block of records does not parse", e)
}

/// A metric value: `[object, value, mapping, generation]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ValueEntry {
    pub object: i64,
    pub value: f64,
    pub mapping: i64,
    pub generation: i64,
}

impl Entry for ValueEntry {
    fn key(&self) -> i64 {
        self.object
    }
    fn generation(&self) -> i64 {
        self.generation
    }
    fn mapping(&self) -> i64 {
        self.mapping
    }
    fn write(&self, out: &mut String) -> Result<(), StoreError> {
        out.push('[');
        int(out, self.object);
        out.push(',');
        float(out, self.value)?;
        out.push(',');
        int(out, self.mapping);
        out.push(',');
        int(out, self.generation);
        out.push(']');
        Ok(())
    }
    fn parse(points: &str) -> Result<Vec<Self>, StoreError> {
        let rows: Vec<(i64, f64, i64, i64)> = serde_json::from_str(points).map_err(corrupt)?;
        Ok(rows
            .into_iter()
            .map(|(object, value, mapping, generation)| ValueEntry {
                object,
                value,
                mapping,
                generation,
            })
            .collect())
    }
}

/// An activity record: `[end user, company, label, passive, events, minutes, generation]`
/// (its mapping is the row's group).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ActivityEntry {
    pub end_user: i64,
    pub company: i64,
    pub label: i64,
    pub passive: bool,
    pub events: f64,
    pub minutes: f64,
    pub mapping: i64,
    pub generation: i64,
}

impl Entry for ActivityEntry {
    fn key(&self) -> i64 {
        self.end_user
    }
    fn generation(&self) -> i64 {
        self.generation
    }
    fn mapping(&self) -> i64 {
        self.mapping
    }
    fn write(&self, out: &mut String) -> Result<(), StoreError> {
        out.push('[');
        for n in [self.end_user, self.company, self.label] {
            int(out, n);
            out.push(',');
        }
        out.push_str(if self.passive { "1," } else { "0," });
        float(out, self.events)?;
        out.push(',');
        float(out, self.minutes)?;
        out.push(',');
        int(out, self.generation);
        out.push(']');
        Ok(())
    }
    fn parse(points: &str) -> Result<Vec<Self>, StoreError> {
        // The mapping is set by the caller from the row's group.
        let rows: Vec<(i64, i64, i64, u8, f64, f64, i64)> =
            serde_json::from_str(points).map_err(corrupt)?;
        Ok(rows
            .into_iter()
            .map(
                |(end_user, company, label, passive, events, minutes, generation)| ActivityEntry {
                    end_user,
                    company,
                    label,
                    passive: passive != 0,
                    events,
                    minutes,
                    mapping: 0,
                    generation,
                },
            )
            .collect())
    }
}

/// The records of rows read from `table` (activity records get the group as their mapping).
pub(super) fn parse<E: Entry + WithMapping>(
    table: Table,
    group: Group,
    points: &str,
) -> Result<Vec<E>, StoreError> {
    let mut v = E::parse(points)?;
    if table == Table::Activity {
        for e in &mut v {
            e.set_mapping(group.id);
        }
    }
    Ok(v)
}

/// Sets the mapping of a record read from a row keyed by it.
pub(super) trait WithMapping {
    fn set_mapping(&mut self, m: i64);
}

impl WithMapping for ValueEntry {
    fn set_mapping(&mut self, _: i64) {}
}

impl WithMapping for ActivityEntry {
    fn set_mapping(&mut self, m: i64) {
        self.mapping = m;
    }
}

/// Every record of a group and day, in key order.
pub(super) fn load_group<E: Entry + WithMapping>(
    c: &Connection,
    table: Table,
    group: Group,
    day: i64,
) -> Result<Vec<E>, StoreError> {
    let mut st = c.prepare_cached(
        &table.sql("SELECT points FROM {t} WHERE {key} AND day = ?3 ORDER BY first"),
    )?;
    let mut out = Vec::new();
    let mut rows = st.query(params![group.id, group.generation, day])?;
    while let Some(r) = rows.next()? {
        let points: String = r.get(0)?;
        out.extend(parse::<E>(table, group, &points)?);
    }
    Ok(out)
}

/// The record of `key` in a group and day, if stored.
pub(super) fn find<E: Entry + WithMapping>(
    c: &Connection,
    table: Table,
    group: Group,
    day: i64,
    key: i64,
) -> Result<Option<E>, StoreError> {
    let mut st = c.prepare_cached(&table.sql(FIND))?;
    let mut rows = st.query(params![group.id, group.generation, day, key])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let points: String = r.get(0)?;
    let entries = parse::<E>(table, group, &points)?;
    Ok(entries
        .binary_search_by_key(&key, Entry::key)
        .ok()
        .and_then(|i| entries.into_iter().nth(i)))
}

/// The row whose range holds a key: the last row starting at or before it.
pub(super) const FIND: &str =
    "SELECT points FROM {t} WHERE {key} AND day = ?3 AND first <= ?4 ORDER BY first DESC LIMIT 1";

/// Writes a group and day's records (in key order, one per key), merging them into the rows
/// already stored there, if any: a stored record of a key the new ones have goes.
pub(super) fn write_group<E: Entry + WithMapping + Copy>(
    c: &Connection,
    table: Table,
    group: Group,
    day: i64,
    entries: &[E],
) -> Result<(), StoreError> {
    let exists = c
        .prepare_cached(&table.sql("SELECT 1 FROM {t} WHERE {key} AND day = ?3 LIMIT 1"))?
        .exists(params![group.id, group.generation, day])?;
    if !exists {
        return insert_rows(c, table, group, day, entries);
    }
    let stored: Vec<E> = load_group(c, table, group, day)?;
    let mut merged = Vec::with_capacity(stored.len() + entries.len());
    let (mut i, mut j) = (0, 0);
    while i < stored.len() || j < entries.len() {
        match (stored.get(i), entries.get(j)) {
            (Some(s), Some(e)) if s.key() < e.key() => {
                merged.push(*s);
                i += 1;
            }
            (Some(s), Some(e)) if s.key() == e.key() => {
                merged.push(*e);
                i += 1;
                j += 1;
            }
            (_, Some(e)) => {
                merged.push(*e);
                j += 1;
            }
            (Some(s), None) => {
                merged.push(*s);
                i += 1;
            }
            (None, None) => break,
        }
    }
    delete_group(c, table, group, day)?;
    insert_rows(c, table, group, day, &merged)
}

pub(super) fn delete_group(
    c: &Connection,
    table: Table,
    group: Group,
    day: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(&table.sql("DELETE FROM {t} WHERE {key} AND day = ?3"))?
        .execute(params![group.id, group.generation, day])?;
    Ok(())
}

/// Inserts records (in key order) as rows of [`BLOCK`].
fn insert_rows<E: Entry>(
    c: &Connection,
    table: Table,
    group: Group,
    day: i64,
    entries: &[E],
) -> Result<(), StoreError> {
    // Activity rows are keyed by their mapping: no column of it apart.
    let mut st = c.prepare_cached(match table {
        Table::Values => {
            "INSERT INTO metric_blocks (metric, generation, day, first, n, mapping, points)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        }
        Table::Activity => {
            "INSERT INTO activity_blocks (mapping, generation, day, first, n, points)
             VALUES (?1, ?2, ?3, ?4, ?5, ?7)"
        }
    })?;
    let mut points = String::with_capacity(BLOCK * 32);
    for block in entries.chunks(BLOCK) {
        let Some(first) = block.first() else {
            continue;
        };
        let uniform = |f: fn(&E) -> i64| {
            let v = f(first);
            block.iter().all(|e| f(e) == v).then_some(v)
        };
        points.clear();
        points.push('[');
        for (i, e) in block.iter().enumerate() {
            if i > 0 {
                points.push(',');
            }
            e.write(&mut points)?;
        }
        points.push(']');
        st.raw_bind_parameter(1, group.id)?;
        st.raw_bind_parameter(2, group.generation)?;
        st.raw_bind_parameter(3, day)?;
        st.raw_bind_parameter(4, first.key())?;
        st.raw_bind_parameter(5, block.len() as i64)?;
        if table == Table::Values {
            st.raw_bind_parameter(6, uniform(E::mapping))?;
        }
        st.raw_bind_parameter(7, points.as_str())?;
        st.raw_execute()?;
    }
    Ok(())
}

/// Removes from a group's days `from..=to` the records `drop` selects, rewriting the rows that
/// keep some; returns how many records went. Rows the caller already knows hold only such
/// records are better deleted by range before (this reads every row it is given).
pub(super) fn filter_days<E: Entry + WithMapping + Copy>(
    c: &Connection,
    table: Table,
    group: Group,
    days: Vec<i64>,
    drop: &dyn Fn(&E) -> bool,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for day in days {
        let stored: Vec<E> = load_group(c, table, group, day)?;
        let kept: Vec<E> = stored.iter().copied().filter(|e| !drop(e)).collect();
        if kept.len() == stored.len() {
            continue;
        }
        removed += stored.len() - kept.len();
        delete_group(c, table, group, day)?;
        insert_rows(c, table, group, day, &kept)?;
    }
    Ok(removed)
}

/// Records of a group and day from which the writer writes it as soon as the stream moves to
/// another (big groups come whole: an event chunk's are sorted by group and day).
const BIG_GROUP: usize = 4_096;
/// Records of the groups held apart from the current one (about 4 MiB) before they are
/// written.
const HELD_MAX: usize = 1 << 16;

/// Collects records as they stream in, per group and day, and writes each group and day once.
/// Records come in any order (a PES or aggregation chunk alternates its metrics object by
/// object): writing a small group and day each time the stream left it would read, merge and
/// rewrite its rows again and again, so small groups are held until [`GroupWriter::flush`]
/// (or until [`HELD_MAX`] records of them are held); a big group is written when the stream
/// moves on, so memory stays what one group needs. A group and day that comes again after it
/// was written is merged into its rows.
pub(super) struct GroupWriter<E> {
    table: Table,
    current: Option<(Group, i64)>,
    groups: std::collections::BTreeMap<(Group, i64), Vec<E>>,
    /// Records held in groups other than the current one.
    held: usize,
}

impl<E: Entry + WithMapping + Copy> GroupWriter<E> {
    pub(super) fn new(table: Table) -> Self {
        Self {
            table,
            current: None,
            groups: Default::default(),
            held: 0,
        }
    }

    pub(super) fn push(
        &mut self,
        c: &Connection,
        group: i64,
        day: i64,
        e: E,
    ) -> Result<(), StoreError> {
        let at = (Group::new(group, e.generation()), day);
        if self.current != Some(at) {
            if let Some(left) = self.current.replace(at) {
                let size = self.groups.get(&left).map_or(0, Vec::len);
                if size >= BIG_GROUP {
                    self.write(c, left)?;
                } else {
                    self.held += size;
                }
            }
            self.held = self
                .held
                .saturating_sub(self.groups.get(&at).map_or(0, Vec::len));
            if self.held >= HELD_MAX {
                let others: Vec<(Group, i64)> =
                    self.groups.keys().copied().filter(|k| *k != at).collect();
                for k in others {
                    self.write(c, k)?;
                }
                self.held = 0;
            }
        }
        self.groups.entry(at).or_default().push(e);
        Ok(())
    }

    /// Writes every group and day held.
    pub(super) fn flush(&mut self, c: &Connection) -> Result<(), StoreError> {
        let all: Vec<(Group, i64)> = self.groups.keys().copied().collect();
        for k in all {
            self.write(c, k)?;
        }
        self.current = None;
        self.held = 0;
        Ok(())
    }

    /// Writes one group and day: in key order, the last record of a key winning.
    fn write(&mut self, c: &Connection, (group, day): (Group, i64)) -> Result<(), StoreError> {
        let Some(mut entries) = self.groups.remove(&(group, day)) else {
            return Ok(());
        };
        entries.sort_by_key(Entry::key);
        // Of records with one key, the later (last after the stable sort) wins.
        let mut unique: Vec<E> = Vec::with_capacity(entries.len());
        for e in entries {
            match unique.last_mut() {
                Some(last) if last.key() == e.key() => *last = e,
                _ => unique.push(e),
            }
        }
        write_group(c, self.table, group, day, &unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(object: i64, value: f64, mapping: i64) -> ValueEntry {
        ValueEntry {
            object,
            value,
            mapping,
            generation: 1,
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let v = vec![value(1, 0.1, 2), value(5, -3e-9, 2), value(9, 1e300, 3)];
        let mut s = String::from("[");
        for (i, e) in v.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            e.write(&mut s).unwrap();
        }
        s.push(']');
        assert_eq!(ValueEntry::parse(&s).unwrap(), v);
        let a = ActivityEntry {
            end_user: 7,
            company: 3,
            label: 2,
            passive: true,
            events: 12.0,
            minutes: 0.25,
            mapping: 0,
            generation: 4,
        };
        let mut s = String::from("[");
        a.write(&mut s).unwrap();
        s.push(']');
        assert_eq!(ActivityEntry::parse(&s).unwrap(), vec![a]);
        assert!(value(1, f64::NAN, 1).write(&mut String::new()).is_err());
    }

    /// Group 1 in generation 1 (the generation of `value`'s records).
    const G1: Group = Group {
        id: 1,
        generation: 1,
    };

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::embedded::SCHEMA).unwrap();
        c
    }

    fn all(c: &Connection, day: i64) -> Vec<ValueEntry> {
        load_group(c, Table::Values, G1, day).unwrap()
    }

    /// Rows of [`BLOCK`], found by key; a second write of a group merges into it, its records
    /// replacing those of their keys; the group writer keeps the last record of a key.
    #[test]
    fn groups_are_written_in_blocks_and_merged() {
        let c = conn();
        let first: Vec<ValueEntry> = (0..150).map(|i| value(i * 2, i as f64, 7)).collect();
        write_group(&c, Table::Values, G1, 100, &first).unwrap();
        let rows: Vec<(i64, i64, Option<i64>)> = c
            .prepare("SELECT first, n, mapping FROM metric_blocks ORDER BY first")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            rows,
            vec![(0, 64, Some(7)), (128, 64, Some(7)), (256, 22, Some(7))]
        );
        for (key, want) in [
            (0, Some(0.0)),
            (130, Some(65.0)),
            (298, Some(149.0)),
            (131, None),
            (400, None),
        ] {
            let got: Option<ValueEntry> = find(&c, Table::Values, G1, 100, key).unwrap();
            assert_eq!(got.map(|e| e.value), want, "key {key}");
        }
        // Another mapping's records of some of the keys, and of new ones.
        let second = [value(3, -1.0, 8), value(4, -2.0, 8), value(1000, -3.0, 8)];
        write_group(&c, Table::Values, G1, 100, &second).unwrap();
        let stored = all(&c, 100);
        assert_eq!(stored.len(), 152);
        assert_eq!(stored.iter().filter(|e| e.mapping == 8).count(), 3);
        assert_eq!(stored[2], value(3, -1.0, 8));
        assert_eq!(stored[3], value(4, -2.0, 8));
        assert!(stored.windows(2).all(|w| w[0].object < w[1].object));
        let mixed: i64 = c
            .query_row(
                "SELECT count(*) FROM metric_blocks WHERE mapping IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(mixed, 2);
        // Removing mapping 8's records leaves mapping 7's, one mapping to a row again.
        let gone = filter_days(&c, Table::Values, G1, vec![100], &|e: &ValueEntry| {
            e.mapping == 8
        })
        .unwrap();
        assert_eq!(gone, 3);
        let stored = all(&c, 100);
        assert_eq!(stored.len(), 149);
        assert!(stored.iter().all(|e| e.mapping == 7));
        // The writer: groups and days as they come, the last record of a key winning.
        let mut w = GroupWriter::new(Table::Values);
        for (day, e) in [
            (200, value(5, 1.0, 7)),
            (200, value(2, 2.0, 7)),
            (200, value(5, 3.0, 7)),
            (201, value(1, 4.0, 7)),
            (200, value(2, 5.0, 7)),
        ] {
            w.push(&c, 1, day, e).unwrap();
        }
        w.flush(&c).unwrap();
        assert_eq!(all(&c, 200), vec![value(2, 5.0, 7), value(5, 3.0, 7)]);
        assert_eq!(all(&c, 201), vec![value(1, 4.0, 7)]);
        // Two metrics alternating object by object (a PES chunk's order): each group and day
        // is written once, as whole blocks: 2 rows of 100 records per metric, no rewrite.
        let before = c.total_changes();
        let mut w = GroupWriter::new(Table::Values);
        for object in 0..100 {
            for metric in [30, 31] {
                w.push(&c, metric, 300, value(object, object as f64, 7))
                    .unwrap();
            }
        }
        w.flush(&c).unwrap();
        assert_eq!(
            c.total_changes() - before,
            4,
            "rows inserted, none rewritten"
        );
    }
}
