//! Configuration items on the config table: the integration (optimistic version), mappings and
//! cursors (conditional on their generation). Runs are in `runs.rs`.

use super::{
    from_json, get_n, get_s, is_condition_failure, key, keys, n, opt_s, s, to_json, unavailable,
    DynamoStore, Item,
};
use crate::domain::mapping::{LastError, SyncedRange};
use crate::domain::{
    DirectoryImport, ImportId, Integration, Mapping, MappingId, MappingState, RunId, TenantId,
};
use crate::store::ConfigStore;
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::NaiveDate;

impl DynamoStore {
    /// A config item, read strongly consistent.
    pub(super) async fn get_config_item(
        &self,
        pk: String,
        sk: String,
        what: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(what, e))?;
        Ok(out.item)
    }

    async fn get_body<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_config_item(pk, sk, what)
            .await?
            .map(|i| get_s(&i, "body").and_then(from_json))
            .transpose()
    }

    /// Puts `item` if the stored one is at `version` (0: none is stored); `what` names it in a
    /// conflict.
    pub(super) async fn put_versioned(
        &self,
        mut item: Item,
        version: u64,
        what: String,
    ) -> Result<(), StoreError> {
        // The write's own id: the same put resent by the SDK carries it, another put of the
        // same content does not (and stays a conflict).
        item.insert("wid".into(), s(uuid::Uuid::new_v4().simple().to_string()));
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.config)
            .set_item(Some(item.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(version))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            // The item as this put writes it: the put itself, sent again by the SDK after its
            // answer was lost (DynamoDB returns the item that failed the condition).
            Err(e) if super::own_put(&e, &item) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict(format!(
                "{what} is not at version {version}"
            ))),
            Err(e) => Err(unavailable("put a versioned item", e)),
        }
    }
}

#[async_trait]
impl ConfigStore for DynamoStore {
    async fn get_integration(&self, t: &TenantId) -> Result<Option<Integration>, StoreError> {
        self.get_body(
            keys::tenant_pk(t),
            keys::INTEGRATION_SK.into(),
            "get integration",
        )
        .await
    }

