//! What the functions' AWS calls would cost, read off the wire at the IAM gate (issue 31).
//!
//! moto bills nothing (it answers a fixed 1.0 capacity unit per batch whatever it holds), so
//! the gate computes what DynamoDB would bill for each call the functions make, by its
//! published rules, from the request and the answer:
//!
//! - a put: one write unit per started KB of the item, plus, for each index whose keys the item
//!   has, one per started KB of the item and 100 bytes of index overhead (both tables' indexes
//!   project every attribute); in a transaction, twice that;
//! - an update or a delete: one write unit (and one more for an item in an index: a run's
//!   header on the config table, an activity record on the data table); the items this service
//!   updates or deletes are all under 1 KB (the storage scan at the end says the largest);
//!   twice that in a transaction;
//! - a read by key: one unit per started 4 KB of the item, found or not (half for an
//!   eventually consistent read); a Query page: the page's items together per started 4 KB,
//!   at least one unit (half when eventually consistent). Items a filter drops are billed by
//!   DynamoDB but never reach the gate: a Query with a filter is undercounted by them.
//!
//! SQS requests are counted one per call (every message of this service is far under 64 KB).

use pendo_sync::store::dynamo::capacity::number_size;
use serde_json::Value;
use std::collections::BTreeMap;

const KB: f64 = 1024.0;

/// Units and calls of one function (or of all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Bill {
    pub(crate) write_units: f64,
    pub(crate) read_units: f64,
    /// Of the read units: those of the directory (companies, assets, projects, end users,
    /// their lookups and the directory stamp).
    pub(crate) directory_read_units: f64,
    pub(crate) dynamodb_calls: u64,
    pub(crate) sqs_requests: u64,
    /// Write and read units by what the items are ([`Kind`]).
    pub(crate) write_units_by_kind: BTreeMap<&'static str, f64>,
    pub(crate) read_units_by_kind: BTreeMap<&'static str, f64>,
    /// Calls by action, for the reader of the figure.
    pub(crate) by_action: BTreeMap<String, u64>,
}

impl Bill {
    pub(crate) fn add(&mut self, other: &Bill) {
        self.write_units += other.write_units;
        self.read_units += other.read_units;
        self.directory_read_units += other.directory_read_units;
        self.dynamodb_calls += other.dynamodb_calls;
        self.sqs_requests += other.sqs_requests;
        for (k, n) in &other.by_action {
            *self.by_action.entry(k.clone()).or_default() += n;
        }
        for (k, u) in &other.write_units_by_kind {
            *self.write_units_by_kind.entry(k).or_default() += u;
        }
        for (k, u) in &other.read_units_by_kind {
            *self.read_units_by_kind.entry(k).or_default() += u;
        }
    }

    pub(crate) fn minus(&self, before: &Bill) -> Bill {
        let mut by_action = self.by_action.clone();
        for (k, n) in &before.by_action {
            if let Some(v) = by_action.get_mut(k) {
                *v -= n;
            }
        }
        by_action.retain(|_, n| *n > 0);
        let minus = |now: &BTreeMap<&'static str, f64>, then: &BTreeMap<&'static str, f64>| {
            now.iter()
                .map(|(k, u)| (*k, u - then.get(k).copied().unwrap_or(0.0)))
                .collect()
        };
        Bill {
            write_units_by_kind: minus(&self.write_units_by_kind, &before.write_units_by_kind),
            read_units_by_kind: minus(&self.read_units_by_kind, &before.read_units_by_kind),
            write_units: self.write_units - before.write_units,
            read_units: self.read_units - before.read_units,
            directory_read_units: self.directory_read_units - before.directory_read_units,
            dynamodb_calls: self.dynamodb_calls - before.dynamodb_calls,
            sqs_requests: self.sqs_requests - before.sqs_requests,
            by_action,
        }
    }

