//! The integer keys the point tables refer to (schema version 5): objects (`object_keys`:
//! tenant, kind, external id), metrics (`metric_keys`: tenant, object kind, metric, app) and
//! activity labels (`label_keys`). A key row is never changed or deleted once committed, so the
//! store keeps the keys it has seen in memory ([`KeyCache`]) and a chunk's write looks each of
//! its objects up in a hash map instead of an index of text. Keys created by a transaction join
//! the cache only once it committed (a rolled-back key id may be given to another key).

use super::StoreError;
use crate::domain::{Target, TenantId};
use rusqlite::{Connection, OptionalExtension};
use rustc_hash::FxHashMap;

/// The key tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyTable {
    /// (kind, external id): companies, end users, assets, projects.
    Object,
    /// (object kind, metric name and app).
    Metric,
    /// (label, unused).
    Label,
}

impl KeyTable {
    const ALL: [KeyTable; 3] = [KeyTable::Object, KeyTable::Metric, KeyTable::Label];

    fn index(self) -> usize {
        self as usize
    }

    fn find_sql(self) -> &'static str {
        match self {
            KeyTable::Object => {
                "SELECT id FROM object_keys WHERE tenant=?1 AND kind=?2 AND external_id=?3"
            }
            KeyTable::Metric => {
                "SELECT id FROM metric_keys WHERE tenant=?1 AND kind=?2 AND metric=?3 AND app=?4"
            }
            KeyTable::Label => "SELECT id FROM label_keys WHERE tenant=?1 AND label=?2",
        }
    }

    fn insert_sql(self) -> &'static str {
        match self {
            KeyTable::Object => {
                "INSERT INTO object_keys (tenant, kind, external_id) VALUES (?1, ?2, ?3)"
            }
            KeyTable::Metric => {
                "INSERT INTO metric_keys (tenant, kind, metric, app) VALUES (?1, ?2, ?3, ?4)"
            }
            KeyTable::Label => "INSERT INTO label_keys (tenant, label) VALUES (?1, ?2)",
        }
    }
}

/// The parts of a key after the tenant (unused trailing parts are empty).
pub(super) type KeyParts<'a> = [&'a str; 3];

fn bind_len(table: KeyTable) -> usize {
    match table {
        KeyTable::Object => 2,
        KeyTable::Metric => 3,
        KeyTable::Label => 1,
    }
}

/// One map key for the parts: each but the last prefixed with its length, so no two lists of
/// parts give the same text whatever characters they hold.
fn joined(buf: &mut String, table: KeyTable, parts: KeyParts<'_>) {
    buf.clear();
    let n = bind_len(table);
    for (i, p) in parts.iter().take(n).enumerate() {
        if i + 1 < n {
            push_decimal(buf, p.len());
            buf.push(':');
        }
        buf.push_str(p);
    }
}

/// `n` in decimal digits (a key is looked up per value written: no formatting machinery).
fn push_decimal(buf: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend(digits[at..].iter().map(|d| char::from(*d)));
}

/// Most keys kept in memory (objects of every tenant together, about 80 bytes each); past it
/// the cache starts again (a key not in the cache is read from its table).
const MAX_KEYS: usize = 300_000;

#[derive(Default)]
struct TenantKeys {
    maps: [FxHashMap<Box<str>, i64>; 3],
}

/// Committed keys, per tenant, and those of the last slot space written.
#[derive(Default)]
pub(super) struct KeyCache {
    tenants: FxHashMap<Box<str>, TenantKeys>,
    len: usize,
    space: SpaceKeys,
}

/// Keys a transaction created, to add to the cache once it committed.
pub(super) struct NewKeys {
    tenant: Box<str>,
    maps: [Vec<(Box<str>, i64)>; 3],
}

