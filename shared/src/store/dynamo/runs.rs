//! Runs on the config table: a header item with the run's counters, one item per chunk, one per
//! (run, mapping) with that mapping's counters, and one per (run, mapping) with what planning
//! read from Pendo. Concurrent workers each update their own chunk; recording a chunk's outcome
//! is one TransactWriteItems of three small items (chunk, header, mapping counters), so its
//! cost does not grow with the run, and the decisions after it ("was this the last creating
//! chunk", "is the mapping's window over") read two items, never the chunks. The mapping
//! counters item also holds the mapping's status numbers (`run_status.rs`).
//!
//! | item | sk |
//! |---|---|
//! | header | `RUN#r#H` (gsi1 `RUNS#t` / `startedAt#r`) |
//! | chunk | `RUN#r#C#00000007` |
//! | mapping counters | `RUN#r#M#m` |
//! | planning source | `RUN#r#S#m` |

use super::run_items::{
    chunk_from, chunk_item, chunk_not_found, counter, header_from, lease_time, parse_release,
    release_str, status_str, update,
};
use super::{
    from_json, get_n, get_s, is_condition_failure, key, keys, n, put_req, s, to_json, unavailable,
    DynamoStore, Item,
};
use crate::domain::{
    ChunkOutcome, ChunkRecord, ChunkStart, ChunkStatus, MappingId, MappingRun, MappingRunCounters,
    Release, RunFlag, RunId, RunProgress, SyncRun, TenantId,
};
use crate::store::RunStore;
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

/// The item a failed condition returned (`Some(None)`: the condition failed on an absent item);
/// `None` for any other error.
fn failed_condition_item(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    >,
) -> Option<Option<Item>> {
    match e.as_service_error()? {
        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
            c,
        ) => Some(c.item().cloned().filter(|i| !i.is_empty())),
        _ => None,
    }
}

/// The start a chunk's stored item shows for `delivery` when that delivery's own write is
/// already on it: taken when it holds the lease; `None` when the item is another delivery's
/// (or absent).
fn own_start(item: Option<&Item>, delivery: &str) -> Result<Option<ChunkStart>, StoreError> {
    let Some(item) = item.filter(|i| super::opt_s(i, "delivery").as_deref() == Some(delivery))
    else {
        return Ok(None);
    };
    let chunk = chunk_from(item)?.1;
    let taken = chunk.status == ChunkStatus::Pending
        && chunk.leased_by.as_deref() == Some(delivery)
        && chunk.leased_until.is_some();
    Ok(Some(ChunkStart { chunk, taken }))
}

