//! Writes of metric values and activity on the data table, through the manifests (see `mod.rs`):
//! a chunk's replace, the purge of older generations, a mapping's deletion. Values and activity
//! live in partitions of their generation. Their reads are in `reads.rs`.

use super::manifest::{Manifest, ValueKey};
use super::manifest_items::{item_keys, Scope, MAX_MANIFEST_CONFLICTS};
use super::{
    delete_req, f, get_bool, get_day, get_n, get_s, is_condition_failure, key, key_of, keys, n,
    put_req, s, unavailable, DynamoStore, Item,
};
use crate::domain::Window;
use crate::domain::{Activity, ExportRow, Generations, MappingId, MetricValue, Target, TenantId};
use crate::store::DataStore;
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

pub(super) const VALUE: &str = "V";
const ACTIVITY: &str = "A";

pub(super) fn corrupt(e: impl Into<crate::error::Cause>) -> StoreError {
    StoreError::corrupt_from("a stored item does not decode", e)
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

pub(super) fn activity_from(i: &Item) -> Result<Activity, StoreError> {
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

    pub(super) async fn delete_keys(&self, keys: Vec<Item>, what: &str) -> Result<u64, StoreError> {
        let count = keys.len() as u64;
        let requests = keys
            .into_iter()
            .map(delete_req)
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(&self.tables.data, requests, what).await?;
        Ok(count)
    }

    // ---- manifests (see the module docs and `manifest.rs`) ----

    /// The stored manifests of `days` (strongly consistent); an absent one is version 0, empty.
    /// Deletes every item the manifests of `scope` list, one manifest after another: its
    /// items, then its head (only if no one wrote it meanwhile, else it is read again in the
    /// next round), then its parts. What is deleted stays deleted, so a purge cut off (a
    /// Lambda timeout, a crash) and run again goes on from the manifests left, never from the
    /// top. Returns how many items were listed.
    async fn delete_by_manifests(&self, t: &TenantId, scope: Scope<'_>) -> Result<u64, StoreError> {
        let mut count = 0;
        for _ in 0..MAX_MANIFEST_CONFLICTS {
            let manifests = self.list_manifests(t, scope, false).await?;
            if manifests.is_empty() {
                // Parts whose head is gone (a writer that lost a race or crashed).
                let stray: Vec<Item> = self
                    .query_manifests(t, &scope)
                    .await?
                    .iter()
                    .map(key_of)
                    .collect();
                self.delete_keys(stray, "delete stray manifest parts")
                    .await?;
                return Ok(count);
            }
            let total = manifests.len();
            for (done, (h, stored)) in manifests.iter().enumerate() {
                let items = h
                    .item_keys_of(t, &stored.manifest)?
                    .into_iter()
                    .map(|(pk, sk)| key(pk, sk))
                    .collect();
                self.delete_keys(items, "delete listed items").await?;
                crate::stall::point("purge-items-deleted").await;
                let removed = self
                    .client
                    .delete_item()
                    .table_name(&self.tables.data)
                    .set_key(Some(key(keys::manifests_pk(t), h.sk.clone())))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "ver")
                    .expression_attribute_values(":v", n(h.ver))
                    .send()
                    .await;
                match removed {
                    Ok(_) => {
                        self.meter.delete();
                        count += stored.manifest.len() as u64;
                        let parts = h.part_keys(&keys::manifests_pk(t));
                        self.delete_keys(parts, "delete manifest parts").await?;
                    }
                    // Written meanwhile: read and deleted again in the next round.
                    Err(e) if is_condition_failure(&e) => {}
                    Err(e) => return Err(unavailable("delete a manifest", e)),
                }
                if (done + 1) % 50 == 0 {
                    tracing::info!(tenant = %t, manifests = done + 1, of = total, items = count, "purging");
                }
            }
        }
        Err(StoreError::unavailable(
            "manifests kept changing while being deleted",
        ))
    }

    pub(super) async fn export_tenant(&self, t: &TenantId) -> Result<Vec<ExportRow>, StoreError> {
        let Some(live) = self.generations(t).await? else {
            return Ok(Vec::new());
        };
        let mut item_keys = BTreeSet::new();
        for g in live.shown() {
            for (h, stored) in self.list_manifests(t, Scope::Generation(g), true).await? {
                if live.shows(&h.mapping) == g {
                    item_keys.extend(h.item_keys_of(t, &stored.manifest)?);
                }
            }
        }
        let keys = item_keys
            .into_iter()
            .map(|(pk, sk)| key(pk, sk))
            .collect::<Vec<_>>();
        // Eventually consistent, like the queries of the other reads; a manifest may list an
        // item a crashed replace did not delete yet or had not written yet: only what exists
        // comes back.
        self.batch_get(&self.tables.data, keys, false, "export")
            .await?
            .iter()
            .map(|i| export_row(t, i))
            .collect()
    }
}