impl KeyCache {
    /// The slot keys of `space` for a transaction of tenant `t`: those kept when the last
    /// transaction that committed was of the same space, else none. Taken out: a transaction
    /// that fails never gives them back (its keys may be rolled back).
    pub(super) fn take_space(&mut self, t: &TenantId, space: Option<u64>) -> SpaceKeys {
        let Some(space) = space else {
            return SpaceKeys::default();
        };
        let kept = std::mem::take(&mut self.space);
        match &kept.at {
            Some((tenant, s)) if **tenant == *t.as_str() && *s == space => kept,
            _ => SpaceKeys {
                at: Some((t.as_str().into(), space)),
                ..SpaceKeys::default()
            },
        }
    }

    /// Keeps the slot keys of a committed transaction's space.
    pub(super) fn keep_space(&mut self, space: SpaceKeys) {
        if space.at.is_some() {
            self.space = space;
        }
    }

    /// Adds the keys of a committed transaction.
    pub(super) fn absorb(&mut self, new: NewKeys) {
        let added: usize = new.maps.iter().map(Vec::len).sum();
        if added == 0 {
            return;
        }
        if self.len + added > MAX_KEYS {
            self.tenants.clear();
            self.len = 0;
        }
        let keys = self.tenants.entry(new.tenant).or_default();
        for (map, list) in keys.maps.iter_mut().zip(new.maps) {
            for (k, id) in list {
                if map.insert(k, id).is_none() {
                    self.len += 1;
                }
            }
        }
    }
}

/// The keys of record slots ([`crate::store::Slots`]), each resolved once.
pub(super) struct SlotKeys<K> {
    keys: Vec<Option<K>>,
}

impl<K> Default for SlotKeys<K> {
    fn default() -> Self {
        Self { keys: Vec::new() }
    }
}

/// Slots kept at most (slots are directory indexes; a larger one is resolved every time).
const MAX_SLOTS: usize = 1 << 22;

impl<K: Copy> SlotKeys<K> {
    pub(super) fn get(
        &mut self,
        slot: Option<u32>,
        resolve: impl FnOnce() -> Result<K, StoreError>,
    ) -> Result<K, StoreError> {
        let Some(i) = slot.map(|s| s as usize).filter(|i| *i < MAX_SLOTS) else {
            return resolve();
        };
        if let Some(Some(k)) = self.keys.get(i) {
            return Ok(*k);
        }
        let k = resolve()?;
        if i >= self.keys.len() {
            self.keys.resize(i + 1, None);
        }
        self.keys[i] = Some(k);
        Ok(k)
    }
}

/// Metric keys of unslotted records kept at most by [`RecentKeys`].
const RECENT_METRICS: usize = 16;

/// The keys of unslotted records met lately: the last object, and up to [`RECENT_METRICS`]
/// metrics. A per-day pipeline chunk (PES, aggregation, report) is sorted by object and
/// alternates a few metrics object by object, so most of its values find both keys here
/// without joining and hashing their parts.
#[derive(Default)]
pub(super) struct RecentKeys {
    object: Option<(Target, String, i64)>,
    metrics: Vec<(Target, String, String, i64)>,
}

impl RecentKeys {
    pub(super) fn object(
        &mut self,
        kind: Target,
        id: &str,
        resolve: impl FnOnce() -> Result<i64, StoreError>,
    ) -> Result<i64, StoreError> {
        match &mut self.object {
            Some((k, i, key)) if *k == kind && i == id => Ok(*key),
            last => {
                let key = resolve()?;
                *last = Some((kind, id.to_string(), key));
                Ok(key)
            }
        }
    }

    pub(super) fn metric(
        &mut self,
        kind: Target,
        metric: &str,
        app: &str,
        resolve: impl FnOnce() -> Result<i64, StoreError>,
    ) -> Result<i64, StoreError> {
        let found = self
            .metrics
            .iter()
            .find(|(k, m, a, _)| *k == kind && m == metric && a == app);
        if let Some((.., key)) = found {
            return Ok(*key);
        }
        let key = resolve()?;
        if self.metrics.len() < RECENT_METRICS {
            self.metrics
                .push((kind, metric.to_string(), app.to_string(), key));
        }
        Ok(key)
    }
}

