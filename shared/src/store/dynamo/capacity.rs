//! Write capacity: what DynamoDB bills for the items this adapter writes, and what it reported.
//!
//! Every `BatchWriteItem` asks for `ReturnConsumedCapacity = TOTAL` and the meter adds up the
//! reported units. Local servers do not bill (moto answers a fixed 1.0 per call, whatever the
//! items), so the meter also computes the units each put costs by DynamoDB's published rules:
//! an item's size is the sum of its attribute names and values (strings and binaries by their
//! bytes, numbers by about one byte per two significant digits plus one, booleans and nulls one
//! byte, lists and maps three bytes plus one per element); a write costs one unit per started
//! KB of the item, plus, for each global secondary index whose key attributes the item has, one
//! unit per started KB of the index entry (the projected item — here every index projects ALL —
//! plus 100 bytes of index overhead). Manifest heads (conditional `PutItem`s) are metered the
//! same way and also counted apart. Reads by key (`GetItem`, `BatchGetItem`) are metered too:
//! a strongly consistent read costs one unit per started 4 KB of each item, an eventually
//! consistent one half that.

use super::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use std::sync::atomic::{AtomicU64, Ordering};

const KB: usize = 1024;
/// Bytes DynamoDB adds to an index entry.
const INDEX_OVERHEAD: usize = 100;

/// A number's size as DynamoDB counts it: about one byte per two significant digits, plus one.
pub fn number_size(n: &str) -> usize {
    let digits: String = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| k.len() + value_size(e) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// An item's size in bytes, as DynamoDB counts it.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units one put of `item` costs on a table with these GSIs `(name, pk attr, sk attr)`.
pub fn put_units(item: &Item, gsis: &[(&str, &str, &str)]) -> u64 {
    let size = item_size(item);
    let base = size.div_ceil(KB).max(1) as u64;
    let indexes: u64 = gsis
        .iter()
        .filter(|(_, pk, sk)| item.contains_key(*pk) && item.contains_key(*sk))
        .map(|_| (size + INDEX_OVERHEAD).div_ceil(KB) as u64)
        .sum();
    base + indexes
}

/// Read units (× 2, so that eventually consistent halves stay whole) of reading `item` by key.
pub fn read_half_units(item: &Item, consistent: bool) -> u64 {
    let units = item_size(item).div_ceil(4 * KB).max(1) as u64;
    if consistent {
        2 * units
    } else {
        units
    }
}

/// Running totals of one store's writes (monotonic; read with [`WriteMeter::snapshot`]).
#[derive(Debug, Default)]
pub struct WriteMeter {
    puts: AtomicU64,
    deletes: AtomicU64,
    billed_units: AtomicU64,
    /// Reported units × 1000 (reports are fractional).
    reported_milli_units: AtomicU64,
    batch_calls: AtomicU64,
    manifest_puts: AtomicU64,
    manifest_units: AtomicU64,
    read_calls: AtomicU64,
    items_read: AtomicU64,
    read_half_units: AtomicU64,
    run_calls: AtomicU64,
    run_write_units: AtomicU64,
    run_read_half_units: AtomicU64,
    query_pages: AtomicU64,
    query_half_units: AtomicU64,
    updates: AtomicU64,
}

/// A reading of a [`WriteMeter`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriteMeterSnapshot {
    /// Items put.
    pub puts: u64,
    /// Items deleted.
    pub deletes: u64,
    /// Write units the puts cost by DynamoDB's rules (deletes are billed by the size of the
    /// deleted item, which a delete request does not carry: not included).
    pub billed_put_units: u64,
    /// Write units the server reported in `ConsumedCapacity`.
    pub reported_units: f64,
    /// `BatchWriteItem` calls.
    pub batch_calls: u64,
    /// Of the puts: manifest items (heads and parts).
    pub manifest_puts: u64,
    /// Of the billed put units: those of manifest items.
    pub manifest_units: u64,
    /// `GetItem` and `BatchGetItem` calls on the data table.
    pub read_calls: u64,
    /// Items those calls returned.
    pub items_read: u64,
    /// Read units they cost by DynamoDB's rules.
    pub read_units: f64,
    /// Calls that record a run's progress on the config table (a chunk's delivery, outcome,
    /// retry and counters, a run's flags and planning sources).
    pub run_calls: u64,
    /// Write units those calls cost by DynamoDB's rules (an update is billed by the item's
    /// size; a transaction two units per started KB of each item).
    pub run_write_units: u64,
    /// Read units they cost.
    pub run_read_units: f64,
    /// `Query` pages read (the directory, runs, exports).
    pub query_pages: u64,
    /// Read units those pages cost by DynamoDB's rules (a page: the size of its items together,
    /// in 4 KB units, half for an eventually consistent read).
    pub query_units: f64,
    /// `UpdateItem` calls on the data table outside runs (the directory stamp), each billed
    /// in `billed_put_units` by the size of the item it leaves.
    pub updates: u64,
}

