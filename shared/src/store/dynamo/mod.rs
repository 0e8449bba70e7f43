//! `DynamoStore`: the store port on two DynamoDB tables (on-demand), through the AWS SDK.
//! Each role of the port is implemented in its own file: `config.rs` (`ConfigStore`), `runs.rs`
//! (`RunStore`, with the run items' encoding in `run_items.rs` and `run_status.rs`),
//! `directory.rs`, `data.rs` (`DataStore`, with `manifest_items.rs`), `reads.rs` and
//! `unmatched.rs`; this file holds the client, the batch helpers and the attribute conversions.
//!
//! # Tables and keys (all encoding in `keys.rs`; `T` tenant, `G` generation, 20 digits)
//!
//! **Config table** (`pk`, `sk`; GSI `gsi1` on `gpk`, `gsk`, projection ALL):
//!
//! | item | pk | sk | gsi1 |
//! |---|---|---|---|
//! | integration | `T#t` | `INTEGRATION` | `TENANTS` / `t` (list tenants, no scan) |
//! | mapping | `T#t` | `MAPPING#m` | – |
//! | mapping state (cursor) | `T#t` | `STATE#m` | – |
//! | run header (counters) | `T#t` | `RUN#r#H` | `RUNS#t` / `startedAt#r` (newest first) |
//! | run chunk | `T#t` | `RUN#r#C#00000007` | – |
//! | run's counters of a mapping | `T#t` | `RUN#r#M#m` | – |
//! | what a run's planning read from Pendo for a mapping | `T#t` | `RUN#r#S#m` | – |
//!
//! **Data table** (`pk`, `sk`; GSI `gsi2` on `cpk`, `csk`, projection ALL):
//!
//! | item | pk | sk | gsi2 |
//! |---|---|---|---|
//! | value | `T#t#G#g#O#kind#obj` | `V#metric#day#app` | – |
//! | activity | `T#t#G#g#U#user` | `A#day#m` | `T#t#G#g#C#company` / `day#user#m` |
//! | manifest head | `T#t#MF` | `m#g#day` | – |
//! | manifest part | `T#t#MF` | `m#g#day#P#token#000001` | – |
//! | company/asset/project | `T#t#D#kind` | `O#externalId` | – |
//! | end user | `T#t#EU` | `U#id` | – |
//! | unique (company, external id) | `T#t#EU` | `X#company#externalId` | – |
//! | unique (company, email) | `T#t#EU` | `E#company#email` | – |
//!
//! Access patterns: a series = one Query on the object's partition with a day range; an
//! object's metrics = one Query on that partition (distinct metric/app); a user's activity = one
//! Query; a company's = one Query on gsi2. Value items have no index entry: what a mapping
//! wrote lives in **manifests**, one per (mapping, generation, day), in the tenant's manifest
//! partition (`manifest.rs`: the keys of the day's values and activity records, compactly
//! encoded — about 5 bytes per company on a daily chunk; beyond 350 KB the encoding continues
//! in parts named by a random token that the head carries). Replace a mapping's window = one
//! strongly consistent BatchGetItem of the window's manifest heads (a few small items per
//! chunk, never one per value); delete a mapping's data = one Query `begins_with(m#)` on the
//! manifest partition; purge older generations and export = one Query of the manifest
//! partition (filtered on `gen`), then the listed items by key (export: BatchGetItem), never a
//! Scan.
//!
//! # Generations
//! The generation is part of every value, activity and manifest key, so a late write of an old
//! generation can never overwrite a current value; it lands in a partition no read looks at.
//! Runs write the integration's `generation`; reads show its `published` one (one strongly
//! consistent GetItem), which stays on the last complete generation while a Re-sync all writes
//! the next, and query only that generation's partitions. `replace_chunk` is
//! **check-then-write**: it refuses with `StaleGeneration` when the integration is not at the
//! message's generation, writes, then checks again and deletes what it wrote if the generation
//! is now neither written nor shown (so a worker racing a discarded re-sync leaves nothing
//! behind; its manifest stays and the next purge removes it; a worker that crashes between its
//! puts and that check, exactly while a purge deletes the same manifest, can leave items of a
//! dead generation that no read ever sees). A chunk of the shown generation that raced the start
//! of a re-sync keeps what it wrote: a whole chunk of the shown values, not a hole in them.
//!
//! # Replacing a window (manifests)
//! A chunk's replace is not one transaction (a chunk can hold thousands of values, a
//! transaction 100 items). The invariant is: **every value or activity item that exists is
//! listed in its (mapping, generation, day) manifest** (a manifest may list more: deleting
//! what is not there is harmless). Each manifest head carries a version `ver`; every manifest
//! write is a conditional put on the version it read (`attribute_not_exists` for the first),
//! and a writer that loses re-reads and tries again. A replace:
//! 1. reads the window's manifests (one consistent BatchGetItem);
//! 2. for each day whose manifest lacks some of the chunk's items, writes old ∪ new;
//! 3. puts the items and deletes the leftovers (listed in the window's manifests, not in the
//!    chunk) — BatchWriteItem, 25 a call;
//! 4. writes every manifest it touched once more: without the leftovers if its version is still
//!    the one it wrote or read, else (another worker wrote it meanwhile) re-reads it and writes
//!    it with the chunk's items added, leftovers kept.
//!
//! A crash anywhere leaves a manifest that lists at least what exists (step 2 comes before the
//! puts), and the message's redelivery redoes the whole replace and deletes the leftovers.
//! Two workers replacing the same window concurrently: a worker only drops keys from a manifest
//! (step 4) if no one wrote it since it read it; and every worker writes a version *after* its
//! puts, so a worker that read the manifest before another's puts cannot drop that other's keys
//! afterwards — its conditional put fails and it keeps them. Which worker's values win is the
//! usual race of two replaces of one window; none is ever left unlisted. Manifests are read
//! strongly consistently, so a replace sees every item written before it started.
//!
//! # End users
//! Created with one TransactWriteItems: the user item plus a lookup item per unique key
//! ((company, external id), (company, email)), each `attribute_not_exists`. Of two concurrent
//! creations one transaction is cancelled; the loser reads the winner's user. Lookups are read
//! with strongly consistent GetItem.
//!
//! # Cost per value written (on-demand, items under 1 KB)
//! A value costs 1 WCU: its item, nothing else, plus its share of the day's manifest (written
//! twice on a day's first replace, once on a rewrite: one unit per started KB of the encoding,
//! about 5 bytes per company). An activity record costs 2 WCU (item and gsi2) plus its share of
//! the manifest. A value that disappears when a window is replaced costs 1 WCU (its delete).
//! Reads: one strongly consistent BatchGetItem of the window's manifest heads per chunk (1 RCU
//! per 4 KB of manifest and day); no read per value. Batches are `BatchWriteItem` of 25.

