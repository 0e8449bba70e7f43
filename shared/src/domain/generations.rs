//! Which generation of stored values each mapping writes and which one reads show.
//!
//! A tenant's values are stored by generation. A Re-sync all writes a new generation for every
//! mapping while reads show the last complete one (`Integration::generation` and `published`).
//! A single mapping's rebuild (after an edit in place) does the same for that mapping alone: it
//! writes a generation of its own while reads of its values show the old one, and reads move to
//! the new one in one write when it is whole (`OwnGeneration`). The rules here are the only
//! place that says which generation a mapping writes, shows and keeps; both stores, the runs
//! and the purge ask them.

use super::{Integration, MappingId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A mapping whose values live in a generation of its own: the one its last rebuild wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnGeneration {
    /// The generation its runs write (that of its last rebuild).
    pub written: u64,
    /// The generation reads of its values show (`None`: the integration's, until its first
    /// rebuild is whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<u64>,
}

/// A tenant's generations: the one runs write, the one reads show, and the mappings with a
/// generation of their own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Generations {
    pub written: u64,
    pub published: u64,
    pub own: BTreeMap<MappingId, OwnGeneration>,
}

impl Generations {
    /// Generation `g` written and shown by every mapping.
    pub fn single(g: u64) -> Self {
        Self {
            written: g,
            published: g,
            own: BTreeMap::new(),
        }
    }

    /// Whether a Re-sync all is building a generation reads do not show yet.
    pub fn resync_pending(&self) -> bool {
        self.written != self.published
    }

    /// The generation a run of `m` writes: a Re-sync all's while one is pending (it rebuilds
    /// every mapping), else its own rebuild's, else the integration's.
    pub fn writes(&self, m: &MappingId) -> u64 {
        match self.own.get(m) {
            Some(o) if !self.resync_pending() => o.written,
            _ => self.written,
        }
    }

    /// The generation reads of `m`'s values show.
    pub fn shows(&self, m: &MappingId) -> u64 {
        self.own
            .get(m)
            .and_then(|o| o.shown)
            .unwrap_or(self.published)
    }

    /// Whether `m`'s values of generation `g` may stay stored: written or shown.
    pub fn keeps(&self, m: &MappingId, g: u64) -> bool {
        g == self.writes(m) || g == self.shows(m)
    }

    /// The generation `m`'s rebuild is writing while reads show another one, if any (none
    /// while a Re-sync all is pending: it writes every mapping).
    pub fn rebuilding(&self, m: &MappingId) -> Option<u64> {
        let o = self.own.get(m).filter(|_| !self.resync_pending())?;
        (Some(o.written) != o.shown).then_some(o.written)
    }

    /// The mappings whose rebuild is writing values reads do not show yet.
    pub fn rebuilds(&self) -> impl Iterator<Item = &MappingId> {
        self.own.keys().filter(|m| self.rebuilding(m).is_some())
    }

    /// Every generation some read shows (usually one).
    pub fn shown(&self) -> BTreeSet<u64> {
        let own = self.own.values().filter_map(|o| o.shown);
        std::iter::once(self.published).chain(own).collect()
    }

    /// Every generation some mapping may keep values of (written or shown by any).
    pub fn live(&self) -> Vec<u64> {
        let own = self.own.values().flat_map(|o| [Some(o.written), o.shown]);
        let all: BTreeSet<u64> = [self.written, self.published]
            .into_iter()
            .chain(own.flatten())
            .collect();
        all.into_iter().collect()
    }

    /// The mappings that may keep values in some generation the whole tenant does not keep,
    /// with what each keeps: their old values are purged mapping by mapping.
    pub fn own_keep(&self) -> Vec<(MappingId, Vec<u64>)> {
        self.own
            .keys()
            .map(|m| {
                let mut keep = vec![self.writes(m), self.shows(m)];
                keep.dedup();
                (m.clone(), keep)
            })
            .collect()
    }
}

impl Integration {
    /// The generations of this integration (see [`Generations`]).
    pub fn generations(&self) -> Generations {
        Generations {
            written: self.generation,
            published: self.read_generation(),
            own: self.own.clone(),
        }
    }

    /// A fresh generation number: never given before.
    pub(super) fn issue(&mut self) -> u64 {
        let next = self.issued.unwrap_or(self.generation).max(self.generation) + 1;
        self.issued = Some(next);
        next
    }

