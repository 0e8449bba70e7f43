//! The items of a run on the config table (see `runs.rs` for their keys): how a chunk, a
//! header and their statuses are encoded, the update and transaction helpers, and the reads
//! that [`RunStore`](crate::store::RunStore)'s methods share.

use super::{
    from_json, get_n, get_s, key, keys, n, opt_s, s, to_json, unavailable, DynamoStore, Item,
};
use crate::domain::{ChunkRecord, ChunkStatus, MappingId, Release, RunId, SyncRun, TenantId};
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

pub(super) fn status_str(st: &ChunkStatus) -> &'static str {
    match st {
        ChunkStatus::Pending => "pending",
        ChunkStatus::Done => "done",
        ChunkStatus::Failed => "failed",
        ChunkStatus::Superseded => "superseded",
    }
}

pub(super) fn parse_status(v: &str) -> Result<ChunkStatus, StoreError> {
    Ok(match v {
        "pending" => ChunkStatus::Pending,
        "done" => ChunkStatus::Done,
        "failed" => ChunkStatus::Failed,
        "superseded" => ChunkStatus::Superseded,
        other => return Err(StoreError::corrupt(format!("unknown chunk status {other}"))),
    })
}

pub(super) fn release_str(r: Release) -> String {
    match r {
        Release::Waiting => "waiting".into(),
        Release::Claimed { by } => format!("claimed:{by}"),
        Release::Released => "released".into(),
    }
}

pub(super) fn parse_release(v: &str) -> Result<Release, StoreError> {
    match v {
        "waiting" => Ok(Release::Waiting),
        "released" => Ok(Release::Released),
        other => other
            .strip_prefix("claimed:")
            .and_then(|by| by.parse().ok())
            .map(|by| Release::Claimed { by })
            .ok_or_else(|| StoreError::corrupt(format!("unknown release state {other}"))),
    }
}

pub(super) fn chunk_item(
    t: &TenantId,
    run: &RunId,
    index: usize,
    c: &ChunkRecord,
) -> Result<Item, StoreError> {
    let mut item = key(keys::tenant_pk(t), keys::run_chunk_sk(run, index));
    item.insert("index".into(), n(index as u64));
    item.insert("mapping".into(), s(c.mapping_id.as_str()));
    item.insert("from".into(), s(keys::day(c.from)));
    item.insert("to".into(), s(keys::day(c.to)));
    item.insert("status".into(), s(status_str(&c.status)));
    item.insert("attempts".into(), n(u64::from(c.attempts)));
    item.insert("retries".into(), n(u64::from(c.retries)));
    item.insert("stats".into(), s(to_json(&c.stats)?));
    if let Some(e) = &c.error {
        item.insert("error".into(), s(e.clone()));
    }
    if c.deferred {
        item.insert("deferred".into(), AttributeValue::Bool(true));
    }
    if let Some(at) = c.updated_at {
        item.insert("updatedAt".into(), s(lease_time(at)));
    }
    if let Some(at) = c.leased_until {
        item.insert("leasedUntil".into(), s(lease_time(at)));
    }
    if let Some(d) = &c.delivery {
        item.insert("delivery".into(), s(d.clone()));
    }
    if let Some(d) = &c.leased_by {
        item.insert("leasedBy".into(), s(d.clone()));
    }
    if let Some(lead) = c.share {
        item.insert("share".into(), n(lead as u64));
    }
    Ok(item)
}

pub(super) fn chunk_from(item: &Item) -> Result<(usize, ChunkRecord), StoreError> {
    let index = get_n::<usize>(item, "index")?;
    let c = ChunkRecord {
        mapping_id: MappingId::parse(get_s(item, "mapping")?)
            .map_err(|e| StoreError::corrupt_from("a stored mapping id", e))?,
        from: super::get_day(item, "from")?,
        to: super::get_day(item, "to")?,
        status: parse_status(get_s(item, "status")?)?,
        stats: from_json(get_s(item, "stats")?)?,
        attempts: get_n(item, "attempts")?,
        retries: if item.contains_key("retries") {
            get_n(item, "retries")?
        } else {
            0
        },
        error: opt_s(item, "error").filter(|e| !e.is_empty()),
        deferred: matches!(item.get("deferred"), Some(AttributeValue::Bool(true))),
        updated_at: parse_time(item, "updatedAt")?,
        leased_until: parse_time(item, "leasedUntil")?,
        delivery: opt_s(item, "delivery"),
        leased_by: opt_s(item, "leasedBy"),
        share: if item.contains_key("share") {
            Some(get_n::<usize>(item, "share")?)
        } else {
            None
        },
    };
    Ok((index, c))
}

