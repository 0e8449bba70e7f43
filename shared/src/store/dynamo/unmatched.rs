//! Unmatched identities on DynamoDB (data table): one item per (mapping, generation, day,
//! reason), `pk = UM#t#m`, `sk = gen#day#reason`, holding that day's identities as JSON (at most
//! `MAX_IDENTITIES` and the sum of the rest: a few tens of KiB at most). A chunk's replace reads
//! the keys on its days and writes the new items and the deletes in batches of 25.

use super::{get_s, key, keys, s, DynamoStore, Item};
use crate::domain::unmatched::sort_entries;
use crate::domain::Window;
use crate::domain::{MappingId, TenantId, UnmatchedEntry, UnmatchedReason};
use crate::store::StoreError;
use crate::store::UnmatchedStore;
use async_trait::async_trait;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

fn pk(t: &TenantId, m: &MappingId) -> String {
    format!("UM#{}#{}", keys::esc(t.as_str()), keys::esc(m.as_str()))
}

fn sk(generation: u64, day: NaiveDate, reason: UnmatchedReason) -> String {
    format!(
        "{}#{}#{}",
        keys::gen(generation),
        keys::day(day),
        reason.as_str()
    )
}

/// Which sort keys a query reads.
enum Range {
    Between(String, String),
    Below(String),
    All,
}

/// One item's identities: `[identity or null, rows, value]` each.
type Cells = Vec<(Option<String>, u64, f64)>;

fn corrupt(e: impl Into<crate::error::Cause>) -> StoreError {
    StoreError::corrupt_from("a stored item does not decode", e)
}

impl DynamoStore {
    /// The items under `pk`, all of them or those whose sort key is in `range`.
    async fn unmatched_items(&self, pk: &str, range: Range) -> Result<Vec<Item>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.tables.data)
            .expression_attribute_values(":p", s(pk));
        let q = match range {
            Range::Between(from, to) => q
                .key_condition_expression("pk = :p AND sk BETWEEN :a AND :b")
                .expression_attribute_values(":a", s(from))
                .expression_attribute_values(":b", s(to)),
            Range::Below(to) => q
                .key_condition_expression("pk = :p AND sk < :b")
                .expression_attribute_values(":b", s(to)),
            Range::All => q.key_condition_expression("pk = :p"),
        };
        self.query_all(q, "query unmatched").await
    }
}

#[async_trait]
impl UnmatchedStore for DynamoStore {
    async fn replace_unmatched(
        &self,
        t: &TenantId,
        m: &MappingId,
        generation: u64,
        window: Window,
        entries: &[UnmatchedEntry],
    ) -> Result<(), StoreError> {
        let pk = pk(t, m);
        let mut items: BTreeMap<String, (NaiveDate, UnmatchedReason, Cells)> = BTreeMap::new();
        for e in entries
            .iter()
            .filter(|e| e.day >= window.from && e.day <= window.to)
        {
            items
                .entry(sk(generation, e.day, e.reason))
                .or_insert_with(|| (e.day, e.reason, Vec::new()))
                .2
                .push((e.identity.clone(), e.rows, e.value));
        }
        // Older generations, and this generation's items on the window's days not rewritten.
        let older = self
            .unmatched_items(&pk, Range::Below(keys::gen(generation)))
            .await?;
        let g = keys::gen(generation);
        let on_days = self
            .unmatched_items(
                &pk,
                Range::Between(
                    format!("{g}#{}", keys::day(window.from)),
                    keys::upper(&format!("{g}#{}", keys::day(window.to))),
                ),
            )
            .await?;
        let mut requests = Vec::new();
        for item in older.iter().chain(&on_days) {
            let sk = get_s(item, "sk")?;
            if !items.contains_key(sk) {
                requests.push(super::delete_req(key(pk.clone(), sk.to_string()))?);
            }
        }
        for (sk, (day, reason, cells)) in items {
            let mut item = key(pk.clone(), sk);
            item.insert("day".into(), s(keys::day(day)));
            item.insert("reason".into(), s(reason.as_str()));
            item.insert(
                "e".into(),
                s(serde_json::to_string(&cells).map_err(corrupt)?),
            );
            requests.push(super::put_req(item)?);
        }
        self.batch_write(&self.tables.data, requests, "write unmatched")
            .await
    }

    async fn unmatched_of(
        &self,
        t: &TenantId,
        m: &MappingId,
        generation: u64,
    ) -> Result<Vec<UnmatchedEntry>, StoreError> {
        let g = keys::gen(generation);
        let items = self
            .unmatched_items(&pk(t, m), Range::Between(format!("{g}#"), keys::upper(&g)))
            .await?;
        let mut out = Vec::new();
        for item in items {
            let day =
                NaiveDate::parse_from_str(get_s(&item, "day")?, "%Y-%m-%d").map_err(corrupt)?;
            let reason = get_s(&item, "reason")?;
            let reason = UnmatchedReason::parse(reason)
                .ok_or_else(|| corrupt(format!("unknown reason {reason}")))?;
            let cells: Cells = serde_json::from_str(get_s(&item, "e")?).map_err(corrupt)?;
            out.extend(
                cells
                    .into_iter()
                    .map(|(identity, rows, value)| UnmatchedEntry {
                        reason,
                        identity,
                        day,
                        rows,
                        value,
                    }),
            );
        }
        sort_entries(&mut out);
        Ok(out)
    }

    async fn delete_unmatched(&self, t: &TenantId, m: &MappingId) -> Result<(), StoreError> {
        let pk = pk(t, m);
        let items = self.unmatched_items(&pk, Range::All).await?;
        let sks: BTreeSet<&str> = items
            .iter()
            .map(|i| get_s(i, "sk"))
            .collect::<Result<_, _>>()?;
        let requests = sks
            .into_iter()
            .map(|sk| super::delete_req(key(pk.clone(), sk.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(&self.tables.data, requests, "delete unmatched")
            .await
    }
}