/// A chunk's items by day, with the manifests that list them (keys and fingerprints).
struct ChunkItems {
    manifests: BTreeMap<NaiveDate, Manifest>,
    values: BTreeMap<(NaiveDate, ValueKey), Item>,
    activities: BTreeMap<(NaiveDate, String), Item>,
}

impl ChunkItems {
    /// Every day of the window has a manifest, empty when the chunk has nothing that day. Of
    /// two records with one key, the later is written.
    fn of(
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        in_window: &BTreeSet<NaiveDate>,
        values: &[MetricValue],
        activities: &[Activity],
    ) -> Result<ChunkItems, StoreError> {
        let mut out = ChunkItems {
            manifests: in_window
                .iter()
                .map(|d| (*d, Manifest::default()))
                .collect(),
            values: BTreeMap::new(),
            activities: BTreeMap::new(),
        };
        for v in values {
            let item = value_item(t, generation, mapping, v)?;
            let k = ValueKey {
                object: (v.object.kind, v.object.id.clone()),
                metric: v.metric.clone(),
                app: v.app.clone(),
            };
            out.manifests
                .entry(v.day)
                .or_default()
                .values
                .insert(k.clone());
            out.values.insert((v.day, k), item);
        }
        // Each object's fingerprint: its items' of the day, in key order.
        let mut items = out.values.iter().peekable();
        while let Some(((day, k), item)) = items.next() {
            let mut fps = vec![item_fingerprint(item)];
            while let Some(((d, next), i)) = items.peek() {
                if d != day || next.object != k.object {
                    break;
                }
                fps.push(item_fingerprint(i));
                items.next();
            }
            if let Some(m) = out.manifests.get_mut(day) {
                m.object_fps
                    .insert(k.object.clone(), super::manifest::object_fingerprint(fps));
            }
        }
        for a in activities {
            let item = activity_item(t, generation, mapping, a)?;
            let m = out.manifests.entry(a.day).or_default();
            m.users.insert(a.end_user_id.clone());
            m.user_fps
                .insert(a.end_user_id.clone(), item_fingerprint(&item));
            out.activities.insert((a.day, a.end_user_id.clone()), item);
        }
        Ok(out)
    }

    /// The items the per-day manifests `which` list.
    fn items_of(&self, which: &BTreeMap<NaiveDate, Manifest>) -> Vec<Item> {
        let mut out = Vec::new();
        for (day, m) in which {
            for k in &m.values {
                if let Some(i) = self.values.get(&(*day, k.clone())) {
                    out.push(i.clone());
                }
            }
            for u in &m.users {
                if let Some(i) = self.activities.get(&(*day, u.clone())) {
                    out.push(i.clone());
                }
            }
        }
        out
    }
}

/// The fingerprint of everything an item holds: its attributes in name order, each as its
/// name, its type and its value.
fn item_fingerprint(item: &Item) -> u64 {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let mut bytes = Vec::with_capacity(256);
    for name in names {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        if let Some(v) = item.get(name) {
            attribute_bytes(&mut bytes, v);
        }
    }
    super::manifest::fingerprint(&bytes)
}

fn attribute_bytes(out: &mut Vec<u8>, v: &AttributeValue) {
    let mut text = |tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    match v {
        AttributeValue::S(x) => text(b's', x.as_bytes()),
        AttributeValue::N(x) => text(b'n', x.as_bytes()),
        AttributeValue::B(x) => text(b'b', x.as_ref()),
        AttributeValue::Bool(x) => text(b'o', &[u8::from(*x)]),
        AttributeValue::Null(_) => text(b'0', &[]),
        // The adapter writes no sets, lists or maps on value and activity items; should one
        // appear, its debug form still tells contents apart.
        other => text(b'?', format!("{other:?}").as_bytes()),
    }
}

