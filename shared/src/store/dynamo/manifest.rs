//! Manifests: what one mapping wrote for one day in one generation, so that value and activity
//! items need no index entry (see the module docs of `mod.rs`).
//!
//! A manifest lists the keys of the items, not the items: a value by (object kind, object id,
//! metric, app), an activity record by its end user (the day, mapping and generation are the
//! manifest's own). It is stored in a compact binary form: the distinct (metric, app) pairs
//! once, then the objects sorted, each id front-coded against the previous one (the length of
//! the prefix they share, then the rest) with the indexes of its pairs (or "the same pairs as
//! the previous object"), then the end users, front-coded the same way. Daily chunks of
//! thousands of companies with a handful of metrics take a few bytes per company.
//!
//! A manifest also carries, where it knows them, **fingerprints** of what its items hold: one
//! per object (over all of that object's value items of the day, [`object_fingerprint`]) and
//! one per end user's activity record, 48 bits of FNV-1a ([`fingerprint`]). A replace puts only
//! the items of objects and users whose fingerprint differs, so re-fetched days that did not
//! change cost a read of their manifests and no write, and a changed value rewrites its
//! object's items of the day. Format 2 adds them after the users: a byte saying none are known
//! (0), all are (1: 6 bytes each), or some (2: a byte 0 or 1 before each, then its 6 bytes);
//! objects first, in the encoding's order, then users. Format 1 manifests decode with none.
//!
//! A fingerprint is a promise that the items hold exactly that: it is set only after the items'
//! put succeeded, by the writer whose manifest version is still current, and cleared (unknown)
//! before an item is put with different content. See `replace_chunk` in `data.rs`.

use crate::domain::{ObjectRef, Target};
use crate::store::StoreError;
use std::collections::{BTreeMap, BTreeSet};

/// Format version, the first byte of every encoding (1: without fingerprints, still read).
const FORMAT: u8 = 2;
const KINDS: [Target; 4] = [
    Target::Company,
    Target::EndUser,
    Target::Asset,
    Target::Project,
];

/// The key of one value item, without its tenant, generation and day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValueKey {
    pub object: (Target, String),
    pub metric: String,
    pub app: String,
}

impl ValueKey {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.object.0,
            id: self.object.1.clone(),
        }
    }
}

/// The items of one (mapping, generation, day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub values: BTreeSet<ValueKey>,
    /// End users with an activity record.
    pub users: BTreeSet<String>,
    /// What each object's listed value items hold together, where known.
    pub object_fps: BTreeMap<(Target, String), u64>,
    /// What each end user's listed activity record holds, where known.
    pub user_fps: BTreeMap<String, u64>,
}

/// Bits of a fingerprint kept (6 bytes in a manifest): a false "unchanged" has odds of 2^-48
/// per changed object.
const FP_MASK: u64 = (1 << 48) - 1;

/// 48 bits of FNV-1a of `bytes` (stable across builds and platforms, unlike `std`'s hashers).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h ^ (h >> 48)) & FP_MASK
}

/// The fingerprint of an object's value items, from theirs in key order.
pub fn object_fingerprint(items: impl IntoIterator<Item = u64>) -> u64 {
    let bytes: Vec<u8> = items.into_iter().flat_map(u64::to_le_bytes).collect();
    fingerprint(&bytes)
}