mod budget;
pub mod capacity;
mod config;
mod data;
mod directory;
mod directory_stamp;
pub mod keys;
pub mod manifest;
mod manifest_items;
mod reads;
mod run_items;
mod run_status;
mod runs;
pub mod tables;
mod unmatched;

use super::StoreError;
use crate::domain::{Generations, TenantId};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::NaiveDate;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

pub use tables::ensure_tables;

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// AWS's limit of items per `BatchWriteItem` (moto accepts more; AWS does not).
pub const MAX_BATCH_WRITE: usize = 25;
/// AWS's limit of keys per `BatchGetItem`.
pub const MAX_BATCH_GET: usize = 100;
/// Rounds of re-sending `UnprocessedItems` before giving up.
const MAX_UNPROCESSED_ROUNDS: u32 = 8;

/// Table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoTables {
    pub config: String,
    pub data: String,
}

impl DynamoTables {
    /// `{prefix}-config` and `{prefix}-data` (tests and local stacks).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            config: format!("{prefix}-config"),
            data: format!("{prefix}-data"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: DynamoTables,
    meter: std::sync::Arc<capacity::WriteMeter>,
}

impl DynamoStore {
    pub fn new(client: Client, tables: DynamoTables) -> Self {
        Self {
            client,
            tables,
            meter: Default::default(),
        }
    }

    pub fn tables(&self) -> &DynamoTables {
        &self.tables
    }

    /// What this store's batch writes cost so far (see [`capacity`]).
    pub fn write_meter(&self) -> capacity::WriteMeterSnapshot {
        self.meter.snapshot()
    }