    /// Records one call `target` (the `x-amz-target` header) with its request and answer.
    pub(crate) fn record(&mut self, target: &str, request: &[u8], answer: &[u8]) {
        let action = target.rsplit('.').next().unwrap_or(target).to_string();
        *self.by_action.entry(action.clone()).or_default() += 1;
        if target.starts_with("AmazonSQS") {
            self.sqs_requests += 1;
            return;
        }
        self.dynamodb_calls += 1;
        let req: Value = serde_json::from_slice(request).unwrap_or(Value::Null);
        let ans: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
        if ans.get("__type").is_some() {
            // An error: a failed condition still consumes a write unit, a throttle nothing.
            let kind = ans["__type"].as_str().unwrap_or("");
            if kind.contains("ConditionalCheckFailed") {
                self.write_units += 1.0;
            }
            return;
        }
        let table = req["TableName"].as_str().unwrap_or("");
        let consistent = req["ConsistentRead"].as_bool().unwrap_or(false);
        let pk = |item: &Value| item["pk"]["S"].as_str().map(str::to_string);
        match action.as_str() {
            "PutItem" => {
                let units = put_units(table, &req["Item"]);
                self.write(kind(table, pk(&req["Item"]).as_deref()), units);
            }
            "UpdateItem" | "DeleteItem" => {
                let units = key_units(table, &req["Key"]);
                self.write(kind(table, pk(&req["Key"]).as_deref()), units);
            }
            "BatchWriteItem" => {
                // Unprocessed requests are not billed; they come back in another call.
                let sent = count_requests(&req["RequestItems"]).max(1) as f64;
                let applied = (sent - count_requests(&ans["UnprocessedItems"]) as f64) / sent;
                for (table, reqs) in req["RequestItems"].as_object().into_iter().flatten() {
                    for r in reqs.as_array().into_iter().flatten() {
                        let (units, key) = match (&r["PutRequest"], &r["DeleteRequest"]) {
                            (Value::Object(p), _) => (put_units(table, &p["Item"]), pk(&p["Item"])),
                            (_, Value::Object(d)) => (key_units(table, &d["Key"]), pk(&d["Key"])),
                            _ => (0.0, None),
                        };
                        self.write(kind(table, key.as_deref()), units * applied);
                    }
                }
            }
            "TransactWriteItems" => {
                for i in req["TransactItems"].as_array().into_iter().flatten() {
                    let (units, table, key) =
                        match (&i["Put"], &i["Update"], &i["Delete"], &i["ConditionCheck"]) {
                            (Value::Object(p), ..) => {
                                let table = p["TableName"].as_str().unwrap_or("");
                                (put_units(table, &p["Item"]), table, pk(&p["Item"]))
                            }
                            (_, Value::Object(o), ..)
                            | (_, _, Value::Object(o), _)
                            | (.., Value::Object(o)) => {
                                let table = o["TableName"].as_str().unwrap_or("");
                                (key_units(table, &o["Key"]), table, pk(&o["Key"]))
                            }
                            _ => (1.0, "", None),
                        };
                    self.write(kind(table, key.as_deref()), 2.0 * units);
                }
            }
            "GetItem" => {
                let units = read_units(size_of(&ans["Item"]), consistent);
                self.read(kind(table, pk(&req["Key"]).as_deref()), units);
            }
            "BatchGetItem" => {
                for (table, keys) in req["RequestItems"].as_object().into_iter().flatten() {
                    let consistent = keys["ConsistentRead"].as_bool().unwrap_or(false);
                    let asked: Vec<&Value> =
                        keys["Keys"].as_array().into_iter().flatten().collect();
                    let unprocessed = ans["UnprocessedKeys"][table]["Keys"]
                        .as_array()
                        .map_or(0, Vec::len);
                    let found: Vec<&Value> = ans["Responses"][table]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .collect();
                    let what = kind(table, asked.first().and_then(|k| pk(k)).as_deref());
                    for item in &found {
                        self.read(what, read_units(size_of(item), consistent));
                    }
                    let missing = asked.len().saturating_sub(unprocessed + found.len());
                    self.read(what, missing as f64 * read_units(0, consistent));
                }
            }
            "Query" | "Scan" => {
                let size: usize = ans["Items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(size_of)
                    .sum();
                let partition = req["ExpressionAttributeValues"][":p"]["S"].as_str();
                self.read(kind(table, partition), read_units(size, consistent));
            }
            _ => {}
        }
    }
}

impl Bill {
    fn write(&mut self, kind: &'static str, units: f64) {
        self.write_units += units;
        *self.write_units_by_kind.entry(kind).or_default() += units;
    }

    fn read(&mut self, kind: &'static str, units: f64) {
        self.read_units += units;
        *self.read_units_by_kind.entry(kind).or_default() += units;
        if kind == "directory" {
            self.directory_read_units += units;
        }
    }
}

/// What an item is, from its table and partition key (`keys.rs`): the run's bookkeeping and
/// configuration (the config table), a manifest (`T#t#MF`), the directory (`T#t#EU`,
/// `T#t#D#kind`), or a value or activity record (every other partition of the data table).
fn kind(table: &str, pk: Option<&str>) -> &'static str {
    let pk = pk.unwrap_or("");
    if table.ends_with("-config") {
        "config"
    } else if pk.ends_with("#MF") {
        "manifests"
    } else if is_directory(Some(pk)) {
        "directory"
    } else {
        "values_and_activity"
    }
}

