//! Metric values and activity on the data table. Values and activity live in
//! partitions of their generation; every read first reads the integration's current generation.

use super::manifest::{Manifest, ValueKey};
use super::{
    delete_req, f, get_bool, get_day, get_n, get_s, is_condition_failure, key, key_of, keys, n,
    put_req, s, unavailable, DynamoStore, Item,
};
use crate::domain::Window;
use crate::domain::{Activity, ExportRow, MappingId, MetricValue, ObjectRef, Target, TenantId};
use crate::store::{ActivityOf, MetricInfo, SeriesPoint, StoreError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Manifest items: a head (one per mapping, generation and day) and its extra parts.
const MANIFEST_HEAD: &str = "MH";
const MANIFEST_PART: &str = "MP";
/// Bytes of an encoded manifest per item (DynamoDB's item limit is 400 KB).
const MANIFEST_PART_BYTES: usize = 350_000;
/// Rounds of re-reading a manifest that another writer changed before giving up.
const MAX_MANIFEST_CONFLICTS: u32 = 16;

/// Which manifests a listing covers.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// One mapping's, every generation.
    Mapping(&'a MappingId),
    /// One generation's.
    Generation(u64),
    /// Every generation below this one.
    Below(u64),
}

/// A manifest as stored: its version (0 = none yet), the token naming its extra parts, how
/// many there are, and what it lists.
#[derive(Debug, Clone, Default)]
struct Stored {
    ver: u64,
    token: String,
    parts: usize,
    manifest: Manifest,
}

/// A manifest's head item.
#[derive(Debug)]
struct Head {
    sk: String,
    day: NaiveDate,
    generation: u64,
    mapping: MappingId,
    ver: u64,
    parts: usize,
    token: String,
    body: Vec<u8>,
}

fn get_b<'a>(item: &'a Item, name: &str) -> Result<&'a [u8], StoreError> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => Ok(b.as_ref()),
        _ => Err(StoreError::Corrupt(format!(
            "stored item lacks attribute {name}"
        ))),
    }
}

impl Head {
    fn from_item(i: &Item) -> Result<Head, StoreError> {
        Ok(Head {
            sk: get_s(i, "sk")?.to_string(),
            day: get_day(i, "day")?,
            generation: get_n(i, "gen")?,
            mapping: MappingId::parse(get_s(i, "mapping")?).map_err(corrupt)?,
            ver: get_n(i, "ver")?,
            parts: get_n(i, "parts")?,
            token: get_s(i, "tok")?.to_string(),
            body: get_b(i, "body")?.to_vec(),
        })
    }

    fn part_keys(&self, pk: &str) -> Vec<Item> {
        (1..=self.parts)
            .map(|i| {
                key(
                    pk.to_string(),
                    keys::manifest_part_sk(&self.sk, &self.token, i),
                )
            })
            .collect()
    }

    /// The whole manifest, or `None` when one of its parts is gone (a newer version replaced it).
    fn assemble(&self, parts: &Parts) -> Result<Option<Stored>, StoreError> {
        let mut bytes = self.body.clone();
        for i in 1..=self.parts {
            match parts.0.get(&(self.sk.clone(), self.token.clone(), i)) {
                Some(b) => bytes.extend_from_slice(b),
                None => return Ok(None),
            }
        }
        Ok(Some(Stored {
            ver: self.ver,
            token: self.token.clone(),
            parts: self.parts,
            manifest: Manifest::decode(&bytes)?,
        }))
    }

    fn item_keys_of(
        &self,
        t: &TenantId,
        manifest: &Manifest,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(item_keys(
            t,
            self.generation,
            &self.mapping,
            self.day,
            manifest,
        ))
    }
}

/// Manifest parts by (head sort key, token, index).
struct Parts(HashMap<(String, String, usize), Vec<u8>>);

impl Parts {
    fn of(items: &[Item]) -> Result<Parts, StoreError> {
        let mut out = HashMap::new();
        for i in items {
            if get_s(i, "rec")? != MANIFEST_PART {
                continue;
            }
            out.insert(
                (
                    get_s(i, "head")?.to_string(),
                    get_s(i, "tok")?.to_string(),
                    get_n(i, "idx")?,
                ),
                get_b(i, "body")?.to_vec(),
            );
        }
        Ok(Parts(out))
    }
}