    /// Every page of a query.
    async fn query_all(&self, q: QueryFluentBuilder, what: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        let consistent = q.get_consistent_read().unwrap_or(false);
        loop {
            let page = q
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable(what, e))?;
            let items = page.items.unwrap_or_default();
            self.meter.query_page(&items, consistent);
            out.extend(items);
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Reads items by key, 100 a call, re-sending unprocessed keys; duplicate keys are read once.
    async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
        consistent: bool,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.batch_get_metered(table, keys, consistent, what, false)
            .await
    }

    /// [`Self::batch_get`], its reads metered as the config table's (run items) when `config`.
    async fn batch_get_metered(
        &self,
        table: &str,
        keys: Vec<Item>,
        consistent: bool,
        what: &str,
        config: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut pending: VecDeque<Item> = keys
            .into_iter()
            .filter(|k| {
                seen.insert((
                    get_s(k, "pk").unwrap_or_default().to_string(),
                    get_s(k, "sk").unwrap_or_default().to_string(),
                ))
            })
            .collect();
        let mut out = Vec::new();
        let mut rounds = 0;
        while !pending.is_empty() {
            let n = pending.len().min(MAX_BATCH_GET);
            let batch: Vec<Item> = pending.drain(..n).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(batch))
                .consistent_read(consistent)
                .build()
                .map_err(|e| StoreError::unavailable_from("building a read", e))?;
            let res = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| unavailable(what, e))?;
            let items = res
                .responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default();
            if config {
                self.meter.config_read(&items);
            } else {
                self.meter.read(&items, consistent);
            }
            out.extend(items);
            let unprocessed = res
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if unprocessed.is_empty() {
                rounds = 0;
                continue;
            }
            rounds += 1;
            if rounds > MAX_UNPROCESSED_ROUNDS {
                return Err(StoreError::unavailable(format!(
                    "{what}: {} keys still unprocessed after {MAX_UNPROCESSED_ROUNDS} retries",
                    unprocessed.len() + pending.len()
                )));
            }
            tokio::time::sleep(backoff(rounds)).await;
            for k in unprocessed.into_iter().rev() {
                pending.push_front(k);
            }
        }
        Ok(out)
    }

    /// Writes every request in batches of 25, re-sending unprocessed items.
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        self.batch_write_metered(table, requests, what, false).await
    }

    /// [`Self::batch_write`], its puts metered as manifest items when `manifest`.
    async fn batch_write_metered(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
        what: &str,
        manifest: bool,
    ) -> Result<(), StoreError> {
        let specs = tables::specs(&self.tables);
        let gsis = specs
            .iter()
            .find(|s| s.name == table)
            .map(|s| s.gsis.as_slice())
            .unwrap_or_default();
        for r in &requests {
            match &r.put_request {
                Some(p) if manifest => self.meter.manifest_put(capacity::put_units(&p.item, gsis)),
                Some(p) => self.meter.put(capacity::put_units(&p.item, gsis)),
                None => self.meter.delete(),
            }
        }
        write_in_batches(requests, MAX_UNPROCESSED_ROUNDS, |batch| async move {
            let out = self
                .client
                .batch_write_item()
                .request_items(table, batch)
                .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| unavailable(what, e))?;
            self.meter.call(
                out.consumed_capacity()
                    .iter()
                    .filter_map(|c| c.capacity_units)
                    .sum(),
            );
            Ok(out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default())
        })
        .await
        .map_err(|e| match e {
            StoreError::Unavailable { what: inner, cause } => StoreError::Unavailable {
                what: format!("{what}: {inner}"),
                cause,
            },
            StoreError::Refused { what: inner, cause } => StoreError::Refused {
                what: format!("{what}: {inner}"),
                cause,
            },
            other => other,
        })
    }

    /// The generations written and shown, by mapping (strongly consistent; an item without
    /// `published` shows the one written, one without `own` has no mapping with its own).
    async fn generations(&self, t: &TenantId) -> Result<Option<Generations>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::INTEGRATION_SK)))
            .projection_expression("#g, #p, #o")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#p", "published")
            .expression_attribute_names("#o", "own")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read the integration's generation", e))?;
        let Some(i) = out.item else { return Ok(None) };
        let written = get_n(&i, "generation")?;
        let published = match i.contains_key("published") {
            true => get_n(&i, "published")?,
            false => written,
        };
        let own = match i.contains_key("own") {
            true => serde_json::from_str(get_s(&i, "own")?).map_err(data::corrupt)?,
            false => Default::default(),
        };
        Ok(Some(Generations {
            written,
            published,
            own,
        }))
    }
}

