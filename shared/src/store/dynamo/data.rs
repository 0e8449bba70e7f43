//! Metric values and activity on the data table. Values and activity live in
//! partitions of their generation; every read first reads the integration's current generation.

use super::{
    delete_req, f, get_bool, get_day, get_n, get_s, key, key_of, keys, n, put_req, s, DynamoStore,
    Item,
};
use crate::domain::{Activity, ExportRow, MappingId, MetricValue, ObjectRef, Target, TenantId};
use crate::store::{ActivityOf, MetricInfo, SeriesPoint, StoreError};
use crate::sync::plan::Window;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

const VALUE: &str = "V";
const ACTIVITY: &str = "A";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn value_item(
    t: &TenantId,
    generation: u64,
    m: &MappingId,
    v: &MetricValue,
) -> Result<Item, StoreError> {
    let mut i = key(
        keys::object_pk(t, generation, &v.object),
        keys::value_sk(&v.metric, v.day, &v.app),
    );
    i.insert("gpk".into(), s(keys::data_gpk(t)));
    i.insert("gsk".into(), s(keys::data_gsk(m, generation, v.day, VALUE)));
    i.insert("rec".into(), s(VALUE));
    i.insert("gen".into(), n(generation));
    i.insert("mapping".into(), s(m.as_str()));
    i.insert("okind".into(), s(v.object.kind.as_str()));
    i.insert("oid".into(), s(v.object.id.clone()));
    i.insert("metric".into(), s(v.metric.clone()));
    i.insert("app".into(), s(v.app.clone()));
    i.insert("day".into(), s(keys::day(v.day)));
    i.insert("val".into(), f(v.value)?);
    Ok(i)
}

fn activity_item(
    t: &TenantId,
    generation: u64,
    m: &MappingId,
    a: &Activity,
) -> Result<Item, StoreError> {
    let mut i = key(
        keys::user_pk(t, generation, &a.end_user_id),
        keys::activity_sk(a.day, m),
    );
    i.insert("gpk".into(), s(keys::data_gpk(t)));
    i.insert(
        "gsk".into(),
        s(keys::data_gsk(m, generation, a.day, ACTIVITY)),
    );
    i.insert(
        "cpk".into(),
        s(keys::company_gpk(t, generation, &a.company_id)),
    );
    i.insert("csk".into(), s(keys::company_gsk(a.day, &a.end_user_id, m)));
    i.insert("rec".into(), s(ACTIVITY));
    i.insert("gen".into(), n(generation));
    i.insert("mapping".into(), s(m.as_str()));
    i.insert("user".into(), s(a.end_user_id.clone()));
    i.insert("company".into(), s(a.company_id.clone()));
    i.insert("label".into(), s(a.label.clone()));
    i.insert("day".into(), s(keys::day(a.day)));
    i.insert("events".into(), f(a.events)?);
    i.insert("minutes".into(), f(a.minutes)?);
    i.insert("passive".into(), AttributeValue::Bool(a.passive));
    Ok(i)
}

fn activity_from(i: &Item) -> Result<Activity, StoreError> {
    Ok(Activity {
        end_user_id: get_s(i, "user")?.to_string(),
        company_id: get_s(i, "company")?.to_string(),
        mapping_id: MappingId::parse(get_s(i, "mapping")?).map_err(corrupt)?,
        label: get_s(i, "label")?.to_string(),
        day: get_day(i, "day")?,
        events: get_n(i, "events")?,
        minutes: get_n(i, "minutes")?,
        passive: get_bool(i, "passive")?,
    })
}

fn export_row(t: &TenantId, i: &Item) -> Result<ExportRow, StoreError> {
    let day = get_day(i, "day")?;
    if get_s(i, "rec")? == VALUE {
        Ok(ExportRow {
            tenant: t.as_str().to_string(),
            record: "value".into(),
            object_type: get_s(i, "okind")?.to_string(),
            object_id: get_s(i, "oid")?.to_string(),
            metric: get_s(i, "metric")?.to_string(),
            app: get_s(i, "app")?.to_string(),
            day,
            value: get_n(i, "val")?,
        })
    } else {
        Ok(ExportRow {
            tenant: t.as_str().to_string(),
            record: if get_bool(i, "passive")? {
                "activity:passive".into()
            } else {
                "activity".into()
            },
            object_type: Target::EndUser.as_str().into(),
            object_id: get_s(i, "user")?.to_string(),
            metric: get_s(i, "mapping")?.to_string(),
            app: String::new(),
            day,
            value: get_n(i, "events")?,
        })
    }
}

impl DynamoStore {
    pub(super) fn data_query(
        &self,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client.query().table_name(&self.tables.data)
    }

