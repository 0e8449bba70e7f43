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

use crate::domain::{ObjectRef, Target};
use crate::store::StoreError;
use std::collections::{BTreeMap, BTreeSet};

/// Format version, the first byte of every encoding.
const FORMAT: u8 = 1;
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

    pub fn union(&self, other: &Manifest) -> Manifest {
        Manifest {
            values: self.values.union(&other.values).cloned().collect(),
            users: self.users.union(&other.users).cloned().collect(),
        }
    }

    /// What `self` lists that `other` does not.
    pub fn minus(&self, other: &Manifest) -> Manifest {
        Manifest {
            values: self.values.difference(&other.values).cloned().collect(),
            users: self.users.difference(&other.users).cloned().collect(),
        }
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
        out
    }

    /// # Errors
    /// `Corrupt` when `bytes` is not an encoding of this format.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, StoreError> {
        let mut r = Reader { bytes, at: 0 };
        if r.byte()? != FORMAT {
            return Err(corrupt("unknown manifest format"));
        }
        let n_pairs = r.varint()?;
        let mut pairs = Vec::new();
        for _ in 0..n_pairs {
            pairs.push((r.string()?, r.string()?));
        }
        let mut values = BTreeSet::new();
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
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes after a manifest"));
        }
        Ok(Manifest { values, users })
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
        // and "the same metrics as the previous company".
        assert_eq!(bytes.len(), 10_279);
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
            users: BTreeSet::new(),
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
        };
        let b = Manifest {
            values: BTreeSet::new(),
            users: ["u2".to_string()].into(),
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
            &[2][..],
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
        ) {
            let m = Manifest {
                values: values
                    .into_iter()
                    .map(|(k, id, metric, app)| vk(KINDS[k], &id, &metric, &app))
                    .collect(),
                users,
            };
            prop_assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