/// Sends `requests` through `send` in batches of at most [`MAX_BATCH_WRITE`]; what `send`
/// returns as unprocessed goes back to the front of the line after a backoff.
///
/// # Errors
/// `send`'s error, or `Unavailable` after `max_rounds` rounds in a row that left items unprocessed.
pub(crate) async fn write_in_batches<T, F, Fut>(
    requests: Vec<T>,
    max_rounds: u32,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut pending: VecDeque<T> = requests.into();
    let mut rounds = 0;
    while !pending.is_empty() {
        let n = pending.len().min(MAX_BATCH_WRITE);
        let batch: Vec<T> = pending.drain(..n).collect();
        let unprocessed = send(batch).await?;
        if unprocessed.is_empty() {
            rounds = 0;
            continue;
        }
        rounds += 1;
        if rounds > max_rounds {
            return Err(StoreError::unavailable(format!(
                "{} items still unprocessed after {max_rounds} retries",
                unprocessed.len() + pending.len()
            )));
        }
        tokio::time::sleep(backoff(rounds)).await;
        for r in unprocessed.into_iter().rev() {
            pending.push_front(r);
        }
    }
    Ok(())
}

/// 50 ms, 100 ms, … capped at 2 s.
fn backoff(round: u32) -> Duration {
    Duration::from_millis((50u64 << round.min(6)).min(2_000))
}

// ---- attribute helpers (the adapter's only conversions between items and domain types) ----

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn f(v: f64) -> Result<AttributeValue, StoreError> {
    if !v.is_finite() {
        return Err(StoreError::corrupt(format!(
            "value {v} is not a finite number"
        )));
    }
    // DynamoDB numbers carry at most 38 significant digits: long decimal forms use an exponent.
    let plain = v.to_string();
    Ok(AttributeValue::N(if plain.len() <= 38 {
        plain
    } else {
        format!("{v:e}")
    }))
}
fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}
fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| *k == "pk" || *k == "sk")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
fn put_req(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::unavailable_from("building a put", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}
fn delete_req(key: Item) -> Result<WriteRequest, StoreError> {
    let del = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| StoreError::unavailable_from("building a delete", e))?;
    Ok(WriteRequest::builder().delete_request(del).build())
}

fn missing(name: &str) -> StoreError {
    StoreError::corrupt(format!("stored item lacks attribute {name}"))
}
fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(missing(name)),
    }
}
fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}
fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::corrupt(format!("attribute {name} is not a number: {v}"))),
        _ => Err(missing(name)),
    }
}
fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Ok(*v),
        _ => Err(missing(name)),
    }
}
fn get_day(item: &Item, name: &str) -> Result<NaiveDate, StoreError> {
    let v = get_s(item, name)?;
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| StoreError::corrupt(format!("attribute {name} is not a day: {v}")))
}
fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::corrupt_from("encoding a JSON body", e))
}
fn from_json<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, StoreError> {
    serde_json::from_str(v).map_err(|e| StoreError::corrupt_from("a stored JSON body", e))
}

/// An SDK error as `Unavailable`, with what was being done and the service's code and message;
/// or as `Refused` when no retry can cure it (access denied, a missing table, a malformed
/// request), its `what` then naming the code and the service's message (the action and the
/// resource, for a denial).
fn unavailable<E>(what: &str, e: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match crate::error::aws_refusal(&e) {
        Some(why) => StoreError::refused_from(format!("{what}: {why}"), e),
        None => StoreError::unavailable_from(what, e),
    }
}