    /// Starts the rebuild of mapping `m`: its runs write a fresh generation while reads keep
    /// showing its current values. `None` (nothing changed) while a Re-sync all is pending: that
    /// rebuilds every mapping already.
    pub fn begin_rebuild(&mut self, m: &MappingId) -> Option<u64> {
        if self.resync_pending() {
            return None;
        }
        let shown = self.own.get(m).and_then(|o| o.shown);
        let written = self.issue();
        self.own.insert(m.clone(), OwnGeneration { written, shown });
        Some(written)
    }

    /// Ends `m`'s rebuild of `generation`: reads of its values show it, and its older values are
    /// to be purged. False (nothing changed) when `m` no longer writes it or reads show it.
    pub fn publish_rebuild(&mut self, m: &MappingId, generation: u64) -> bool {
        if self.generations().rebuilding(m) != Some(generation) {
            return false;
        }
        if let Some(o) = self.own.get_mut(m) {
            o.shown = Some(generation);
        }
        self.purge_pending = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn id(s: &str) -> MappingId {
        MappingId::parse(s).unwrap()
    }

    /// A rebuild writes a generation of its own while reads show the old values; publishing
    /// moves that mapping's reads alone; a Re-sync all writes every mapping into its generation
    /// and, once published, ends the mappings' own generations.
    #[test]
    fn a_rebuild_has_a_generation_of_its_own_until_a_resync() {
        let (a, b) = (id("a"), id("b"));
        let mut i = Integration::new(TenantId::parse("t").unwrap());
        assert_eq!(i.begin_rebuild(&a), Some(2));
        let g = i.generations();
        assert_eq!((g.writes(&a), g.shows(&a)), (2, 1));
        assert_eq!((g.writes(&b), g.shows(&b)), (1, 1));
        assert_eq!(g.rebuilding(&a), Some(2));
        assert_eq!(g.rebuilding(&b), None);
        assert_eq!(g.rebuilds().collect::<Vec<_>>(), vec![&a]);
        assert_eq!(g.live(), vec![1, 2]);
        assert_eq!(g.shown(), BTreeSet::from([1]));
        assert!(g.keeps(&a, 1) && g.keeps(&a, 2) && !g.keeps(&b, 2));
        assert!(!i.publish_rebuild(&b, 2));
        assert!(!i.publish_rebuild(&a, 3));
        assert!(i.publish_rebuild(&a, 2));
        assert!(!i.publish_rebuild(&a, 2));
        assert!(i.purge_pending);
        let g = i.generations();
        assert_eq!((g.writes(&a), g.shows(&a), g.rebuilding(&a)), (2, 2, None));
        assert!(!g.keeps(&a, 1) && g.keeps(&b, 1));
        assert_eq!(g.own_keep(), vec![(a.clone(), vec![2])]);
        // A second rebuild: its own new generation; reads show the first rebuild's meanwhile.
        assert_eq!(i.begin_rebuild(&a), Some(3));
        let g = i.generations();
        assert_eq!((g.writes(&a), g.shows(&a)), (3, 2));
        assert_eq!(g.live(), vec![1, 2, 3]);
        // A Re-sync all: every mapping writes 4; reads keep what they showed until it is whole.
        i.begin_resync();
        assert_eq!(i.begin_rebuild(&b), None);
        let g = i.generations();
        assert_eq!(
            (g.writes(&a), g.shows(&a), g.writes(&b), g.shows(&b)),
            (4, 2, 4, 1)
        );
        assert_eq!(g.rebuilding(&a), None);
        assert!(!g.keeps(&a, 3));
        assert!(i.publish(4));
        let g = i.generations();
        assert_eq!((g.writes(&a), g.shows(&a), g.live()), (4, 4, vec![4]));
        // A discarded Re-sync all gives a rebuild back its own generation.
        assert_eq!(i.begin_rebuild(&a), Some(5));
        i.begin_resync();
        assert!(i.discard_resync());
        let g = i.generations();
        assert_eq!((g.writes(&a), g.shows(&a)), (5, 4));
    }

    #[test]
    fn own_generations_round_trip_and_are_absent_when_empty() {
        let mut i = Integration::new(TenantId::parse("t").unwrap());
        let v = serde_json::to_value(&i).unwrap();
        assert!(v.get("own").is_none());
        i.begin_rebuild(&id("m1"));
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["own"], serde_json::json!({"m1": {"written": 2}}));
        let back: Integration = serde_json::from_value(v).unwrap();
        assert_eq!(back, i);
    }
}