impl Manifest {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.users.is_empty()
    }

    pub fn len(&self) -> usize {
        self.values.len() + self.users.len()
    }

    pub fn is_subset(&self, other: &Manifest) -> bool {
        self.values.is_subset(&other.values) && self.users.is_subset(&other.users)
    }

    /// Every key of both; a fingerprint of `self` is kept only where `other` lists nothing of
    /// its object or user, or lists it with the same fingerprint (items about to be put with
    /// other content lose their fingerprint before the put).
    pub fn union(&self, other: &Manifest) -> Manifest {
        let other_objects = other.objects();
        Manifest {
            values: self.values.union(&other.values).cloned().collect(),
            users: self.users.union(&other.users).cloned().collect(),
            object_fps: kept(&self.object_fps, &other_objects, &other.object_fps),
            user_fps: kept(&self.user_fps, &other.users, &other.user_fps),
        }
    }

    /// What `self` lists that `other` does not, with the fingerprints of the objects and users
    /// whose items it keeps whole.
    pub fn minus(&self, other: &Manifest) -> Manifest {
        let values: BTreeSet<ValueKey> = self.values.difference(&other.values).cloned().collect();
        let users: BTreeSet<String> = self.users.difference(&other.users).cloned().collect();
        let split: BTreeSet<&(Target, String)> = self
            .values
            .intersection(&other.values)
            .map(|v| &v.object)
            .collect();
        // Each object once (was a scan of the values per fingerprint: quadratic on a day of
        // thousands of companies).
        let left: BTreeSet<&(Target, String)> = values.iter().map(|v| &v.object).collect();
        Manifest {
            object_fps: self
                .object_fps
                .iter()
                .filter(|(o, _)| !split.contains(o) && left.contains(o))
                .map(|(o, fp)| (o.clone(), *fp))
                .collect(),
            user_fps: only(&self.user_fps, &users),
            values,
            users,
        }
    }

    /// `self` with the fingerprints `other` knows (after `other`'s items were put; `self`
    /// lists exactly `other`'s items of each object `other` has).
    pub fn with_fingerprints_of(mut self, other: &Manifest) -> Manifest {
        let objects = self.objects();
        for (o, fp) in &other.object_fps {
            if objects.contains(o) {
                self.object_fps.insert(o.clone(), *fp);
            }
        }
        for (k, fp) in &other.user_fps {
            if self.users.contains(k) {
                self.user_fps.insert(k.clone(), *fp);
            }
        }
        self
    }

    /// `self` without fingerprints.
    pub fn keys_only(&self) -> Manifest {
        Manifest {
            values: self.values.clone(),
            users: self.users.clone(),
            ..Manifest::default()
        }
    }

    /// What of `self` (a chunk's items, with their fingerprints) `stored` does not hold as it
    /// is: the items to put (every value item of an object whose fingerprint differs).
    pub fn changed_from(&self, stored: &Manifest) -> Manifest {
        let changed =
            |o: &(Target, String)| !same(stored.object_fps.get(o), self.object_fps.get(o));
        let values: BTreeSet<ValueKey> = self
            .values
            .iter()
            .filter(|v| changed(&v.object))
            .cloned()
            .collect();
        let users: BTreeSet<String> = self
            .users
            .iter()
            .filter(|k| !same(stored.user_fps.get(*k), self.user_fps.get(*k)))
            .cloned()
            .collect();
        let objects: BTreeSet<(Target, String)> = values.iter().map(|v| v.object.clone()).collect();
        Manifest {
            object_fps: only(&self.object_fps, &objects),
            user_fps: only(&self.user_fps, &users),
            values,
            users,
        }
    }

    /// The objects with a value listed.
    pub fn objects(&self) -> BTreeSet<(Target, String)> {
        self.values.iter().map(|v| v.object.clone()).collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        let pairs: BTreeSet<(&str, &str)> = self
            .values
            .iter()
            .map(|v| (v.metric.as_str(), v.app.as_str()))
            .collect();
        let index: BTreeMap<(&str, &str), usize> =
            pairs.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        varint(&mut out, pairs.len());
        for (metric, app) in &pairs {
            string(&mut out, metric);
            string(&mut out, app);
        }
        let mut objects: BTreeMap<&(Target, String), Vec<usize>> = BTreeMap::new();
        for v in &self.values {
            if let Some(i) = index.get(&(v.metric.as_str(), v.app.as_str())) {
                objects.entry(&v.object).or_default().push(*i);
            }
        }
        varint(&mut out, objects.len());
        let mut prev_id = "";
        let mut prev_pairs: &[usize] = &[];
        for ((kind, id), idx) in &objects {
            out.push(KINDS.iter().position(|k| k == kind).unwrap_or(0) as u8);
            front_coded(&mut out, prev_id, id);
            if idx.as_slice() == prev_pairs {
                varint(&mut out, 0);
            } else {
                varint(&mut out, idx.len());
                for i in idx {
                    varint(&mut out, *i);
                }
            }
            prev_id = id.as_str();
            prev_pairs = idx.as_slice();
        }
        varint(&mut out, self.users.len());
        let mut prev = "";
        for u in &self.users {
            front_coded(&mut out, prev, u);
            prev = u.as_str();
        }
        let fps: Vec<Option<&u64>> = objects
            .keys()
            .map(|o| self.object_fps.get(*o))
            .chain(self.users.iter().map(|u| self.user_fps.get(u)))
            .collect();
        if fps.iter().all(Option::is_none) {
            out.push(0);
        } else if fps.iter().all(Option::is_some) {
            out.push(1);
            for fp in fps.into_iter().flatten() {
                out.extend_from_slice(&fp.to_le_bytes()[..6]);
            }
        } else {
            out.push(2);
            for fp in fps {
                fp_out(&mut out, fp);
            }
        }
        out
    }

    /// # Errors
    /// `Corrupt` when `bytes` is not an encoding of this format.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, StoreError> {
        let mut r = Reader { bytes, at: 0 };
        let format = r.byte()?;
        if format != 1 && format != FORMAT {
            return Err(corrupt("unknown manifest format"));
        }
        let n_pairs = r.varint()?;
        let mut pairs = Vec::new();
        for _ in 0..n_pairs {
            pairs.push((r.string()?, r.string()?));
        }
        let mut values = BTreeSet::new();
        let mut objects = Vec::new();
        let n_objects = r.varint()?;
        let mut prev_id = String::new();
        let mut prev_pairs: Vec<usize> = Vec::new();
        for _ in 0..n_objects {
            let kind = *KINDS
                .get(usize::from(r.byte()?))
                .ok_or_else(|| corrupt("unknown object kind in a manifest"))?;
            let id = r.front_coded(&prev_id)?;
            let k = r.varint()?;
            let idx = if k == 0 {
                prev_pairs.clone()
            } else {
                (0..k).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?
            };
            if idx.is_empty() {
                return Err(corrupt("a manifest object without metrics"));
            }
            for i in &idx {
                let (metric, app) = pairs
                    .get(*i)
                    .ok_or_else(|| corrupt("metric index out of range in a manifest"))?;
                values.insert(ValueKey {
                    object: (kind, id.clone()),
                    metric: metric.clone(),
                    app: app.clone(),
                });
            }
            objects.push((kind, id.clone()));
            prev_id = id;
            prev_pairs = idx;
        }
        let mut users = BTreeSet::new();
        let n_users = r.varint()?;
        let mut prev = String::new();
        for _ in 0..n_users {
            let u = r.front_coded(&prev)?;
            users.insert(u.clone());
            prev = u;
        }
        let mut m = Manifest {
            values,
            users,
            ..Manifest::default()
        };
        if format == FORMAT {
            let mode = r.byte()?;
            let mut next = || match mode {
                0 => Ok(None),
                1 => r.fingerprint_bytes().map(Some),
                2 => r.fingerprint(),
                _ => Err(corrupt("bad fingerprint mode in a manifest")),
            };
            for o in objects {
                if let Some(fp) = next()? {
                    m.object_fps.insert(o, fp);
                }
            }
            for u in &m.users {
                if let Some(fp) = next()? {
                    m.user_fps.insert(u.clone(), fp);
                }
            }
        }
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes after a manifest"));
        }
        Ok(m)
    }
}