    async fn put_integration(&self, i: &Integration) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let mut item = key(keys::tenant_pk(&i.tenant), keys::INTEGRATION_SK);
        item.insert("body".into(), s(to_json(&stored)?));
        item.insert("version".into(), n(stored.version));
        item.insert("generation".into(), n(stored.generation));
        item.insert("published".into(), n(stored.read_generation()));
        if !stored.own.is_empty() {
            item.insert("own".into(), s(to_json(&stored.own)?));
        }
        item.insert("tenant".into(), s(i.tenant.as_str()));
        item.insert("gpk".into(), s(keys::TENANTS_GPK));
        item.insert("gsk".into(), s(keys::tenants_gsk(&i.tenant)));
        let what = format!("the integration of {}", i.tenant);
        self.put_versioned(item, i.version, what).await?;
        Ok(stored.version)
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
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
                TenantId::parse(get_s(i, "tenant")?)
                    .map_err(|e| StoreError::corrupt_from("a stored tenant id", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort();
        Ok(out)
    }

    async fn put_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
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

    async fn get_mapping(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<Mapping>, StoreError> {
        self.get_body(keys::tenant_pk(t), keys::mapping_sk(id), "get mapping")
            .await
    }

    async fn list_mappings(&self, t: &TenantId) -> Result<Vec<Mapping>, StoreError> {
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

    /// Deletes the mapping and its state, then its data.
    async fn delete_mapping(&self, t: &TenantId, id: &MappingId) -> Result<bool, StoreError> {
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

    async fn get_mapping_state(
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
            synced_from: i
                .contains_key("synced_from")
                .then(|| super::get_day(&i, "synced_from"))
                .transpose()?,
            last_run: opt_s(&i, "last_run")
                .map(|r| {
                    RunId::parse(&r).map_err(|e| StoreError::corrupt_from("a stored run id", e))
                })
                .transpose()?,
            last_successful_run: opt_s(&i, "last_ok_run")
                .map(|r| {
                    RunId::parse(&r).map_err(|e| StoreError::corrupt_from("a stored run id", e))
                })
                .transpose()?,
            last_error: opt_s(&i, "last_error")
                .map(|e| from_json::<LastError>(&e))
                .transpose()?,
            previous: opt_s(&i, "previous")
                .map(|p| from_json::<SyncedRange>(&p))
                .transpose()?,
        }))
    }

    async fn reset_mapping_state_keeping(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        previous: Option<SyncedRange>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#ld", "last_day")
            .expression_attribute_names("#sf", "synced_from")
            .expression_attribute_names("#pv", "previous")
            .expression_attribute_values(":g", n(generation));
        let update = match previous {
            Some(p) => update
                .update_expression("SET #g = :g, #pv = :pv REMOVE #ld, #sf")
                .expression_attribute_values(":pv", s(to_json(&p)?)),
            None => update.update_expression("SET #g = :g REMOVE #ld, #sf, #pv"),
        };
        update
            .send()
            .await
            .map_err(|e| unavailable("reset mapping state", e))?;
        Ok(())
    }

    async fn set_synced_from(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .update_expression("SET #sf = :d")
            .condition_expression("#g = :g")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#sf", "synced_from")
            .expression_attribute_values(":g", n(generation))
            .expression_attribute_values(":d", s(keys::day(day)))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("set synced range", e)),
        }
    }

    /// Moves the cursor forward only, and only within `generation` (two conditional updates:
    /// the first moves the day if it is ahead, the second records a success when it is not, or
    /// only checks the generation).
    async fn advance_cursor(
        &self,
        t: &TenantId,
        id: &MappingId,
        generation: u64,
        to: NaiveDate,
        succeeded: Option<&RunId>,
    ) -> Result<(), StoreError> {
        let k = key(keys::tenant_pk(t), keys::state_sk(id));
        // A success records its run and clears the last error.
        let (success, names): (&str, &[(&str, &str)]) = match succeeded {
            Some(_) => (
                ", #ok = :r REMOVE #le",
                &[("#ok", "last_ok_run"), ("#le", "last_error")],
            ),
            None => ("", &[]),
        };
        let mut forward = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k.clone()))
            .update_expression(format!("SET #ld = :d{success}"))
            .condition_expression("#g = :g AND (attribute_not_exists(#ld) OR #ld < :d)")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_names("#ld", "last_day")
            .expression_attribute_values(":g", n(generation))
            .expression_attribute_values(":d", s(keys::day(to)));
        let mut same_gen = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(k))
            .update_expression(format!("SET #g = :g{success}"))
            .condition_expression("#g = :g")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_values(":g", n(generation));
        for (p, name) in names {
            forward = forward.expression_attribute_names(*p, *name);
            same_gen = same_gen.expression_attribute_names(*p, *name);
        }
        if let Some(run) = succeeded {
            forward = forward.expression_attribute_values(":r", s(run.as_str()));
            same_gen = same_gen.expression_attribute_values(":r", s(run.as_str()));
        }
        match forward.send().await {
            Ok(_) => return Ok(()),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(unavailable("advance cursor", e)),
        }
        match same_gen.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict(format!(
                "mapping {id} is not at generation {generation}"
            ))),
            Err(e) => Err(unavailable("advance cursor", e)),
        }
    }

    async fn set_last_run(
        &self,
        t: &TenantId,
        id: &MappingId,
        run: &RunId,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.config)
            .set_key(Some(key(keys::tenant_pk(t), keys::state_sk(id))))
            .update_expression("SET #lr = :r")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#lr", "last_run")
            .expression_attribute_values(":r", s(run.as_str()))
            .send()
            .await;
        match out {
            // No state yet: like the embedded store, there is nothing to annotate.
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("set last run", e)),
        }
    }

    async fn set_mapping_error(
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

    async fn put_import(&self, i: &DirectoryImport) -> Result<u64, StoreError> {
        let mut stored = i.clone();
        stored.version = i.version + 1;
        let mut item = key(keys::tenant_pk(&i.tenant), keys::import_sk(&i.id));
        item.insert("body".into(), s(to_json(&stored)?));
        item.insert("version".into(), n(stored.version));
        self.put_versioned(item, i.version, format!("import {}", i.id))
            .await?;
        Ok(stored.version)
    }

    async fn get_import(
        &self,
        t: &TenantId,
        id: &ImportId,
    ) -> Result<Option<DirectoryImport>, StoreError> {
        self.get_body(keys::tenant_pk(t), keys::import_sk(id), "get import")
            .await
    }

    /// A tenant keeps few imports: all are read, then sorted.
    async fn list_imports(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<DirectoryImport>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.tables.config)
            .key_condition_expression("pk = :p AND begins_with(sk, :s)")
            .expression_attribute_values(":p", s(keys::tenant_pk(t)))
            .expression_attribute_values(":s", s(keys::IMPORT_PREFIX));
        let mut out = self
            .query_all(q, "list imports")
            .await?
            .iter()
            .map(|i| get_s(i, "body").and_then(from_json::<DirectoryImport>))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        out.truncate(limit);
        Ok(out)
    }
}
