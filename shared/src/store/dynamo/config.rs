//! Configuration items on the config table: the integration (optimistic version), mappings,
//! cursors (conditional on their generation) and runs (a header item plus one item per chunk,
//! so that concurrent workers update their own chunk without rewriting the run).

use super::{
    from_json, get_n, get_s, is_condition_failure, key, keys, n, opt_s, put_req, s, to_json,
    unavailable, DynamoStore, Item,
};
use crate::domain::mapping::LastError;
use crate::domain::{
    ChunkOutcome, ChunkRecord, ChunkStatus, Integration, Mapping, MappingId, MappingState, RunId,
    SyncRun, TenantId,
};
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::NaiveDate;

pub(super) fn status_str(st: &ChunkStatus) -> &'static str {
    match st {
        ChunkStatus::Pending => "pending",
        ChunkStatus::Done => "done",
        ChunkStatus::Failed => "failed",
        ChunkStatus::Superseded => "superseded",
    }
}

fn parse_status(v: &str) -> Result<ChunkStatus, StoreError> {
    Ok(match v {
        "pending" => ChunkStatus::Pending,
        "done" => ChunkStatus::Done,
        "failed" => ChunkStatus::Failed,
        "superseded" => ChunkStatus::Superseded,
        other => return Err(StoreError::Corrupt(format!("unknown chunk status {other}"))),
    })
}

fn chunk_item(
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
    item.insert("stats".into(), s(to_json(&c.stats)?));
    if let Some(e) = &c.error {
        item.insert("error".into(), s(e.clone()));
    }
    if c.deferred {
        item.insert("deferred".into(), AttributeValue::Bool(true));
    }
    if let Some(at) = c.updated_at {
        item.insert("updatedAt".into(), s(at.to_rfc3339()));
    }
    Ok(item)
}

fn chunk_from(item: &Item) -> Result<(usize, ChunkRecord), StoreError> {
    let index = get_n::<usize>(item, "index")?;
    let c = ChunkRecord {
        mapping_id: MappingId::parse(get_s(item, "mapping")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        from: super::get_day(item, "from")?,
        to: super::get_day(item, "to")?,
        status: parse_status(get_s(item, "status")?)?,
        stats: from_json(get_s(item, "stats")?)?,
        attempts: get_n(item, "attempts")?,
        error: opt_s(item, "error"),
        deferred: matches!(item.get("deferred"), Some(AttributeValue::Bool(true))),
        updated_at: opt_s(item, "updatedAt")
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(&v)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .map_err(|e| StoreError::Corrupt(format!("chunk updatedAt: {e}")))
            })
            .transpose()?,
    };
    Ok((index, c))
}