/// Times on chunk items: RFC 3339 in UTC with a fixed number of digits, so that they compare as
/// strings in conditions (`leasedUntil <= :at`).
pub(super) fn lease_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(super) fn parse_time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    opt_s(item, name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| StoreError::corrupt_from(format!("chunk {name}"), e))
        })
        .transpose()
}

pub(super) fn chunk_not_found(run: &RunId, index: usize) -> StoreError {
    StoreError::NotFound(format!("chunk {index} of run {run}"))
}

pub(super) fn counter(i: &Item, name: &str) -> Result<u64, StoreError> {
    if i.contains_key(name) {
        get_n(i, name)
    } else {
        Ok(0)
    }
}

/// A run's header item as the run (no chunks).
pub(super) fn header_from(item: &Item) -> Result<SyncRun, StoreError> {
    let mut run: SyncRun = from_json(get_s(item, "body")?)?;
    if item.contains_key("rel") {
        run.release = parse_release(get_s(item, "rel")?)?;
    }
    if let Some(AttributeValue::Bool(q)) = item.get("queued") {
        run.queued = *q;
    }
    Ok(run)
}

pub(super) fn update(
    table: &str,
    k: Item,
    expression: &str,
    condition: &str,
    names: &[(&str, &str)],
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut u = Update::builder()
        .table_name(table)
        .set_key(Some(k))
        .update_expression(expression)
        .condition_expression(condition);
    for (p, name) in names {
        u = u.expression_attribute_names(*p, *name);
    }
    for (p, v) in values {
        u = u.expression_attribute_values(p, v);
    }
    let u = u
        .build()
        .map_err(|e| StoreError::unavailable_from("building an update", e))?;
    Ok(TransactWriteItem::builder().update(u).build())
}

impl DynamoStore {
    pub(super) async fn get_chunk(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
    ) -> Result<ChunkRecord, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(
                keys::tenant_pk(t),
                keys::run_chunk_sk(run, index),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read chunk", e))?;
        let item = out.item.ok_or_else(|| chunk_not_found(run, index))?;
        self.meter.config_read([&item]);
        Ok(chunk_from(&item)?.1)
    }

    /// The header and the mapping's counters items: one strongly consistent BatchGetItem (keys
    /// DynamoDB leaves unprocessed are sent again).
    pub(super) async fn header_and_mapping(
        &self,
        t: &TenantId,
        run: &RunId,
        mapping: &MappingId,
    ) -> Result<(Option<Item>, Option<Item>), StoreError> {
        let pk = keys::tenant_pk(t);
        let header_sk = keys::run_header_sk(run);
        let wanted = vec![
            key(pk.clone(), header_sk.clone()),
            key(pk, keys::run_mapping_sk(run, mapping)),
        ];
        let items = self
            .batch_get_metered(&self.tables.config, wanted, true, "read run progress", true)
            .await?;
        let (header, mine): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|i| get_s(i, "sk").is_ok_and(|k| k == header_sk));
        Ok((header.into_iter().next(), mine.into_iter().next()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_statuses_match_their_serde_names() {
        for st in [
            ChunkStatus::Pending,
            ChunkStatus::Done,
            ChunkStatus::Failed,
            ChunkStatus::Superseded,
        ] {
            let serde = serde_json::to_value(&st).unwrap();
            assert_eq!(serde.as_str(), Some(status_str(&st)));
            assert_eq!(parse_status(status_str(&st)).unwrap(), st);
        }
    }

    #[test]
    fn release_states_round_trip() {
        for r in [
            Release::Waiting,
            Release::Claimed { by: 0 },
            Release::Claimed { by: 1306 },
            Release::Released,
        ] {
            assert_eq!(parse_release(&release_str(r)).unwrap(), r);
        }
        assert!(parse_release("claimed:x").is_err());
        assert!(parse_release("").is_err());
    }
}
