//! Reads of metric values and activity on the data table: a series, an object's metrics, recent
//! activity (an end user's partition, or a company's through gsi2), and the export. Every read
//! first reads the generations the integration shows (usually one; a mapping's rebuild once
//! published shows its own) and queries only their partitions, keeping the records of the
//! mappings that show each.

use super::data::{activity_from, corrupt};
use super::{get_day, get_n, get_s, keys, s, DynamoStore, Item};
use crate::domain::{Activity, ExportRow, Generations, MappingId, ObjectRef, TenantId};
use crate::store::{
    newest_first, ActivityOf, ConfigStore, MetricInfo, ReadStore, SeriesPoint, StoreError,
};
use async_trait::async_trait;
use chrono::NaiveDate;
use std::collections::BTreeSet;

/// Whether item `i` (a value or an activity record of generation `g`) is one reads show.
fn shown(live: &Generations, g: u64, i: &Item) -> Result<bool, StoreError> {
    let m = MappingId::parse(get_s(i, "mapping")?).map_err(corrupt)?;
    Ok(live.shows(&m) == g)
}

#[async_trait]
impl ReadStore for DynamoStore {
    async fn read_series(
        &self,
        t: &TenantId,
        o: &ObjectRef,
        metric: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let Some(live) = self.generations(t).await? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = keys::value_range(metric, from, to);
        let mut out = Vec::new();
        for g in live.shown() {
            let q = self
                .data_query()
                .key_condition_expression("pk = :p AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":p", s(keys::object_pk(t, g, o)))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(hi.clone()));
            for i in self.query_all(q, "read series").await? {
                if shown(&live, g, &i)? {
                    out.push(SeriesPoint {
                        day: get_day(&i, "day")?,
                        app: get_s(&i, "app")?.to_string(),
                        value: get_n(&i, "val")?,
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.day, &a.app).cmp(&(b.day, &b.app)));
        Ok(out)
    }

    async fn list_metrics(
        &self,
        t: &TenantId,
        o: &ObjectRef,
    ) -> Result<Vec<MetricInfo>, StoreError> {
        let Some(live) = self.generations(t).await? else {
            return Ok(Vec::new());
        };
        let mut set = BTreeSet::new();
        for g in live.shown() {
            let q = self
                .data_query()
                .key_condition_expression("pk = :p AND begins_with(sk, :v)")
                .expression_attribute_values(":p", s(keys::object_pk(t, g, o)))
                .expression_attribute_values(":v", s("V#"))
                .projection_expression("#m, #a, #mp")
                .expression_attribute_names("#m", "metric")
                .expression_attribute_names("#a", "app")
                .expression_attribute_names("#mp", "mapping");
            for i in self.query_all(q, "list metrics").await? {
                if shown(&live, g, &i)? {
                    set.insert(MetricInfo {
                        metric: get_s(&i, "metric")?.to_string(),
                        app: get_s(&i, "app")?.to_string(),
                    });
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    async fn recent_activity(
        &self,
        t: &TenantId,
        of: &ActivityOf,
        from: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let Some(live) = self.generations(t).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for g in live.shown() {
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
            for i in self.query_all(q, "read activity").await? {
                if shown(&live, g, &i)? {
                    out.push(activity_from(&i)?);
                }
            }
        }
        newest_first(&mut out, limit);
        Ok(out)
    }

    async fn export(&self, t: Option<&TenantId>) -> Result<Vec<ExportRow>, StoreError> {
        let tenants = match t {
            Some(t) => vec![t.clone()],
            None => self.list_tenants().await?,
        };
        let mut out = Vec::new();
        for t in &tenants {
            out.extend(self.export_tenant(t).await?);
        }
        crate::store::sort_export(&mut out);
        Ok(out)
    }
}