/// Two fingerprints known and equal.
fn same(a: Option<&u64>, b: Option<&u64>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x == y)
}

/// The fingerprints of `fps` whose item `other` does not list, or lists with the same one.
fn kept<K: Ord + Clone>(
    fps: &BTreeMap<K, u64>,
    other: &BTreeSet<K>,
    other_fps: &BTreeMap<K, u64>,
) -> BTreeMap<K, u64> {
    fps.iter()
        .filter(|(k, fp)| !other.contains(*k) || other_fps.get(*k) == Some(*fp))
        .map(|(k, fp)| (k.clone(), *fp))
        .collect()
}

/// The fingerprints of `fps` whose key is in `keys`.
fn only<K: Ord + Clone>(fps: &BTreeMap<K, u64>, keys: &BTreeSet<K>) -> BTreeMap<K, u64> {
    fps.iter()
        .filter(|(k, _)| keys.contains(*k))
        .map(|(k, fp)| (k.clone(), *fp))
        .collect()
}

fn fp_out(out: &mut Vec<u8>, fp: Option<&u64>) {
    match fp {
        None => out.push(0),
        Some(fp) => {
            out.push(1);
            out.extend_from_slice(&fp.to_le_bytes()[..6]);
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::corrupt(what)
}

fn varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// `s` as (bytes shared with `prev`, the rest).
fn front_coded(out: &mut Vec<u8>, prev: &str, s: &str) {
    let shared = prev
        .bytes()
        .zip(s.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    varint(out, shared);
    varint(out, s.len() - shared);
    out.extend_from_slice(&s.as_bytes()[shared..]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| corrupt("truncated manifest"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<usize, StoreError> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or_else(|| corrupt("number too large in a manifest"))?;
            if b & 0x80 == 0 {
                // Counts and lengths are bounded by the manifest's own size.
                if n > self.bytes.len().saturating_mul(8) {
                    return Err(corrupt("count out of range in a manifest"));
                }
                return Ok(n);
            }
        }
        Err(corrupt("number too long in a manifest"))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| corrupt("truncated manifest"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A flag byte, then a fingerprint if it is 1.
    fn fingerprint(&mut self) -> Result<Option<u64>, StoreError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.fingerprint_bytes().map(Some),
            _ => Err(corrupt("bad fingerprint flag in a manifest")),
        }
    }

    fn fingerprint_bytes(&mut self) -> Result<u64, StoreError> {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(self.take(6)?);
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let n = self.varint()?;
        let b = self.take(n)?.to_vec();
        String::from_utf8(b).map_err(|_| corrupt("a manifest string is not UTF-8"))
    }

    fn front_coded(&mut self, prev: &str) -> Result<String, StoreError> {
        let shared = self.varint()?;
        let rest = self.varint()?;
        let head = prev
            .as_bytes()
            .get(..shared)
            .ok_or_else(|| corrupt("shared prefix longer than the previous id"))?;
        let mut b = head.to_vec();
        b.extend_from_slice(self.take(rest)?);
        String::from_utf8(b).map_err(|_| corrupt("a manifest id is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vk(kind: Target, id: &str, metric: &str, app: &str) -> ValueKey {
        ValueKey {
            object: (kind, id.into()),
            metric: metric.into(),
            app: app.into(),
        }
    }

    #[test]
    fn round_trips_and_stays_small_for_a_daily_chunk() {
        let mut m = Manifest::default();
        for c in 0..2000 {
            for metric in ["Feature clicks", "Feature minutes"] {
                m.values
                    .insert(vk(Target::Company, &format!("account-{c:05}"), metric, ""));
            }
        }
        m.users.insert("u#1".into());
        m.users.insert("u#10".into());
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        // About 5 bytes a company: kind, shared length, rest length, the digits that changed
        // and "the same metrics as the previous company"; then a byte: no fingerprint known.
        assert_eq!(bytes.len(), 10_279 + 1);
        // With every fingerprint known: 6 bytes more an object and a user.
        for (i, o) in m.objects().into_iter().enumerate() {
            m.object_fps.insert(o, fingerprint(&i.to_le_bytes()));
        }
        m.user_fps.insert("u#1".into(), 7);
        m.user_fps.insert("u#10".into(), 8);
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(bytes.len(), 10_279 + 1 + 2_002 * 6);
        // Some known: a flag byte each.
        m.user_fps.remove("u#1");
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(bytes.len(), 10_279 + 1 + 2_002 + 2_001 * 6);
    }

    /// Format 1 (before fingerprints) is still read: every item's content unknown.
    #[test]
    fn format_1_reads_without_fingerprints() {
        let bytes = [1, 1, 1, b'x', 0, 1, 0, 0, 1, b'a', 1, 0, 1, 0, 1, b'u'];
        let m = Manifest::decode(&bytes).unwrap();
        assert_eq!(m.values, [vk(Target::Company, "a", "x", "")].into());
        assert_eq!(m.users, ["u".to_string()].into());
        assert!(m.object_fps.is_empty() && m.user_fps.is_empty());
    }

    /// The replace's arithmetic: what to put, what the manifest says before and after.
    #[test]
    fn fingerprints_follow_the_items() {
        let o = |id: &str| (Target::Company, id.to_string());
        let (a, b, c, d) = (
            vk(Target::Company, "a", "x", ""),
            vk(Target::Company, "b", "x", ""),
            vk(Target::Company, "c", "x", ""),
            vk(Target::Company, "d", "x", ""),
        );
        let b2 = vk(Target::Company, "b", "y", "");
        let stored = Manifest {
            values: [a.clone(), b.clone(), b2.clone(), c.clone()].into(),
            object_fps: [(o("a"), 1), (o("b"), 2)].into(),
            ..Manifest::default()
        };
        // The chunk: a unchanged, b changed (one of its two values), c (content unknown in
        // the manifest) and d new.
        let chunk = Manifest {
            values: [a.clone(), b.clone(), b2.clone(), c.clone(), d.clone()].into(),
            object_fps: [(o("a"), 1), (o("b"), 9), (o("c"), 3), (o("d"), 4)].into(),
            ..Manifest::default()
        };
        let put = chunk.changed_from(&stored);
        assert_eq!(
            put.values,
            [b.clone(), b2.clone(), c.clone(), d.clone()].into()
        );
        // Before the puts: every key listed, only a's fingerprint kept.
        let listed = stored.union(&chunk);
        assert_eq!(listed.values.len(), 5);
        assert_eq!(listed.object_fps, [(o("a"), 1)].into());
        // After them: the chunk's.
        assert_eq!(
            listed.clone().with_fingerprints_of(&chunk).object_fps,
            chunk.object_fps
        );
        // A chunk's items re-listed after a race carry none of its own.
        let raced = stored.union(&chunk.keys_only());
        assert!(raced.object_fps.is_empty());
        assert!(chunk.changed_from(&chunk).is_empty());
        // An object losing one of its values loses its fingerprint; one left whole keeps it.
        let without_b2 = Manifest {
            values: [b2.clone()].into(),
            ..Manifest::default()
        };
        let left = listed.with_fingerprints_of(&chunk).minus(&without_b2);
        assert!(!left.object_fps.contains_key(&o("b")));
        assert_eq!(left.object_fps.get(&o("a")), Some(&1));
    }

    #[test]
    fn objects_with_different_metrics_keep_them() {
        let m = Manifest {
            values: [
                vk(Target::Company, "a", "x", ""),
                vk(Target::Company, "a", "y", "1"),
                vk(Target::EndUser, "a", "x", ""),
                vk(Target::Asset, "b", "y", "1"),
                vk(Target::Project, "é#", "x", ""),
            ]
            .into(),
            ..Manifest::default()
        };
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        assert_eq!(
            Manifest::decode(&Manifest::default().encode()).unwrap(),
            Manifest::default()
        );
    }

    #[test]
    fn set_operations() {
        let a = Manifest {
            values: [vk(Target::Company, "a", "x", "")].into(),
            users: ["u1".to_string(), "u2".to_string()].into(),
            ..Manifest::default()
        };
        let b = Manifest {
            users: ["u2".to_string()].into(),
            ..Manifest::default()
        };
        assert!(b.is_subset(&a));
        assert!(!a.is_subset(&b));
        assert_eq!(a.minus(&b).len(), 2);
        assert_eq!(b.union(&a), a);
    }

    #[test]
    fn bad_bytes_are_corrupt_not_a_panic() {
        for bad in [
            &[][..],
            &[3][..],
            &[2, 0, 0, 1, 1, b'u', 3][..],
            &[2, 0, 0, 1, 1, b'u', 2, 1, 0][..],
            &[1, 0, 1, 9][..],
            &[1, 1, 1, b'x', 0, 1, 0, 0, 1, 0][..],
            &[1, 0, 0, 1, 5, 1, b'a'][..],
            &[1, 0, 0, 1, 0, 2, 0xff, 0xfe][..],
            &[1, 0, 0, 0, 7][..],
        ] {
            assert!(
                matches!(Manifest::decode(bad), Err(StoreError::Corrupt { .. })),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_manifest_round_trips(
            values in proptest::collection::vec((0usize..4, ".{0,6}", "[ab#]{0,3}", "[ab]{0,2}"), 0..20),
            users in proptest::collection::btree_set(".{0,8}", 0..10),
            known in proptest::collection::vec(any::<Option<u64>>(), 30),
        ) {
            let values: BTreeSet<ValueKey> = values
                .into_iter()
                .map(|(k, id, metric, app)| vk(KINDS[k], &id, &metric, &app))
                .collect();
            let mut fps = known.into_iter().map(|fp| fp.map(|f| f & FP_MASK));
            let objects: BTreeSet<(Target, String)> = values.iter().map(|v| v.object.clone()).collect();
            let object_fps = objects
                .into_iter()
                .filter_map(|o| fps.next().flatten().map(|fp| (o, fp)))
                .collect();
            let user_fps = users
                .iter()
                .filter_map(|u| fps.next().flatten().map(|fp| (u.clone(), fp)))
                .collect();
            let m = Manifest { values, users, object_fps, user_fps };
            prop_assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