/// The (pk, sk) of every item a manifest of (mapping, generation, day) lists.
fn item_keys(
    t: &TenantId,
    generation: u64,
    m: &MappingId,
    day: NaiveDate,
    manifest: &Manifest,
) -> Vec<(String, String)> {
    let values = manifest.values.iter().map(|v| {
        (
            keys::object_pk(t, generation, &v.object_ref()),
            keys::value_sk(&v.metric, day, &v.app),
        )
    });
    let users = manifest
        .users
        .iter()
        .map(|u| (keys::user_pk(t, generation, u), keys::activity_sk(day, m)));
    values.chain(users).collect()
}

fn item_id(item: &Item) -> Result<(String, String), StoreError> {
    Ok((
        get_s(item, "pk")?.to_string(),
        get_s(item, "sk")?.to_string(),
    ))
}

impl DynamoStore {
    pub(super) fn data_query(
        &self,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client.query().table_name(&self.tables.data)
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

    // ---- manifests (see the module docs and `manifest.rs`) ----

    /// The stored manifests of `days` (strongly consistent); an absent one is version 0, empty.
    async fn read_manifests(
        &self,
        t: &TenantId,
        generation: u64,
        m: &MappingId,
        days: &BTreeSet<NaiveDate>,
    ) -> Result<BTreeMap<NaiveDate, Stored>, StoreError> {
        let pk = keys::manifests_pk(t);
        for _ in 0..MAX_MANIFEST_CONFLICTS {
            let head_keys = days
                .iter()
                .map(|d| key(pk.clone(), keys::manifest_sk(m, generation, *d)))
                .collect();
            let heads = self
                .batch_get(&self.tables.data, head_keys, true, "read manifests")
                .await?
                .iter()
                .map(Head::from_item)
                .collect::<Result<Vec<_>, _>>()?;
            let part_keys = heads.iter().flat_map(|h| h.part_keys(&pk)).collect();
            let parts = self
                .batch_get(&self.tables.data, part_keys, true, "read manifest parts")
                .await?;
            let parts = Parts::of(&parts)?;
            let mut out: BTreeMap<NaiveDate, Stored> =
                days.iter().map(|d| (*d, Stored::default())).collect();
            let mut whole = true;
            for h in heads {
                match h.assemble(&parts)? {
                    Some(stored) => {
                        out.insert(h.day, stored);
                    }
                    // A newer version replaced this one (and its parts) since the heads were read.
                    None => whole = false,
                }
            }
            if whole {
                return Ok(out);
            }
        }
        Err(StoreError::Unavailable(
            "manifests kept changing while being read".into(),
        ))
    }

    /// Writes `content` as the next version of a manifest, if it is still at `expected`'s
    /// version; `None` when another writer got there first.
    async fn write_manifest(
        &self,
        t: &TenantId,
        generation: u64,
        m: &MappingId,
        day: NaiveDate,
        expected: &Stored,
        content: Manifest,
    ) -> Result<Option<Stored>, StoreError> {
        let pk = keys::manifests_pk(t);
        let head_sk = keys::manifest_sk(m, generation, day);
        let bytes = content.encode();
        let mut chunks = bytes.chunks(MANIFEST_PART_BYTES);
        let first = chunks.next().unwrap_or_default().to_vec();
        let rest: Vec<&[u8]> = chunks.collect();
        let token = if rest.is_empty() {
            String::new()
        } else {
            uuid::Uuid::new_v4().simple().to_string()
        };
        let mut part_keys = Vec::new();
        let mut puts = Vec::new();
        for (i, body) in rest.iter().enumerate() {
            let mut p = key(pk.clone(), keys::manifest_part_sk(&head_sk, &token, i + 1));
            part_keys.push(p.clone());
            p.insert("rec".into(), s(MANIFEST_PART));
            p.insert("head".into(), s(head_sk.clone()));
            p.insert("tok".into(), s(token.clone()));
            p.insert("idx".into(), n(i as u64 + 1));
            p.insert("gen".into(), n(generation));
            p.insert("mapping".into(), s(m.as_str()));
            p.insert("body".into(), AttributeValue::B(Blob::new(body.to_vec())));
            puts.push(put_req(p)?);
        }
        if !puts.is_empty() {
            self.batch_write_metered(&self.tables.data, puts, "write manifest parts", true)
                .await?;
        }
        let ver = expected.ver + 1;
        let mut head = key(pk.clone(), head_sk.clone());
        head.insert("rec".into(), s(MANIFEST_HEAD));
        head.insert("mapping".into(), s(m.as_str()));
        head.insert("gen".into(), n(generation));
        head.insert("day".into(), s(keys::day(day)));
        head.insert("ver".into(), n(ver));
        head.insert("parts".into(), n(rest.len() as u64));
        head.insert("tok".into(), s(token.clone()));
        head.insert("body".into(), AttributeValue::B(Blob::new(first)));
        self.meter_manifest_put(&head);
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.data)
            .set_item(Some(head));
        let put = if expected.ver == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :v")
                .expression_attribute_names("#v", "ver")
                .expression_attribute_values(":v", n(expected.ver))
        };
        match put.send().await {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => {
                self.delete_keys(part_keys, "drop unused manifest parts")
                    .await?;
                return Ok(None);
            }
            Err(e) => return Err(unavailable("write a manifest", e)),
        }
        if expected.parts > 0 {
            let old = (1..=expected.parts)
                .map(|i| {
                    key(
                        pk.clone(),
                        keys::manifest_part_sk(&head_sk, &expected.token, i),
                    )
                })
                .collect();
            self.delete_keys(old, "drop old manifest parts").await?;
        }
        Ok(Some(Stored {
            ver,
            token,
            parts: rest.len(),
            manifest: content,
        }))
    }

    /// Makes the manifest list `new` too, retrying on concurrent writers. With `always`, writes
    /// (a new version) even when it already does: see "Concurrent workers" in the module docs.
    #[allow(clippy::too_many_arguments)]
    async fn add_to_manifest(
        &self,
        t: &TenantId,
        generation: u64,
        m: &MappingId,
        day: NaiveDate,
        mut current: Stored,
        new: &Manifest,
        always: bool,
    ) -> Result<Stored, StoreError> {
        for _ in 0..MAX_MANIFEST_CONFLICTS {
            if !always && new.is_subset(&current.manifest) {
                return Ok(current);
            }
            let content = current.manifest.union(new);
            if let Some(stored) = self
                .write_manifest(t, generation, m, day, &current, content)
                .await?
            {
                return Ok(stored);
            }
            current = self
                .read_manifests(t, generation, m, &BTreeSet::from([day]))
                .await?
                .remove(&day)
                .unwrap_or_default();
        }
        Err(StoreError::Unavailable(
            "a manifest kept changing while being written".into(),
        ))
    }

    fn meter_manifest_put(&self, item: &Item) {
        // Manifest items carry no index keys.
        self.meter
            .manifest_put(super::capacity::put_units(item, &[]));
    }

    /// Check-then-write (see the module docs): refuse a stale generation, list the new items in
    /// the window's manifests, put them, delete the window's leftovers, write the manifests
    /// again, and undo the puts if the generation moved meanwhile.
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
        let in_window: BTreeSet<NaiveDate> = window
            .from
            .iter_days()
            .take_while(|d| *d <= window.to)
            .collect();
        let mut new: BTreeMap<NaiveDate, Manifest> = in_window
            .iter()
            .map(|d| (*d, Manifest::default()))
            .collect();
        let mut new_items: BTreeMap<(String, String), Item> = BTreeMap::new();
        for v in values {
            let item = value_item(t, generation, mapping, v)?;
            new.entry(v.day).or_default().values.insert(ValueKey {
                object: (v.object.kind, v.object.id.clone()),
                metric: v.metric.clone(),
                app: v.app.clone(),
            });
            new_items.insert(item_id(&item)?, item);
        }
        for a in activities {
            let item = activity_item(t, generation, mapping, a)?;
            new.entry(a.day)
                .or_default()
                .users
                .insert(a.end_user_id.clone());
            new_items.insert(item_id(&item)?, item);
        }
        let days: BTreeSet<NaiveDate> = new.keys().copied().collect();
        let mut known = self.read_manifests(t, generation, mapping, &days).await?;
        // 1. The manifests list every item before it exists.
        let listed = futures_util::future::try_join_all(new.iter().map(|(day, add)| {
            let current = known.get(day).cloned().unwrap_or_default();
            async move {
                let stored = self
                    .add_to_manifest(t, generation, mapping, *day, current, add, false)
                    .await?;
                Ok::<_, StoreError>((*day, stored))
            }
        }))
        .await?;
        known.extend(listed);
        // 2. Put the items, 3. delete what the window's manifests list and the chunk lacks.
        let written: Vec<Item> = new_items.values().map(key_of).collect();
        let mut requests = new_items
            .into_values()
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
        // 4. A new version of every manifest this chunk touched: without the leftovers if no
        //    one else wrote it meanwhile, else with this chunk's items added again.
        futures_util::future::try_join_all(new.iter().map(|(day, add)| {
            let gone = leftovers.get(day);
            let current = known.get(day).cloned().unwrap_or_default();
            async move {
                if add.is_empty() && gone.is_none() {
                    return Ok(());
                }
                let content = match gone {
                    Some(g) => current.manifest.minus(g),
                    None => current.manifest.clone(),
                };
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
                    self.add_to_manifest(t, generation, mapping, *day, again, add, true)
                        .await?;
                }
                Ok::<_, StoreError>(())
            }
        }))
        .await?;
        if self.current_generation(t).await? != Some(generation) {
            self.delete_keys(written, "undo a stale chunk").await?;
            return Err(StoreError::StaleGeneration(generation));
        }
        Ok(())
    }

    /// Every manifest of `scope` with its content (heads whose parts are being replaced are
    /// read again; after a few rounds, and only when `strict` is false, they come back empty).
    async fn list_manifests(
        &self,
        t: &TenantId,
        scope: Scope<'_>,
        strict: bool,
    ) -> Result<Vec<(Head, Stored)>, StoreError> {
        for round in 0..MAX_MANIFEST_CONFLICTS {
            let items = self.query_manifests(t, &scope).await?;
            let parts = Parts::of(&items)?;
            let mut out = Vec::new();
            let mut whole = true;
            for i in &items {
                if get_s(i, "rec")? != MANIFEST_HEAD {
                    continue;
                }
                let h = Head::from_item(i)?;
                match h.assemble(&parts)? {
                    Some(stored) => out.push((h, stored)),
                    None if !strict && round + 1 == MAX_MANIFEST_CONFLICTS => {
                        tracing::warn!("a manifest's parts are missing; its items are not listed");
                        out.push((h, Stored::default()));
                    }
                    None => whole = false,
                }
            }
            if whole {
                return Ok(out);
            }
        }
        Err(StoreError::Unavailable(
            "manifests kept changing while being listed".into(),
        ))
    }

    /// Every manifest item (heads and parts) of `scope`.
    async fn query_manifests(
        &self,
        t: &TenantId,
        scope: &Scope<'_>,
    ) -> Result<Vec<Item>, StoreError> {
        let q = self
            .data_query()
            .consistent_read(true)
            .expression_attribute_values(":p", s(keys::manifests_pk(t)));
        let q = match scope {
            Scope::Mapping(m) => q
                .key_condition_expression("pk = :p AND begins_with(sk, :m)")
                .expression_attribute_values(":m", s(keys::mapping_manifest_prefix(m))),
            Scope::Generation(g) => q
                .key_condition_expression("pk = :p")
                .filter_expression("#g = :g")
                .expression_attribute_names("#g", "gen")
                .expression_attribute_values(":g", n(*g)),
            Scope::Below(g) => q
                .key_condition_expression("pk = :p")
                .filter_expression("#g < :g")
                .expression_attribute_names("#g", "gen")
                .expression_attribute_values(":g", n(*g)),
        };
        self.query_all(q, "list manifests").await
    }

    /// Deletes every item the manifests of `scope` list, then the manifests (each head only if
    /// no one wrote it meanwhile, else again from the top). Returns how many items were listed.
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
            let mut items = Vec::new();
            for (h, stored) in &manifests {
                for (pk, sk) in h.item_keys_of(t, &stored.manifest)? {
                    items.push(key(pk, sk));
                }
            }
            self.delete_keys(items, "delete listed items").await?;
            // Heads written meanwhile stay, and are read and deleted again in the next round.
            for (h, stored) in &manifests {
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
                    Err(e) if is_condition_failure(&e) => {}
                    Err(e) => return Err(unavailable("delete a manifest", e)),
                }
            }
        }
        Err(StoreError::Unavailable(
            "manifests kept changing while being deleted".into(),
        ))
    }

    pub(super) async fn purge_below_generation_impl(
        &self,
        t: &TenantId,
        generation: u64,
    ) -> Result<u64, StoreError> {
        // The tenant's manifest partition, filtered: a purge follows a re-sync, which rewrites
        // the tenant anyway, so this read costs far less than the writes around it.
        self.delete_by_manifests(t, Scope::Below(generation)).await
    }

    pub(super) async fn delete_mapping_data_impl(
        &self,
        t: &TenantId,
        m: &MappingId,
    ) -> Result<u64, StoreError> {
        self.delete_by_manifests(t, Scope::Mapping(m)).await
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
        let mut item_keys = BTreeSet::new();
        for (h, stored) in self.list_manifests(t, Scope::Generation(g), true).await? {
            item_keys.extend(h.item_keys_of(t, &stored.manifest)?);
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