    /// Keys (and generation) of a tenant's gsi1 items matching `condition` on `gsk`.
    async fn tenant_index_keys(
        &self,
        t: &TenantId,
        condition: Option<&str>,
        values: &[(&str, String)],
        filter_below: Option<u64>,
    ) -> Result<Vec<Item>, StoreError> {
        let condition = match condition {
            Some(c) => format!("gpk = :p AND {c}"),
            None => "gpk = :p".to_string(),
        };
        let mut q = self
            .data_query()
            .index_name("gsi1")
            .key_condition_expression(condition)
            .expression_attribute_values(":p", s(keys::data_gpk(t)))
            .projection_expression("pk, sk");
        for (k, v) in values {
            q = q.expression_attribute_values(*k, s(v.clone()));
        }
        if let Some(g) = filter_below {
            q = q
                .filter_expression("#g < :g")
                .expression_attribute_names("#g", "gen")
                .expression_attribute_values(":g", n(g));
        }
        Ok(self
            .query_all(q, "read the tenant index")
            .await?
            .iter()
            .map(key_of)
            .collect())
    }

    async fn delete_keys(&self, keys: Vec<Item>, what: &str) -> Result<u64, StoreError> {
        let count = keys.len() as u64;
        let requests = keys
            .into_iter()
            .map(delete_req)
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(&self.tables.data, requests, what).await?;
        Ok(count)
    }

    /// Check-then-write (see the module docs): refuse a stale generation, put the new items,
    /// delete the window's leftovers, and undo the puts if the generation moved meanwhile.
    pub(super) async fn replace_chunk_impl(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        values: &[MetricValue],
        activities: &[Activity],
    ) -> Result<(), StoreError> {
        if self.current_generation(t).await? != Some(generation) {
            return Err(StoreError::StaleGeneration(generation));
        }
        let mut new_items: BTreeMap<(String, String), Item> = BTreeMap::new();
        let items = values
            .iter()
            .map(|v| value_item(t, generation, mapping, v))
            .chain(
                activities
                    .iter()
                    .map(|a| activity_item(t, generation, mapping, a)),
            );
        for item in items {
            let item = item?;
            let k = (
                get_s(&item, "pk")?.to_string(),
                get_s(&item, "sk")?.to_string(),
            );
            new_items.insert(k, item);
        }
        let (lo, hi) = keys::window_range(mapping, generation, window.from, window.to);
        let existing = self
            .tenant_index_keys(
                t,
                Some("gsk BETWEEN :lo AND :hi"),
                &[(":lo", lo), (":hi", hi)],
                None,
            )
            .await?;
        let mut leftovers = Vec::new();
        for k in existing {
            let id = (get_s(&k, "pk")?.to_string(), get_s(&k, "sk")?.to_string());
            if !new_items.contains_key(&id) {
                leftovers.push(k);
            }
        }
        let written: Vec<Item> = new_items.values().map(key_of).collect();
        let mut requests = new_items
            .into_values()
            .map(put_req)
            .collect::<Result<Vec<_>, _>>()?;
        for k in leftovers {
            requests.push(delete_req(k)?);
        }
        self.batch_write(&self.tables.data, requests, "replace chunk")
            .await?;
        if self.current_generation(t).await? != Some(generation) {
            self.delete_keys(written, "undo a stale chunk").await?;
            return Err(StoreError::StaleGeneration(generation));
        }
        Ok(())
    }

    pub(super) async fn purge_below_generation_impl(
        &self,
        t: &TenantId,
        generation: u64,
    ) -> Result<u64, StoreError> {
        // The tenant's whole gsi1 partition, filtered: a purge follows a re-sync, which rewrites
        // the tenant anyway, so this read costs far less than the writes around it.
        let old = self
            .tenant_index_keys(t, None, &[], Some(generation))
            .await?;
        self.delete_keys(old, "purge older generations").await
    }

    pub(super) async fn delete_mapping_data_impl(
        &self,
        t: &TenantId,
        m: &MappingId,
    ) -> Result<u64, StoreError> {
        let mine = self
            .tenant_index_keys(
                t,
                Some("begins_with(gsk, :m)"),
                &[(":m", keys::mapping_gsk_prefix(m))],
                None,
            )
            .await?;
        self.delete_keys(mine, "delete mapping data").await
    }