#[async_trait]
impl DataStore for DynamoStore {
    /// Check-then-write (see the module docs): refuse a stale generation, list the new items in
    /// the window's manifests, put the items whose content the manifests do not already hold,
    /// delete the window's leftovers, write the manifests again, and undo the puts if the
    /// generation moved meanwhile. A day whose manifest already holds the chunk's items as
    /// they are, and nothing more, costs its manifest's read and no write.
    async fn replace_chunk(
        &self,
        t: &TenantId,
        generation: u64,
        mapping: &MappingId,
        window: Window,
        values: &[MetricValue],
        activities: &[Activity],
    ) -> Result<(), StoreError> {
        let writes = self.generations(t).await?.map(|g| g.writes(mapping));
        if writes != Some(generation) {
            return Err(StoreError::StaleGeneration(generation));
        }
        let in_window: BTreeSet<NaiveDate> = window
            .from
            .iter_days()
            .take_while(|d| *d <= window.to)
            .collect();
        let chunk = ChunkItems::of(t, generation, mapping, &in_window, values, activities)?;
        let new = &chunk.manifests;
        let days: BTreeSet<NaiveDate> = new.keys().copied().collect();
        let mut known = self.read_manifests(t, generation, mapping, &days).await?;
        // What each day's manifest does not hold as the chunk has it: the items to put.
        let changed: BTreeMap<NaiveDate, Manifest> = new
            .iter()
            .map(|(day, add)| {
                let stored = known.get(day).map(|s| &s.manifest);
                (
                    *day,
                    add.changed_from(stored.unwrap_or(&Manifest::default())),
                )
            })
            .collect();
        // 1. The manifests list every item before it is put, without a fingerprint for an
        //    item about to change.
        let listed = futures_util::future::try_join_all(
            new.iter()
                .filter(|(day, _)| changed.get(*day).is_some_and(|c| !c.is_empty()))
                .map(|(day, add)| {
                    let current = known.get(day).cloned().unwrap_or_default();
                    async move {
                        let stored = self
                            .add_to_manifest(t, generation, mapping, *day, current, add, false)
                            .await?;
                        Ok::<_, StoreError>((*day, stored))
                    }
                }),
        )
        .await?;
        known.extend(listed);
        // 2. Put the changed items, 3. delete what the window's manifests list and the chunk
        //    lacks.
        let puts = chunk.items_of(&changed);
        let written: Vec<Item> = puts.iter().map(key_of).collect();
        let mut requests = puts
            .into_iter()
            .map(put_req)
            .collect::<Result<Vec<_>, _>>()?;
        let mut leftovers: BTreeMap<NaiveDate, Manifest> = BTreeMap::new();
        for day in &in_window {
            let (Some(stored), Some(add)) = (known.get(day), new.get(day)) else {
                continue;
            };
            let gone = stored.manifest.minus(add);
            if gone.is_empty() {
                continue;
            }
            for (pk, sk) in item_keys(t, generation, mapping, *day, &gone) {
                requests.push(delete_req(key(pk, sk))?);
            }
            leftovers.insert(*day, gone);
        }
        self.batch_write(&self.tables.data, requests, "replace chunk")
            .await?;
        crate::stall::point("replace-items-written").await;
        // 4. A new version of every manifest this chunk changed: without the leftovers and
        //    with the fingerprints of the items as now stored if no one else wrote it
        //    meanwhile, else with this chunk's items added again, their contents unknown.
        futures_util::future::try_join_all(new.iter().map(|(day, add)| {
            let gone = leftovers.get(day);
            let current = known.get(day).cloned().unwrap_or_default();
            let put = changed.get(day).is_some_and(|c| !c.is_empty());
            async move {
                if !put && gone.is_none() {
                    return Ok(());
                }
                let content = match gone {
                    Some(g) => current.manifest.minus(g),
                    None => current.manifest.clone(),
                }
                .with_fingerprints_of(add);
                if self
                    .write_manifest(t, generation, mapping, *day, &current, content)
                    .await?
                    .is_none()
                {
                    let again = self
                        .read_manifests(t, generation, mapping, &BTreeSet::from([*day]))
                        .await?
                        .remove(day)
                        .unwrap_or_default();
                    let keys = add.keys_only();
                    self.add_to_manifest(t, generation, mapping, *day, again, &keys, true)
                        .await?;
                }
                Ok::<_, StoreError>(())
            }
        }))
        .await?;
        // A re-sync began meanwhile: what was written stays if reads still show its generation
        // (a chunk of the shown values, whole and fresh); otherwise no read will ever see it.
        let live = self.generations(t).await?;
        if live.is_none_or(|g| !g.keeps(mapping, generation)) {
            self.delete_keys(written, "undo a stale chunk").await?;
            return Err(StoreError::StaleGeneration(generation));
        }
        Ok(())
    }

    async fn purge_generations(&self, t: &TenantId, live: &Generations) -> Result<u64, StoreError> {
        // The tenant's manifest partition, filtered: a purge follows a re-sync, which rewrites
        // the tenant anyway, so this read costs far less than the writes around it.
        let mut n = self
            .delete_by_manifests(t, Scope::Except(&live.live()))
            .await?;
        // A rebuilt mapping's values of the generation it showed before: its own manifests.
        for (m, keep) in live.own_keep() {
            n += self
                .delete_by_manifests(t, Scope::Mapping(&m, &keep))
                .await?;
        }
        Ok(n)
    }

    async fn delete_mapping_data(
        &self,
        t: &TenantId,
        m: &MappingId,
        keep: &[u64],
    ) -> Result<u64, StoreError> {
        self.delete_by_manifests(t, Scope::Mapping(m, keep)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ObjectRef;

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