/// The keys of a slot space's object slots (see `ChunkRecords::slot_space`), kept from one
/// chunk's transaction to the next: one per object kind for values, and the (end user, company)
/// keys of activity records.
#[derive(Default)]
pub(super) struct SpaceKeys {
    at: Option<(Box<str>, u64)>,
    objects: [SlotKeys<i64>; 4],
    pub(super) owners: SlotKeys<(i64, i64)>,
}

impl SpaceKeys {
    pub(super) fn objects(&mut self, kind: crate::domain::Target) -> &mut SlotKeys<i64> {
        use crate::domain::Target;
        let i = match kind {
            Target::Company => 0,
            Target::EndUser => 1,
            Target::Asset => 2,
            Target::Project => 3,
        };
        &mut self.objects[i]
    }
}

/// The keys of one write transaction: from the cache, then from the tables, else created.
pub(super) struct KeyTx<'a> {
    c: &'a Connection,
    tenant: &'a str,
    known: Option<&'a TenantKeys>,
    new: [FxHashMap<Box<str>, i64>; 3],
    buf: String,
}

impl<'a> KeyTx<'a> {
    pub(super) fn new(c: &'a Connection, cache: &'a KeyCache, t: &'a TenantId) -> Self {
        Self {
            c,
            tenant: t.as_str(),
            known: cache.tenants.get(t.as_str()),
            new: Default::default(),
            buf: String::new(),
        }
    }

    /// The key of `parts` in `table`, created if absent.
    pub(super) fn key(&mut self, table: KeyTable, parts: KeyParts<'_>) -> Result<i64, StoreError> {
        joined(&mut self.buf, table, parts);
        let i = table.index();
        if let Some(&id) = self.known.and_then(|k| k.maps[i].get(self.buf.as_str())) {
            return Ok(id);
        }
        if let Some(&id) = self.new[i].get(self.buf.as_str()) {
            return Ok(id);
        }
        let id = match find(self.c, table, self.tenant, parts)? {
            Some(id) => id,
            None => {
                let mut st = self.c.prepare_cached(table.insert_sql())?;
                st.raw_bind_parameter(1, self.tenant)?;
                for (j, p) in parts.iter().take(bind_len(table)).enumerate() {
                    st.raw_bind_parameter(j + 2, *p)?;
                }
                st.raw_execute()?;
                self.c.last_insert_rowid()
            }
        };
        self.new[i].insert(self.buf.as_str().into(), id);
        Ok(id)
    }

    /// The keys this transaction looked up or created, for [`KeyCache::absorb`] after commit.
    pub(super) fn into_new(self) -> NewKeys {
        let mut maps: [Vec<(Box<str>, i64)>; 3] = Default::default();
        for t in KeyTable::ALL {
            maps[t.index()] = self.new[t.index()].clone().into_iter().collect();
        }
        NewKeys {
            tenant: self.tenant.into(),
            maps,
        }
    }
}

/// The key of `parts` in `table`, if it exists (reads never create keys).
pub(super) fn find(
    c: &Connection,
    table: KeyTable,
    tenant: &str,
    parts: KeyParts<'_>,
) -> Result<Option<i64>, StoreError> {
    let mut st = c.prepare_cached(table.find_sql())?;
    st.raw_bind_parameter(1, tenant)?;
    for (j, p) in parts.iter().take(bind_len(table)).enumerate() {
        st.raw_bind_parameter(j + 2, *p)?;
    }
    let mut rows = st.raw_query();
    Ok(rows.next()?.map(|r| r.get(0)).transpose()?)
}

/// The integer key of a tenant's mapping, if it ever wrote values or activity.
pub(super) fn mapping_key(
    c: &Connection,
    t: &TenantId,
    m: &crate::domain::MappingId,
) -> Result<Option<i64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT id FROM mapping_keys WHERE tenant=?1 AND mapping_id=?2")?
            .query_row([t.as_str(), m.as_str()], |r| r.get(0))
            .optional()?,
    )
}