    pub(super) async fn read_series_impl(
        &self,
        t: &TenantId,
        o: &ObjectRef,
        metric: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let Some(g) = self.current_generation(t).await? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = keys::value_range(metric, from, to);
        let q = self
            .data_query()
            .key_condition_expression("pk = :p AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":p", s(keys::object_pk(t, g, o)))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi));
        let mut out = self
            .query_all(q, "read series")
            .await?
            .iter()
            .map(|i| {
                Ok(SeriesPoint {
                    day: get_day(i, "day")?,
                    app: get_s(i, "app")?.to_string(),
                    value: get_n(i, "val")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| (a.day, &a.app).cmp(&(b.day, &b.app)));
        Ok(out)
    }

    pub(super) async fn list_metrics_impl(
        &self,
        t: &TenantId,
        o: &ObjectRef,
    ) -> Result<Vec<MetricInfo>, StoreError> {
        let Some(g) = self.current_generation(t).await? else {
            return Ok(Vec::new());
        };
        let q = self
            .data_query()
            .key_condition_expression("pk = :p AND begins_with(sk, :v)")
            .expression_attribute_values(":p", s(keys::object_pk(t, g, o)))
            .expression_attribute_values(":v", s("V#"))
            .projection_expression("#m, #a")
            .expression_attribute_names("#m", "metric")
            .expression_attribute_names("#a", "app");
        let set = self
            .query_all(q, "list metrics")
            .await?
            .iter()
            .map(|i| {
                Ok(MetricInfo {
                    metric: get_s(i, "metric")?.to_string(),
                    app: get_s(i, "app")?.to_string(),
                })
            })
            .collect::<Result<BTreeSet<_>, StoreError>>()?;
        Ok(set.into_iter().collect())
    }

    pub(super) async fn recent_activity_impl(
        &self,
        t: &TenantId,
        of: &ActivityOf,
        from: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let Some(g) = self.current_generation(t).await? else {
            return Ok(Vec::new());
        };
        let q = match of {
            ActivityOf::EndUser(id) => {
                let (lo, hi) = keys::activity_range(from);
                self.data_query()
                    .key_condition_expression("pk = :p AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":p", s(keys::user_pk(t, g, id)))
                    .expression_attribute_values(":lo", s(lo))
                    .expression_attribute_values(":hi", s(hi))
            }
            ActivityOf::Company(id) => self
                .data_query()
                .index_name("gsi2")
                .key_condition_expression("cpk = :p AND csk >= :lo")
                .expression_attribute_values(":p", s(keys::company_gpk(t, g, id)))
                .expression_attribute_values(":lo", s(keys::day(from))),
        };
        let mut out = self
            .query_all(q, "read activity")
            .await?
            .iter()
            .map(activity_from)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            b.day
                .cmp(&a.day)
                .then_with(|| a.end_user_id.cmp(&b.end_user_id))
                .then_with(|| a.mapping_id.cmp(&b.mapping_id))
        });
        out.truncate(limit);
        Ok(out)
    }

    async fn export_tenant(&self, t: &TenantId) -> Result<Vec<ExportRow>, StoreError> {
        let Some(g) = self.current_generation(t).await? else {
            return Ok(Vec::new());
        };
        let q = self
            .data_query()
            .index_name("gsi1")
            .key_condition_expression("gpk = :p")
            .filter_expression("#g = :g")
            .expression_attribute_names("#g", "gen")
            .expression_attribute_values(":p", s(keys::data_gpk(t)))
            .expression_attribute_values(":g", n(g));
        self.query_all(q, "export")
            .await?
            .iter()
            .map(|i| export_row(t, i))
            .collect()
    }

    pub(super) async fn export_impl(
        &self,
        t: Option<&TenantId>,
    ) -> Result<Vec<ExportRow>, StoreError> {
        let tenants = match t {
            Some(t) => vec![t.clone()],
            None => self.list_tenants_impl().await?,
        };
        let mut out = Vec::new();
        for t in &tenants {
            out.extend(self.export_tenant(t).await?);
        }
        crate::store::sort_export(&mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_carry_their_fields_and_round_trip() {
        let t = TenantId::parse("t#1").unwrap();
        let m = MappingId::parse("m/1").unwrap();
        let a = Activity {
            end_user_id: "acme|x:v#1".into(),
            company_id: "acme".into(),
            mapping_id: m.clone(),
            label: "Clicks".into(),
            day: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            events: 2.0,
            minutes: 0.5,
            passive: true,
        };
        let item = activity_item(&t, 3, &m, &a).unwrap();
        assert_eq!(activity_from(&item).unwrap(), a);
        let row = export_row(&t, &item).unwrap();
        assert_eq!(row.record, "activity:passive");
        assert_eq!(row.object_id, "acme|x:v#1");
        let v = MetricValue {
            object: ObjectRef {
                kind: Target::Company,
                id: "acme".into(),
            },
            metric: "Clicks".into(),
            app: "-323232".into(),
            day: a.day,
            value: 4.25,
        };
        let row = export_row(&t, &value_item(&t, 3, &m, &v).unwrap()).unwrap();
        assert_eq!(
            (row.object_id.as_str(), row.app.as_str(), row.value),
            ("acme", "-323232", 4.25)
        );
    }
}
