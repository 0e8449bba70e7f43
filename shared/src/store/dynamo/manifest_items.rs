//! Manifest items on the data table (see `mod.rs`, "Replacing a window"): a head per
//! (mapping, generation, day) with its version and its first part, extra parts beyond
//! 350 KB; reading a window's manifests, writing one conditionally on its version, and listing
//! a tenant's manifests by mapping or generation.

use super::data::corrupt;
use super::manifest::Manifest;
use super::{
    get_day, get_n, get_s, is_condition_failure, key, keys, n, put_req, s, unavailable,
    DynamoStore, Item,
};
use crate::domain::{MappingId, TenantId};
use crate::store::StoreError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Manifest items: a head (one per mapping, generation and day) and its extra parts.
pub(super) const MANIFEST_HEAD: &str = "MH";
pub(super) const MANIFEST_PART: &str = "MP";
/// Bytes of an encoded manifest per item (DynamoDB's item limit is 400 KB).
pub(super) const MANIFEST_PART_BYTES: usize = 350_000;
/// Rounds of re-reading a manifest that another writer changed before giving up.
pub(super) const MAX_MANIFEST_CONFLICTS: u32 = 16;

/// Which manifests a listing covers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    /// One mapping's, every generation but these (all of them when empty).
    Mapping(&'a MappingId, &'a [u64]),
    /// One generation's.
    Generation(u64),
    /// Every generation but these.
    Except(&'a [u64]),
}

/// A manifest as stored: its version (0 = none yet), the token naming its extra parts, how
/// many there are, and what it lists.
#[derive(Debug, Clone, Default)]
pub(super) struct Stored {
    pub(super) ver: u64,
    pub(super) token: String,
    pub(super) parts: usize,
    pub(super) manifest: Manifest,
}

/// A manifest's head item.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) sk: String,
    pub(super) day: NaiveDate,
    pub(super) generation: u64,
    pub(super) mapping: MappingId,
    pub(super) ver: u64,
    pub(super) parts: usize,
    pub(super) token: String,
    pub(super) body: Vec<u8>,
}

pub(super) fn get_b<'a>(item: &'a Item, name: &str) -> Result<&'a [u8], StoreError> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => Ok(b.as_ref()),
        _ => Err(StoreError::corrupt(format!(
            "stored item lacks attribute {name}"
        ))),
    }
}

impl Head {
    pub(super) fn from_item(i: &Item) -> Result<Head, StoreError> {
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

    pub(super) fn part_keys(&self, pk: &str) -> Vec<Item> {
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
    pub(super) fn assemble(&self, parts: &Parts) -> Result<Option<Stored>, StoreError> {
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

    pub(super) fn item_keys_of(
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
pub(super) struct Parts(HashMap<(String, String, usize), Vec<u8>>);

impl Parts {
    pub(super) fn of(items: &[Item]) -> Result<Parts, StoreError> {
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
pub(super) fn item_keys(
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

impl DynamoStore {
    pub(super) async fn read_manifests(
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
        Err(StoreError::unavailable(
            "manifests kept changing while being read",
        ))
    }

    /// Writes `content` as the next version of a manifest, if it is still at `expected`'s
    /// version; `None` when another writer got there first.
    pub(super) async fn write_manifest(
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
            .set_item(Some(head.clone()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        let put = if expected.ver == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :v")
                .expression_attribute_names("#v", "ver")
                .expression_attribute_values(":v", n(expected.ver))
        };
        match put.send().await {
            Ok(_) => {}
            // This very put, resent after its answer was lost: written.
            Err(e) if super::own_put(&e, &head) => {}
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

    /// Makes the manifest list `new` too, without the fingerprints `new` contradicts (see
    /// [`Manifest::union`]), retrying on concurrent writers. With `always`, writes (a new
    /// version) even when it already does: see "Concurrent workers" in the module docs.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add_to_manifest(
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
            let content = current.manifest.union(new);
            if !always && content == current.manifest {
                return Ok(current);
            }
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
        Err(StoreError::unavailable(
            "a manifest kept changing while being written",
        ))
    }

    pub(super) fn meter_manifest_put(&self, item: &Item) {
        // Manifest items carry no index keys.
        self.meter
            .manifest_put(super::capacity::put_units(item, &[]));
    }

    /// Every manifest of `scope` with its content (heads whose parts are being replaced are
    /// read again; after a few rounds, and only when `strict` is false, they come back empty).
    pub(super) async fn list_manifests(
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
        Err(StoreError::unavailable(
            "manifests kept changing while being listed",
        ))
    }

    /// Every manifest item (heads and parts) of `scope`.
    pub(super) async fn query_manifests(
        &self,
        t: &TenantId,
        scope: &Scope<'_>,
    ) -> Result<Vec<Item>, StoreError> {
        let q = self
            .data_query()
            .consistent_read(true)
            .expression_attribute_values(":p", s(keys::manifests_pk(t)));
        let q = match scope {
            Scope::Mapping(m, keep) => not_in(
                q.key_condition_expression("pk = :p AND begins_with(sk, :m)")
                    .expression_attribute_values(":m", s(keys::mapping_manifest_prefix(m))),
                keep,
            ),
            Scope::Generation(g) => q
                .key_condition_expression("pk = :p")
                .filter_expression("#g = :g")
                .expression_attribute_names("#g", "gen")
                .expression_attribute_values(":g", n(*g)),
            Scope::Except(keep) => not_in(q.key_condition_expression("pk = :p"), keep),
        };
        self.query_all(q, "list manifests").await
    }
}

/// `q` filtered to items whose generation is not in `keep` (unfiltered when it is empty).
fn not_in(q: QueryFluentBuilder, keep: &[u64]) -> QueryFluentBuilder {
    if keep.is_empty() {
        return q;
    }
    let names = (0..keep.len())
        .map(|i| format!(":k{i}"))
        .collect::<Vec<_>>();
    keep.iter()
        .zip(&names)
        .fold(q, |q, (g, name)| q.expression_attribute_values(name, n(*g)))
        .expression_attribute_names("#g", "gen")
        .filter_expression(format!("NOT (#g IN ({}))", names.join(", ")))
}