/// A partition of the directory (`keys.rs`: `T#t#EU`, `T#t#D#kind`).
fn is_directory(pk: Option<&str>) -> bool {
    pk.is_some_and(|pk| pk.ends_with("#EU") || pk.contains("#D#"))
}

fn count_requests(items: &Value) -> usize {
    items
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, v)| v.as_array().map_or(0, Vec::len))
        .sum()
}

/// The index key attributes of a table of this service, by its name's suffix.
fn index_keys(table: &str) -> Option<(&'static str, &'static str)> {
    if table.ends_with("-config") {
        Some(("gpk", "gsk"))
    } else if table.ends_with("-data") {
        Some(("cpk", "csk"))
    } else {
        None
    }
}

fn put_units(table: &str, item: &Value) -> f64 {
    let size = size_of(item);
    let base = (size as f64 / KB).ceil().max(1.0);
    let indexed =
        index_keys(table).is_some_and(|(pk, sk)| item.get(pk).is_some() && item.get(sk).is_some());
    base + if indexed {
        ((size + 100) as f64 / KB).ceil()
    } else {
        0.0
    }
}

/// An update or delete by key: one unit, two for an item in an index (a run header on the
/// config table, an activity record on the data table).
fn key_units(table: &str, key: &Value) -> f64 {
    let sk = key["sk"]["S"].as_str().unwrap_or("");
    let indexed = (table.ends_with("-config") && sk.starts_with("RUN#") && sk.ends_with("#H"))
        || (table.ends_with("-data") && sk.starts_with("A#"));
    if indexed {
        2.0
    } else {
        1.0
    }
}

fn read_units(size: usize, consistent: bool) -> f64 {
    let units = (size as f64 / (4.0 * KB)).ceil().max(1.0);
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// An item's size as DynamoDB counts it, from its wire form (`{"name": {"S": "…"}, …}`).
pub(crate) fn size_of(item: &Value) -> usize {
    item.as_object()
        .into_iter()
        .flatten()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

fn value_size(v: &Value) -> usize {
    let Some((tag, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match tag.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => number_size(inner.as_str().unwrap_or("0")),
        // Base64 on the wire: three bytes for every four characters.
        "B" => inner
            .as_str()
            .map_or(0, |b| b.trim_end_matches('=').len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::len)
            .sum(),
        "NS" => inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(number_size)
            .sum(),
        "L" => {
            3 + inner
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| value_size(e) + 1)
                .sum::<usize>()
        }
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, e)| k.len() + value_size(e) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The rules above on calls of the shapes this service sends.
    #[test]
    fn calls_are_billed_by_dynamodbs_rules() {
        let mut b = Bill::default();
        let value = json!({"pk": {"S": "p"}, "sk": {"S": "V#x"}, "val": {"N": "12.5"}});
        let activity =
            json!({"pk": {"S": "p"}, "sk": {"S": "A#d#m"}, "cpk": {"S": "c"}, "csk": {"S": "s"}});
        let batch = json!({"RequestItems": {"t-data": [
            {"PutRequest": {"Item": value}}, {"PutRequest": {"Item": activity}},
            {"DeleteRequest": {"Key": {"pk": {"S": "p"}, "sk": {"S": "A#d#m"}}}}]}});
        b.record(
            "DynamoDB_20120810.BatchWriteItem",
            batch.to_string().as_bytes(),
            b"{\"UnprocessedItems\": {}}",
        );
        assert_eq!(b.write_units, 1.0 + 2.0 + 2.0);
        let big = json!({"pk": {"S": "x".repeat(2000)}});
        b.record(
            "DynamoDB_20120810.GetItem",
            json!({"TableName": "t-data", "ConsistentRead": true})
                .to_string()
                .as_bytes(),
            json!({"Item": big}).to_string().as_bytes(),
        );
        b.record(
            "DynamoDB_20120810.GetItem",
            json!({"TableName": "t-data"}).to_string().as_bytes(),
            b"{}",
        );
        assert_eq!(b.read_units, 1.5);
        b.record(
            "DynamoDB_20120810.UpdateItem",
            json!({"TableName": "t-data", "Key": {"pk": {"S": "p"}, "sk": {"S": "STAMP"}}})
                .to_string()
                .as_bytes(),
            b"{}",
        );
        b.record(
            "DynamoDB_20120810.PutItem",
            b"{\"TableName\": \"t-data\"}",
            br#"{"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#,
        );
        assert_eq!(b.write_units, 7.0);
        b.record("AmazonSQS.SendMessageBatch", b"{}", b"{}");
        assert_eq!((b.sqs_requests, b.dynamodb_calls), (1, 5));
        assert_eq!(
            size_of(&json!({"ab": {"B": "AAAA"}, "n": {"N": "1000"}})),
            2 + 3 + 1 + 2
        );
    }
}