impl DynamoStore {
    async fn get_body<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(what, e))?;
        out.item
            .map(|i| get_s(&i, "body").and_then(from_json))
            .transpose()
    }

    pub(super) async fn get_integration_impl(
        &self,
        t: &TenantId,
    ) -> Result<Option<Integration>, StoreError> {
        self.get_body(
            keys::tenant_pk(t),
            keys::INTEGRATION_SK.into(),
            "get integration",
        )
        .await
    }

    pub(super) async fn put_integration_impl(&self, i: &Integration) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let mut item = key(keys::tenant_pk(&i.tenant), keys::INTEGRATION_SK);
        item.insert("body".into(), s(to_json(&stored)?));
        item.insert("version".into(), n(stored.version));
        item.insert("generation".into(), n(stored.generation));
        item.insert("tenant".into(), s(i.tenant.as_str()));
        item.insert("gpk".into(), s(keys::TENANTS_GPK));
        item.insert("gsk".into(), s(keys::tenants_gsk(&i.tenant)));
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.config)
            .set_item(Some(item));
        let put = if i.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(i.version))
        };
        match put.send().await {
            Ok(_) => Ok(stored.version),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict(format!(
                "the integration of {} is not at version {}",
                i.tenant, i.version
            ))),
            Err(e) => Err(unavailable("put integration", e)),
        }
    }

    pub(super) async fn list_tenants_impl(&self) -> Result<Vec<TenantId>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.tables.config)
            .index_name("gsi1")
            .key_condition_expression("gpk = :p")
            .expression_attribute_values(":p", s(keys::TENANTS_GPK));
        let mut out = self
            .query_all(q, "list tenants")
            .await?
            .iter()
            .map(|i| {
                TenantId::parse(get_s(i, "tenant")?).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort();
        Ok(out)
    }

    pub(super) async fn put_mapping_impl(&self, m: &Mapping) -> Result<(), StoreError> {
        let mut item = key(keys::tenant_pk(&m.tenant), keys::mapping_sk(&m.id));
        item.insert("body".into(), s(to_json(m)?));
        self.client
            .put_item()
            .table_name(&self.tables.config)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("put mapping", e))?;
        Ok(())
    }

    pub(super) async fn get_mapping_impl(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<Mapping>, StoreError> {
        self.get_body(keys::tenant_pk(t), keys::mapping_sk(id), "get mapping")
            .await
    }

    pub(super) async fn list_mappings_impl(
        &self,
        t: &TenantId,
    ) -> Result<Vec<Mapping>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.tables.config)
            .key_condition_expression("pk = :p AND begins_with(sk, :m)")
            .expression_attribute_values(":p", s(keys::tenant_pk(t)))
            .expression_attribute_values(":m", s(keys::MAPPING_PREFIX))
            .consistent_read(true);
        let mut out = self
            .query_all(q, "list mappings")
            .await?
            .iter()
            .map(|i| get_s(i, "body").and_then(from_json::<Mapping>))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Deletes the mapping and its state; the caller deletes its data.
    pub(super) async fn delete_mapping_impl(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::mapping_sk(id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("delete mapping", e))?;
        self.client
            .delete_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .send()
            .await
            .map_err(|e| unavailable("delete mapping state", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    pub(super) async fn get_mapping_state_impl(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<MappingState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get mapping state", e))?;
        let Some(i) = out.item else { return Ok(None) };
        Ok(Some(MappingState {
            generation: get_n(&i, "generation")?,
            last_synced_day: i
                .contains_key("last_day")
                .then(|| super::get_day(&i, "last_day"))
                .transpose()?,
            last_run: opt_s(&i, "last_run")
                .map(|r| RunId::parse(&r).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()?,
            last_error: opt_s(&i, "last_error")
                .map(|e| from_json::<LastError>(&e))
                .transpose()?,
        }))
    }

    pub(super) async fn reset_mapping_state_impl(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .update_expression("SET #g = :g REMOVE #ld")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#ld", "last_day")
            .expression_attribute_values(":g", n(generation))
            .send()
            .await
            .map_err(|e| unavailable("reset mapping state", e))?;
        Ok(())
    }

    /// Moves the cursor forward only, and only within `generation` (two conditional updates:
    /// the first moves the day if it is ahead, the second records the run when it is not).
    pub(super) async fn advance_cursor_impl(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        to: NaiveDate,
        run: &RunId,
    ) -> Result<(), StoreError> {
        let k = key(keys::tenant_pk(t), keys::state_sk(id));
        let forward = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k.clone()))
            .update_expression("SET #ld = :d, #lr = :r REMOVE #le")
            .condition_expression("#g = :g AND (attribute_not_exists(#ld) OR #ld < :d)")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#ld", "last_day")
            .expression_attribute_names("#lr", "last_run")
            .expression_attribute_names("#le", "last_error")
            .expression_attribute_values(":g", n(generation))
            .expression_attribute_values(":d", s(keys::day(to)))
            .expression_attribute_values(":r", s(run.as_str()))
            .send()
            .await;
        match forward {
            Ok(_) => return Ok(()),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(unavailable("advance cursor", e)),
        }
        let same_gen = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k))
            .update_expression("SET #lr = :r REMOVE #le")
            .condition_expression("#g = :g")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#lr", "last_run")
            .expression_attribute_names("#le", "last_error")
            .expression_attribute_values(":g", n(generation))
            .expression_attribute_values(":r", s(run.as_str()))
            .send()
            .await;
        match same_gen {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict(format!(
                "mapping {id} is not at generation {generation}"
            ))),
            Err(e) => Err(unavailable("advance cursor", e)),
        }
    }

    pub(super) async fn set_mapping_error_impl(
        &self,
        t: &TenantId,
        id: &MappingId,
        error: Option<LastError>,
    ) -> Result<(), StoreError> {
        let u = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#le", "last_error");
        let u = match &error {
            Some(e) => u
                .update_expression("SET #le = :e")
                .expression_attribute_values(":e", s(to_json(e)?)),
            None => u.update_expression("REMOVE #le"),
        };
        match u.send().await {
            // No state yet: like the embedded store, there is nothing to annotate.
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("set mapping error", e)),
        }
    }

    pub(super) async fn put_run_impl(&self, run: &SyncRun) -> Result<(), StoreError> {
        let header = SyncRun {
            chunks: Vec::new(),
            ..run.clone()
        };
        let started = run
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut item = key(keys::tenant_pk(&run.tenant), keys::run_header_sk(&run.id));
        item.insert("body".into(), s(to_json(&header)?));
        item.insert("chunks".into(), n(run.chunks.len() as u64));
        item.insert("run".into(), s(run.id.as_str()));
        item.insert("gpk".into(), s(keys::runs_gpk(&run.tenant)));
        item.insert("gsk".into(), s(keys::runs_gsk(&started, &run.id)));
        let mut requests = vec![put_req(item)?];
        for (i, c) in run.chunks.iter().enumerate() {
            requests.push(put_req(chunk_item(&run.tenant, &run.id, i, c)?)?);
        }
        self.batch_write(&self.tables.config, requests, "put run")
            .await
    }

    pub(super) async fn get_run_impl(
        &self,
        t: &TenantId,
        id: &RunId,
    ) -> Result<Option<SyncRun>, StoreError> {
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
        let mut run: SyncRun = from_json(get_s(header, "body")?)?;
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
            .map(|(i, c)| c.ok_or_else(|| StoreError::Corrupt(format!("run {id} lacks chunk {i}"))))
            .collect::<Result<_, _>>()?;
        Ok(Some(run))
    }

    pub(super) async fn list_runs_impl(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
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
            let id =
                RunId::parse(get_s(&i, "run")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let Some(r) = self.get_run_impl(t, &id).await? {
                runs.push(r);
            }
        }
        Ok(runs)
    }

    /// Counts the attempt and records the outcome, unless the chunk is already done (a
    /// redelivered message that fails afterwards does not undo "done").
    pub(super) async fn update_chunk_impl(
        &self,
        t: &TenantId,
        run: &RunId,
        index: usize,
        outcome: &ChunkOutcome,
    ) -> Result<SyncRun, StoreError> {
        let (status, stats, error) = (&outcome.status, &outcome.stats, &outcome.error);
        let at = s(outcome.at.to_rfc3339());
        let k = key(keys::tenant_pk(t), keys::run_chunk_sk(run, index));
        let u = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k.clone()))
            .condition_expression("attribute_exists(pk) AND #st <> :done")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#a", "attempts")
            .expression_attribute_names("#sx", "stats")
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_values(":at", at.clone())
            .expression_attribute_values(":st", s(status_str(status)))
            .expression_attribute_values(":done", s(status_str(&ChunkStatus::Done)))
            .expression_attribute_values(":stats", s(to_json(stats)?))
            .expression_attribute_values(":one", n(1));
        let u = match error {
            Some(e) => u
                .update_expression("SET #st = :st, #sx = :stats, #e = :e, #u = :at ADD #a :one")
                .expression_attribute_names("#e", "error")
                .expression_attribute_values(":e", s(e.clone())),
            None => u
                .update_expression("SET #st = :st, #sx = :stats, #u = :at REMOVE #e ADD #a :one")
                .expression_attribute_names("#e", "error"),
        };
        match u.send().await {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => {
                let count = self
                    .client
                    .update_item()
                    .table_name(&self.tables.config)
                    .set_key(Some(k))
                    .update_expression("SET #u = :at ADD #a :one")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_names("#a", "attempts")
                    .expression_attribute_names("#u", "updatedAt")
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":at", at)
                    .send()
                    .await;
                match count {
                    Ok(_) => {}
                    Err(e) if is_condition_failure(&e) => {
                        return Err(StoreError::NotFound(format!("chunk {index} of run {run}")))
                    }
                    Err(e) => return Err(unavailable("update chunk", e)),
                }
            }
            Err(e) => return Err(unavailable("update chunk", e)),
        }
        self.get_run_impl(t, run)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {run}")))
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
}