#[async_trait]
impl RunStore for DynamoStore {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let t = &run.tenant;
        let mut requests = vec![put_req(header_item(run)?)?];
        for (i, c) in run.chunks.iter().enumerate() {
            requests.push(put_req(chunk_item(t, &run.id, i, c)?)?);
        }
        for m in run.mappings() {
            let mp = run.progress(Some(m));
            let c = MappingRunCounters::of(run, m);
            let mut item = key(keys::tenant_pk(t), keys::run_mapping_sk(&run.id, m));
            item.insert("open".into(), n(mp.mapping_open));
            item.insert("notDone".into(), n(mp.mapping_not_done));
            if let Some(end) = mp.mapping_end {
                item.insert("end".into(), s(keys::day(end)));
            }
            item.insert("chunks".into(), n(c.chunks));
            item.insert("failed".into(), n(c.failed));
            for (name, v) in super::run_status::stat_numbers(&c.stats) {
                item.insert(name.into(), n(v));
            }
            if let Some(e) = c.error {
                item.insert("err".into(), s(e));
            }
            if let Some(at) = c.last_at {
                item.insert("at".into(), s(lease_time(at)));
            }
            requests.push(put_req(item)?);
        }
        for (m, source) in &run.sources {
            let mut item = key(keys::tenant_pk(t), keys::run_source_sk(&run.id, m));
            item.insert("body".into(), s(to_json(source)?));
            requests.push(put_req(item)?);
        }
        self.batch_write(&self.tables.config, requests, "put run")
            .await
    }

    async fn create_run(&self, run: &SyncRun) -> Result<bool, StoreError> {
        if !run.chunks.is_empty() {
            return Err(StoreError::Conflict(
                "a run is created before it has chunks".into(),
            ));
        }
        let out = self
            .client
            .put_item()
            .table_name(&self.tables.config)
            .set_item(Some(header_item(run)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("create run", e)),
        }
    }

    async fn get_run(&self, t: &TenantId, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.tables.config)
            .key_condition_expression("pk = :p AND begins_with(sk, :r)")
            .expression_attribute_values(":p", s(keys::tenant_pk(t)))
            .expression_attribute_values(":r", s(keys::run_prefix(id)))
            .consistent_read(true);
        let items = self.query_all(q, "get run").await?;
        let header_sk = keys::run_header_sk(id);
        let Some(header) = items
            .iter()
            .find(|i| get_s(i, "sk").is_ok_and(|k| k == header_sk))
        else {
            return Ok(None);
        };
        let mut run = header_from(header)?;
        let count: usize = get_n(header, "chunks")?;
        let mut chunks: Vec<Option<ChunkRecord>> = vec![None; count];
        for i in items.iter().filter(|i| i.contains_key("index")) {
            let (index, c) = chunk_from(i)?;
            if let Some(slot) = chunks.get_mut(index) {
                *slot = Some(c);
            }
        }
        run.chunks = chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.ok_or_else(|| StoreError::corrupt(format!("run {id} lacks chunk {i}"))))
            .collect::<Result<_, _>>()?;
        Ok(Some(run))
    }

    async fn list_runs(&self, t: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .query()
            .table_name(&self.tables.config)
            .index_name("gsi1")
            .key_condition_expression("gpk = :p")
            .expression_attribute_values(":p", s(keys::runs_gpk(t)))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| unavailable("list runs", e))?;
        let mut runs = Vec::new();
        for i in out.items.unwrap_or_default() {
            let id = RunId::parse(get_s(&i, "run")?)
                .map_err(|e| StoreError::corrupt_from("a stored run id", e))?;
            if let Some(r) = self.get_run(t, &id).await? {
                runs.push(r);
            }
        }
        Ok(runs)
    }

    /// Two updates at most: the first takes the chunk (pending, no live lease) and counts the
    /// delivery; when its condition fails, the second only counts it. Both carry the delivery's
    /// id and refuse to apply twice for one delivery: a write whose answer was lost and that
    /// the SDK sent again fails its condition, and the item DynamoDB returns with the failure
    /// (`ReturnValuesOnConditionCheckFailure`) shows the delivery's own earlier write.
    async fn begin_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        delivery: &str,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<ChunkStart, StoreError> {
        let k = key(keys::tenant_pk(t), keys::run_chunk_sk(run, index));
        let until = lease_time(lease_until);
        let take = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k.clone()))
            .update_expression("SET #u = :at, #l = :until, #d = :me, #lb = :me ADD #a :one")
            .condition_expression(
                "attribute_exists(pk) AND #st = :pending AND (attribute_not_exists(#l) OR #l <= :at) \
                 AND (attribute_not_exists(#d) OR #d <> :me)",
            )
            .expression_attribute_names("#a", "attempts")
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_names("#l", "leasedUntil")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#d", "delivery")
            .expression_attribute_names("#lb", "leasedBy")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(lease_time(at)))
            .expression_attribute_values(":until", s(until))
            .expression_attribute_values(":me", s(delivery))
            .expression_attribute_values(":pending", s(status_str(&ChunkStatus::Pending)))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match take {
            Ok(o) => {
                let item = o.attributes.unwrap_or_default();
                self.meter.config_write(&item, 1);
                return Ok(ChunkStart {
                    chunk: chunk_from(&item)?.1,
                    taken: true,
                });
            }
            // A failed conditional write is billed as a write too.
            Err(e) => match failed_condition_item(&e) {
                Some(old) => {
                    self.meter.config_write(&Item::new(), 1);
                    if let Some(start) = own_start(old.as_ref(), delivery)? {
                        return Ok(start);
                    }
                }
                None => return Err(unavailable("begin chunk", e)),
            },
        }
        let count = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k))
            .update_expression("SET #u = :at, #d = :me ADD #a :one")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#d) OR #d <> :me)",
            )
            .expression_attribute_names("#a", "attempts")
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_names("#d", "delivery")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(lease_time(at)))
            .expression_attribute_values(":me", s(delivery))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match count {
            Ok(o) => {
                let item = o.attributes.unwrap_or_default();
                self.meter.config_write(&item, 1);
                Ok(ChunkStart {
                    chunk: chunk_from(&item)?.1,
                    taken: false,
                })
            }
            Err(e) => match failed_condition_item(&e) {
                Some(old) => {
                    self.meter.config_write(&Item::new(), 1);
                    own_start(old.as_ref(), delivery)?.ok_or_else(|| chunk_not_found(run, index))
                }
                None => Err(unavailable("begin chunk", e)),
            },
        }
    }

    async fn finish_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        outcome: &ChunkOutcome,
    ) -> Result<RunProgress, StoreError> {
        let chunk = self.get_chunk(t, run, index).await?;
        let mut applied = false;
        if !chunk.status.is_final() && outcome.status.is_final() {
            let table = &self.tables.config;
            let pk = keys::tenant_pk(t);
            // The error and the lease are blanked rather than removed (moto cancels a
            // transaction that removes an absent attribute; an empty value reads as none).
            let sets = "SET #st = :st, #sx = :stats, #u = :at, #e = :e, #l = :none";
            let values = vec![
                (":st", s(status_str(&outcome.status))),
                (":pending", s(status_str(&ChunkStatus::Pending))),
                (":stats", s(to_json(&outcome.stats)?)),
                (":at", s(lease_time(outcome.at))),
                (":e", s(outcome.error.clone().unwrap_or_default())),
                (":none", s("")),
            ];
            let items = vec![
                update(
                    table,
                    key(pk.clone(), keys::run_chunk_sk(run, index)),
                    sets,
                    "#st = :pending",
                    &[
                        ("#st", "status"),
                        ("#sx", "stats"),
                        ("#u", "updatedAt"),
                        ("#e", "error"),
                        ("#l", "leasedUntil"),
                    ],
                    values,
                )?,
                update(
                    table,
                    key(pk.clone(), keys::run_header_sk(run)),
                    "ADD #o :m, #c :c",
                    "attribute_exists(pk)",
                    &[("#o", "open"), ("#c", "copen")],
                    vec![
                        (":m", AttributeValue::N("-1".into())),
                        (
                            ":c",
                            AttributeValue::N(if chunk.deferred { "0" } else { "-1" }.into()),
                        ),
                    ],
                )?,
                super::run_status::mapping_update(
                    table,
                    key(pk, keys::run_mapping_sk(run, &chunk.mapping_id)),
                    outcome,
                )?,
            ];
            match self.transact(items, "finish chunk").await? {
                Ok(()) => {
                    applied = true;
                    // A transaction bills two units per started KB of each item; the three
                    // are each under 1 KB.
                    self.meter.config_transaction(3);
                }
                // The chunk was no longer pending.
                Err(0) => {}
                Err(_) => {
                    return Err(StoreError::corrupt(format!(
                        "run {run} lacks its header or the counters of mapping {}",
                        chunk.mapping_id
                    )))
                }
            }
        }
        let mut p = self.run_progress(t, run, &chunk.mapping_id).await?;
        p.applied = applied;
        Ok(p)
    }

    async fn retry_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        delivery: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Only while this delivery holds the chunk: the lease it removes makes a resent write
        // (its answer lost) fail the condition instead of counting the retry twice.
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(
                keys::tenant_pk(t),
                keys::run_chunk_sk(run, index),
            )))
            .update_expression("SET #e = :e, #u = :at REMOVE #l ADD #r :one")
            .condition_expression(
                "#st = :pending AND #lb = :me AND attribute_exists(#l) AND #l <> :none",
            )
            .expression_attribute_names("#lb", "leasedBy")
            .expression_attribute_values(":me", s(delivery))
            .expression_attribute_values(":none", s(""))
            .expression_attribute_names("#l", "leasedUntil")
            .expression_attribute_names("#e", "error")
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_names("#r", "retries")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":e", s(error))
            .expression_attribute_values(":at", s(lease_time(at)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":pending", s(status_str(&ChunkStatus::Pending)))
            .send()
            .await;
        match out {
            Ok(_) => {
                self.meter.config_write(&Item::new(), 1);
                Ok(())
            }
            // Over meanwhile (or gone, or recorded already): nothing to record.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("record a retry", e)),
        }
    }

    /// The header and the mapping's counters: one strongly consistent BatchGetItem.
    async fn run_progress(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<RunProgress, StoreError> {
        let (header, mine) = self.header_and_mapping(t, run, mapping).await?;
        let header = header.ok_or_else(|| StoreError::NotFound(format!("run {run}")))?;
        let header = &header;
        let mine = mine.as_ref();
        Ok(RunProgress {
            applied: false,
            total: get_n(header, "chunks")?,
            open: counter(header, "open")?,
            creators_open: counter(header, "copen")?,
            deferred: counter(header, "ndef")?,
            release: match header.get("rel") {
                Some(_) => parse_release(get_s(header, "rel")?)?,
                None => Release::Waiting,
            },
            queued: matches!(header.get("queued"), Some(AttributeValue::Bool(true))),
            mapping_open: mine.map(|m| counter(m, "open")).transpose()?.unwrap_or(0),
            mapping_not_done: mine
                .map(|m| counter(m, "notDone"))
                .transpose()?
                .unwrap_or(0),
            mapping_end: mine
                .filter(|m| m.contains_key("end"))
                .map(|m| super::get_day(m, "end"))
                .transpose()?,
        })
    }

    /// The header and the mapping's status counters: the same single read.
    async fn mapping_run(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<MappingRun>, StoreError> {
        let (header, mine) = self.header_and_mapping(t, run, mapping).await?;
        let Some(header) = header else {
            return Ok(None);
        };
        Ok(Some(MappingRun {
            run: header_from(&header)?,
            counters: mine
                .as_ref()
                .map(super::run_status::counters_from)
                .transpose()?
                .unwrap_or_default(),
        }))
    }

    async fn set_run_flag(
        &self,
        t: &TenantId,
        run: &RunId,
        flag: RunFlag,
    ) -> Result<bool, StoreError> {
        let u = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::run_header_sk(run))));
        let u = match flag {
            RunFlag::Queued => u
                .update_expression("SET #q = :true")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#q", "queued")
                .expression_attribute_values(":true", AttributeValue::Bool(true)),
            RunFlag::ClaimRelease { by } => u
                .update_expression("SET #r = :mine")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(#r) OR #r = :waiting OR #r = :mine)",
                )
                .expression_attribute_names("#r", "rel")
                .expression_attribute_values(":mine", s(release_str(Release::Claimed { by })))
                .expression_attribute_values(":waiting", s(release_str(Release::Waiting))),
            RunFlag::Released => u
                .update_expression("SET #r = :done")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#r", "rel")
                .expression_attribute_values(":done", s(release_str(Release::Released))),
            RunFlag::ClaimPlanning { at, until, by } => u
                .update_expression("SET #p = :until, #pb = :by")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(#p) OR #p <= :at OR #pb = :by)",
                )
                .expression_attribute_names("#p", "planUntil")
                .expression_attribute_names("#pb", "planBy")
                .expression_attribute_values(":by", s(format!("{by:032x}")))
                .expression_attribute_values(":until", s(lease_time(until)))
                .expression_attribute_values(":at", s(lease_time(at))),
            RunFlag::EndPlanning => u
                .update_expression("SET #p = :none")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#p", "planUntil")
                .expression_attribute_values(":none", s("")),
        };
        match u.send().await {
            Ok(_) => {
                self.meter.config_write(&Item::new(), 1);
                Ok(true)
            }
            Err(e) if is_condition_failure(&e) => {
                let exists = matches!(
                    flag,
                    RunFlag::ClaimRelease { .. } | RunFlag::ClaimPlanning { .. }
                ) && self
                    .client
                    .get_item()
                    .table_name(&self.tables.config)
                    .set_key(Some(key(keys::tenant_pk(t), keys::run_header_sk(run))))
                    .projection_expression("pk")
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| unavailable("read a run", e))?
                    .item
                    .is_some();
                if exists {
                    Ok(false)
                } else {
                    Err(StoreError::NotFound(format!("run {run}")))
                }
            }
            Err(e) => Err(unavailable("set a run flag", e)),
        }
    }

    async fn run_source(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(
                keys::tenant_pk(t),
                keys::run_source_sk(run, mapping),
            )))
            .send()
            .await
            .map_err(|e| unavailable("read a run's source", e))?;
        match out.item {
            Some(item) => {
                self.meter.config_read([&item]);
                Ok(Some(from_json(get_s(&item, "body")?)?))
            }
            None => Ok(None),
        }
    }
}

/// A run's header item: its body without chunks, its counters, its place in the runs index.
fn header_item(run: &SyncRun) -> Result<Item, StoreError> {
    let t = &run.tenant;
    let header = SyncRun {
        chunks: Vec::new(),
        ..run.clone()
    };
    let p = run.progress(None);
    let started = run
        .started_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut item = key(keys::tenant_pk(t), keys::run_header_sk(&run.id));
    item.insert("body".into(), s(to_json(&header)?));
    item.insert("chunks".into(), n(p.total));
    item.insert("open".into(), n(p.open));
    item.insert("copen".into(), n(p.creators_open));
    item.insert("ndef".into(), n(p.deferred));
    item.insert("rel".into(), s(release_str(run.release)));
    item.insert("queued".into(), AttributeValue::Bool(run.queued));
    item.insert("run".into(), s(run.id.as_str()));
    item.insert("gpk".into(), s(keys::runs_gpk(t)));
    item.insert("gsk".into(), s(keys::runs_gsk(&started, &run.id)));
    Ok(item)
}