/// Whether an SDK error is a failed condition (`ConditionalCheckFailedException`). A
/// cancelled transaction is told apart by [`cancelled_transaction`].
fn is_condition_failure<E: ProvideErrorMetadata>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// Whether a conditional put failed on the very item it writes: the put itself, applied, its
/// answer lost and the SDK sending it again (DynamoDB returns the item that failed the
/// condition when asked with `ReturnValuesOnConditionCheckFailure`). Single-item writes are
/// not idempotent on DynamoDB; a put recognises its own write this way.
fn own_put(
    e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError>,
    item: &Item,
) -> bool {
    use aws_sdk_dynamodb::operation::put_item::PutItemError as E;
    match e.as_service_error() {
        Some(E::ConditionalCheckFailedException(c)) => c.item() == Some(item),
        _ => false,
    }
}

/// Why DynamoDB cancelled a transaction, from its cancellation reasons (one per item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancelled {
    /// A condition failed on the item at this position (the first such item).
    Condition(usize),
    /// No condition failed: another transaction or write held an item
    /// (`TransactionConflict`), or an item's partition was throttled — the same transaction
    /// may succeed when sent again.
    Transient,
}

/// `None` for an error that is not a cancelled transaction.
fn cancelled_transaction(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> Option<Cancelled> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    let E::TransactionCanceledException(c) = e.as_service_error()? else {
        return None;
    };
    Some(
        match c
            .cancellation_reasons()
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed"))
        {
            Some(i) => Cancelled::Condition(i),
            None => Cancelled::Transient,
        },
    )
}

/// Times a transaction cancelled for a transient reason is sent again before `Unavailable`.
const MAX_TRANSIENT_CANCELS: u32 = 8;

impl DynamoStore {
    /// Writes `items` in one transaction, sending it again (after a backoff) while DynamoDB
    /// cancels it for a transient reason (a conflict with another writer, a throttled item).
    /// `Ok(Err(i))` when the condition of item `i` failed.
    ///
    /// # Errors
    /// `Unavailable` (or `Refused`) naming `what` for any other failure, or transient
    /// cancellations past [`MAX_TRANSIENT_CANCELS`].
    async fn transact(
        &self,
        items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        what: &str,
    ) -> Result<Result<(), usize>, StoreError> {
        let mut round = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(Ok(())),
                Err(e) => match cancelled_transaction(&e) {
                    Some(Cancelled::Condition(i)) => return Ok(Err(i)),
                    Some(Cancelled::Transient) if round < MAX_TRANSIENT_CANCELS => {
                        round += 1;
                        tokio::time::sleep(backoff(round)).await;
                    }
                    _ => return Err(unavailable(what, e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn batches_never_exceed_25_and_unprocessed_items_are_resent() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(0));
        let items: Vec<u32> = (0..60).collect();
        let (s2, sent2, calls2) = (sizes.clone(), sent.clone(), calls.clone());
        write_in_batches(items, 3, move |batch: Vec<u32>| {
            let (s2, sent2, calls2) = (s2.clone(), sent2.clone(), calls2.clone());
            async move {
                s2.lock().unwrap().push(batch.len());
                let mut c = calls2.lock().unwrap();
                *c += 1;
                // The first call leaves its last 5 items unprocessed.
                let (done, back) = if *c == 1 {
                    batch.split_at(batch.len() - 5)
                } else {
                    batch.split_at(batch.len())
                };
                sent2.lock().unwrap().extend_from_slice(done);
                Ok(back.to_vec())
            }
        })
        .await
        .unwrap();
        let sizes = sizes.lock().unwrap().clone();
        assert!(sizes.iter().all(|n| *n <= MAX_BATCH_WRITE), "{sizes:?}");
        assert_eq!(sizes, vec![25, 25, 15]);
        let mut got = sent.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, (0..60).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn items_that_stay_unprocessed_end_in_unavailable() {
        let r = write_in_batches(vec![1, 2, 3], 2, |b: Vec<i32>| async move { Ok(b) }).await;
        assert!(matches!(r, Err(StoreError::Unavailable { .. })));
    }

    #[test]
    fn numbers_fit_dynamodb() {
        let AttributeValue::N(v) = f(1.5).unwrap() else {
            unreachable!()
        };
        assert_eq!(v, "1.5");
        let AttributeValue::N(v) = f(1e100).unwrap() else {
            unreachable!()
        };
        assert_eq!(v, "1e100");
        assert_eq!(v.parse::<f64>().unwrap(), 1e100);
        assert!(f(f64::NAN).is_err());
    }
}