pub(super) fn ensure_mapping_key(
    c: &Connection,
    t: &TenantId,
    m: &crate::domain::MappingId,
) -> Result<i64, StoreError> {
    if let Some(k) = mapping_key(c, t, m)? {
        return Ok(k);
    }
    c.prepare_cached("INSERT INTO mapping_keys (tenant, mapping_id) VALUES (?1, ?2)")?
        .execute([t.as_str(), m.as_str()])?;
    Ok(c.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::embedded::SCHEMA).unwrap();
        c
    }

    /// A key is created once, found again in the same transaction, in the table by another
    /// transaction, and in the cache once committed; a rolled-back key never enters the cache.
    #[test]
    fn keys_are_created_once_and_cached_only_after_commit() {
        let mut c = conn();
        let mut cache = KeyCache::default();
        let t = TenantId::parse("t1").unwrap();
        let tx = c.transaction().unwrap();
        let mut k = KeyTx::new(&tx, &cache, &t);
        let acme = k.key(KeyTable::Object, ["company", "acme", ""]).unwrap();
        assert_eq!(
            k.key(KeyTable::Object, ["company", "acme", ""]).unwrap(),
            acme
        );
        let user = k.key(KeyTable::Object, ["endUser", "acme", ""]).unwrap();
        assert_ne!(user, acme);
        let rolled_back = k.into_new();
        drop(tx);
        // Rolled back: the table has no such key; the cache never saw it.
        assert_eq!(
            find(&c, KeyTable::Object, "t1", ["company", "acme", ""]).unwrap(),
            None
        );
        drop(rolled_back);
        let tx = c.transaction().unwrap();
        let mut k = KeyTx::new(&tx, &cache, &t);
        let acme = k.key(KeyTable::Object, ["company", "acme", ""]).unwrap();
        let clicks = k
            .key(KeyTable::Metric, ["company", "Clicks", "-323"])
            .unwrap();
        let label = k.key(KeyTable::Label, ["Clicks", "", ""]).unwrap();
        let new = k.into_new();
        tx.commit().unwrap();
        cache.absorb(new);
        assert_eq!(cache.len, 3);
        // Found in the cache: no statement runs (the table is emptied behind its back).
        c.execute_batch(
            "DELETE FROM object_keys; DELETE FROM metric_keys; DELETE FROM label_keys;",
        )
        .unwrap();
        let k2 = &mut KeyTx::new(&c, &cache, &t);
        assert_eq!(
            k2.key(KeyTable::Object, ["company", "acme", ""]).unwrap(),
            acme
        );
        assert_eq!(
            k2.key(KeyTable::Metric, ["company", "Clicks", "-323"])
                .unwrap(),
            clicks
        );
        assert_eq!(k2.key(KeyTable::Label, ["Clicks", "", ""]).unwrap(), label);
        // Another tenant's key of the same text is its own: read from (here: created in) its
        // table, never taken from the first tenant's cache.
        let t2 = TenantId::parse("t2").unwrap();
        let mut k3 = KeyTx::new(&c, &cache, &t2);
        let other = k3.key(KeyTable::Object, ["company", "acme", ""]).unwrap();
        assert_eq!(
            find(&c, KeyTable::Object, "t2", ["company", "acme", ""]).unwrap(),
            Some(other)
        );
    }

    #[test]
    fn parts_never_run_into_each_other() {
        let mut a = String::new();
        let mut b = String::new();
        for (x, y) in [
            (["company", "a", "bc"], ["company", "ab", "c"]),
            (["company", "a:1", "b"], ["company", "a", "1:b"]),
            (["company", "3:abc", ""], ["company", "3:a", "bc"]),
        ] {
            joined(&mut a, KeyTable::Metric, x);
            joined(&mut b, KeyTable::Metric, y);
            assert_ne!(a, b, "{x:?} {y:?}");
        }
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [0usize, 7, 10, 99, 1_234_567, usize::MAX] {
            let mut buf = String::from("x");
            push_decimal(&mut buf, n);
            assert_eq!(buf, format!("x{n}"));
        }
    }
}