impl WriteMeter {
    pub(super) fn put(&self, units: u64) {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.billed_units.fetch_add(units, Ordering::Relaxed);
    }
    pub(super) fn manifest_put(&self, units: u64) {
        self.put(units);
        self.manifest_puts.fetch_add(1, Ordering::Relaxed);
        self.manifest_units.fetch_add(units, Ordering::Relaxed);
    }
    /// One read call that returned `items`.
    pub(super) fn read<'a>(&self, items: impl IntoIterator<Item = &'a Item>, consistent: bool) {
        self.read_calls.fetch_add(1, Ordering::Relaxed);
        for i in items {
            self.items_read.fetch_add(1, Ordering::Relaxed);
            self.read_half_units
                .fetch_add(read_half_units(i, consistent), Ordering::Relaxed);
        }
    }
    /// One update of a run item (`item` as returned, empty when unknown: then 1 unit).
    pub(super) fn config_write(&self, item: &Item, calls: u64) {
        self.run_calls.fetch_add(calls, Ordering::Relaxed);
        let units = if item.is_empty() {
            1
        } else {
            put_units(item, &[])
        };
        self.run_write_units.fetch_add(units, Ordering::Relaxed);
    }
    /// One transaction of `items` run items, each under 1 KB.
    pub(super) fn config_transaction(&self, items: u64) {
        self.run_calls.fetch_add(1, Ordering::Relaxed);
        self.run_write_units.fetch_add(2 * items, Ordering::Relaxed);
    }
    /// One strongly consistent read of run items.
    pub(super) fn config_read<'a>(&self, items: impl IntoIterator<Item = &'a Item>) {
        self.run_calls.fetch_add(1, Ordering::Relaxed);
        for i in items {
            self.run_read_half_units
                .fetch_add(read_half_units(i, true), Ordering::Relaxed);
        }
    }
    /// One `Query` page that returned `items`.
    pub(super) fn query_page(&self, items: &[Item], consistent: bool) {
        self.query_pages.fetch_add(1, Ordering::Relaxed);
        let size: usize = items.iter().map(item_size).sum();
        let units = size.div_ceil(4 * KB).max(1) as u64;
        self.query_half_units.fetch_add(
            if consistent { 2 * units } else { units },
            Ordering::Relaxed,
        );
    }
    /// One `UpdateItem` of `units` write units.
    pub(super) fn update(&self, units: u64) {
        self.updates.fetch_add(1, Ordering::Relaxed);
        self.billed_units.fetch_add(units, Ordering::Relaxed);
    }
    pub(super) fn delete(&self) {
        self.deletes.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn call(&self, reported_units: f64) {
        self.batch_calls.fetch_add(1, Ordering::Relaxed);
        let milli = (reported_units.max(0.0) * 1000.0).round() as u64;
        self.reported_milli_units
            .fetch_add(milli, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WriteMeterSnapshot {
        WriteMeterSnapshot {
            puts: self.puts.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            billed_put_units: self.billed_units.load(Ordering::Relaxed),
            reported_units: self.reported_milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
            batch_calls: self.batch_calls.load(Ordering::Relaxed),
            manifest_puts: self.manifest_puts.load(Ordering::Relaxed),
            manifest_units: self.manifest_units.load(Ordering::Relaxed),
            read_calls: self.read_calls.load(Ordering::Relaxed),
            items_read: self.items_read.load(Ordering::Relaxed),
            read_units: self.read_half_units.load(Ordering::Relaxed) as f64 / 2.0,
            run_calls: self.run_calls.load(Ordering::Relaxed),
            run_write_units: self.run_write_units.load(Ordering::Relaxed),
            run_read_units: self.run_read_half_units.load(Ordering::Relaxed) as f64 / 2.0,
            query_pages: self.query_pages.load(Ordering::Relaxed),
            query_units: self.query_half_units.load(Ordering::Relaxed) as f64 / 2.0,
            updates: self.updates.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("-1.5"), 2);
        assert_eq!(number_size("1000"), 2);
        let item: Item = [
            ("pk".to_string(), s("abc")),
            ("n".to_string(), AttributeValue::N("42".into())),
            ("b".to_string(), AttributeValue::Bool(true)),
        ]
        .into_iter()
        .collect();
        // pk(2)+3, n(1)+2, b(1)+1
        assert_eq!(item_size(&item), 10);
    }

    #[test]
    fn units_count_the_item_and_each_index_it_is_in() {
        let gsis = [("gsi1", "gpk", "gsk"), ("gsi2", "cpk", "csk")];
        let mut item: Item = [("pk".to_string(), s("p")), ("sk".to_string(), s("s"))]
            .into_iter()
            .collect();
        assert_eq!(put_units(&item, &gsis), 1);
        item.insert("gpk".into(), s("g"));
        assert_eq!(put_units(&item, &gsis), 1, "an index needs both its keys");
        item.insert("gsk".into(), s("g"));
        assert_eq!(put_units(&item, &gsis), 2);
        item.insert("big".into(), s(&"x".repeat(1000)));
        // ~1,015 bytes: 1 unit for the item, 2 for its index entry (+100 bytes overhead).
        assert_eq!(put_units(&item, &gsis), 3);
    }

    #[test]
    fn the_meter_adds_up() {
        let m = WriteMeter::default();
        m.put(2);
        m.put(3);
        m.manifest_put(4);
        m.delete();
        m.call(1.0);
        m.call(0.5);
        let small: Item = [("pk".to_string(), s("p"))].into_iter().collect();
        let big: Item = [("b".to_string(), s(&"x".repeat(5000)))]
            .into_iter()
            .collect();
        m.read([&small, &big], true);
        m.read([&small], false);
        m.read([], true);
        // A page's items together: 3 KB + 3 KB is two units strongly consistent, one half
        // eventually; an empty page still costs its minimum.
        let three_kb: Item = [("b".to_string(), s(&"x".repeat(3000)))]
            .into_iter()
            .collect();
        m.query_page(&[three_kb.clone(), three_kb.clone()], true);
        m.query_page(&[three_kb], false);
        m.query_page(&[], false);
        m.update(2);
        assert_eq!(
            m.snapshot(),
            WriteMeterSnapshot {
                puts: 3,
                deletes: 1,
                billed_put_units: 11,
                reported_units: 1.5,
                batch_calls: 2,
                manifest_puts: 1,
                manifest_units: 4,
                read_calls: 3,
                items_read: 3,
                // 1 + 2 (5,001 bytes: two started 4 KB) strongly consistent, then 0.5.
                read_units: 3.5,
                run_calls: 0,
                run_write_units: 0,
                run_read_units: 0.0,
                query_pages: 3,
                query_units: 3.0,
                updates: 1,
            }
        );
    }
}
