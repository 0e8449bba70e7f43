//! A transformed chunk as a store reads it: the accumulator's sums turned into value and
//! activity records on demand.

use super::sums::Sums;
use super::{ChunkAccumulator, Fill, ValueKey};
use crate::domain::apps::multi_app_metric_name;
use crate::domain::{Activity, MetricValue, ObjectRef, SkippedRows, Target};
use crate::store::{ChunkRecords, Slots, StoreError, Text};
use crate::sync::unmatched::UnmatchedEntry;

/// A transformed chunk: the aggregated sums, turned into values and activity records only as a
/// store reads them ([`ChunkRecords`]), so a chunk of a million rows never exists as a million
/// owned records.
pub struct PreparedChunk<'d> {
    pub(super) acc: ChunkAccumulator<'d>,
    pub(super) created: Vec<String>,
    pub(super) fills: Vec<Fill>,
}

impl PreparedChunk<'_> {
    /// (service id, company id) of an end-user slot.
    fn user(&self, slot: u32) -> Option<(&str, &str)> {
        let base = self.acc.dir.user_count() as u32;
        if slot < base {
            self.acc.dir.user(slot).map(|u| (u.id, u.company_id))
        } else {
            let p = (slot - base) as usize;
            Some((
                self.created.get(p)?.as_str(),
                self.acc.pending.get(p)?.company_id.as_str(),
            ))
        }
    }

    fn object_id(&self, obj: u32) -> Option<&str> {
        match self.acc.spec.target {
            Target::EndUser => self.user(obj).map(|(id, _)| id),
            kind => self.acc.dir.object_id(kind, obj),
        }
    }

    /// Whether the object (or end user) of a slot exists: a slot of the snapshot always does;
    /// a user this chunk creates once it was created.
    fn exists(&self, slot: u32, user: bool) -> bool {
        self.stable(slot, user).is_some() || self.user(slot).is_some()
    }

    /// Values the chunk writes.
    pub fn value_count(&self) -> u64 {
        let per = 1 + u64::from(self.acc.spec.minutes_metric.is_some());
        let users = self.acc.spec.target == Target::EndUser;
        let objects = self
            .acc
            .values
            .keys()
            .filter(|(obj, _, _)| self.exists(*obj, users))
            .count() as u64;
        objects * per
    }

    /// Activity records the chunk writes.
    pub fn activity_count(&self) -> u64 {
        self.acc
            .activity
            .sorted()
            .iter()
            .filter(|((_, slot), _)| self.exists(*slot, true))
            .count() as u64
    }

    /// Fields to fill in on existing end users, by user id.
    pub fn fills(&self) -> &[Fill] {
        &self.fills
    }

    pub fn rows_read(&self) -> u64 {
        self.acc.rows_read
    }

    pub fn rows_skipped(&self) -> u64 {
        self.acc.skipped.total()
    }

    pub fn skipped(&self) -> &SkippedRows {
        &self.acc.skipped
    }

    /// The chunk's unmatched identities, bounded, per day.
    pub fn unmatched(&self) -> Vec<UnmatchedEntry> {
        self.acc.unmatched.entries()
    }
}

impl PreparedChunk<'_> {
    /// The slot of an end user or object in the slot space (the directory snapshot): a user
    /// the chunk creates has a slot of this chunk only.
    fn stable(&self, slot: u32, user: bool) -> Option<u32> {
        (!user || (slot as usize) < self.acc.dir.user_count()).then_some(slot)
    }
}

impl ChunkRecords for PreparedChunk<'_> {
    fn slot_space(&self) -> Option<u64> {
        Some(self.acc.dir.snapshot())
    }

    fn slot_object(&self, slot: u32) -> Option<ObjectRef> {
        Some(ObjectRef {
            kind: self.acc.spec.target,
            id: self.object_id(slot)?.to_string(),
        })
    }

    fn slot_owner(&self, slot: u32) -> Option<(String, String)> {
        self.user(slot)
            .map(|(user, company)| (user.to_string(), company.to_string()))
    }

    fn for_each_value(
        &self,
        text: Text,
        f: &mut dyn FnMut(&MetricValue, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let spec = &self.acc.spec;
        // Metric names per app slot, built once.
        let names: Vec<(String, Option<String>)> = self
            .acc
            .app_slots
            .iter()
            .map(|(_, prefix)| {
                let name = |m: &str| {
                    if spec.multi_app {
                        multi_app_metric_name(prefix, m)
                    } else {
                        m.to_string()
                    }
                };
                (name(&spec.metric), spec.minutes_metric.as_deref().map(name))
            })
            .collect();
        // In the store's key order: metric by metric (the events metric of every app, then the
        // minutes metric), each by day, then object (the directory is sorted by id), so a
        // chunk's inserts go to one range of the table per metric.
        let mut entries: Vec<(&ValueKey, &Sums)> = self.acc.values.iter().collect();
        entries.sort_unstable_by_key(|((obj, app, day), _)| (*app, *day, *obj));
        // One record reused: its strings keep their buffers from value to value.
        let mut v = MetricValue {
            object: ObjectRef {
                kind: spec.target,
                id: String::new(),
            },
            metric: String::new(),
            app: String::new(),
            day: spec.window.from,
            value: 0.0,
        };
        // The (metric, app slot) `v` holds.
        let mut current: Option<(bool, u16)> = None;
        let users = spec.target == Target::EndUser;
        for minutes in [false, true] {
            if minutes && spec.minutes_metric.is_none() {
                break;
            }
            for ((obj, app, day), sums) in &entries {
                // A slot of the snapshot is an object that exists; a user this chunk creates may
                // have failed to be created.
                let object = self.stable(*obj, users);
                if object.is_none() || text == Text::Every {
                    let Some(id) = self.object_id(*obj) else {
                        continue;
                    };
                    v.object.id.clear();
                    v.object.id.push_str(id);
                }
                let Some(slot_names) = names.get(*app as usize) else {
                    continue;
                };
                let metric = match (minutes, &slot_names.1) {
                    (false, _) => &slot_names.0,
                    (true, Some(m)) => m,
                    (true, None) => continue,
                };
                if current != Some((minutes, *app)) {
                    current = Some((minutes, *app));
                    v.metric.clone_from(metric);
                    v.app.clear();
                    v.app.push_str(
                        self.acc
                            .app_slots
                            .get(*app as usize)
                            .map_or("", |(k, _)| k.as_str()),
                    );
                }
                v.day = *day;
                v.value = if minutes { sums.minutes } else { sums.events };
                let slots = Slots {
                    object,
                    metric: Some(u32::from(*app) * 2 + u32::from(minutes)),
                };
                f(&v, slots)?;
            }
        }
        Ok(())
    }

    fn for_each_activity(
        &self,
        text: Text,
        f: &mut dyn FnMut(&Activity, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let spec = &self.acc.spec;
        let mut a = Activity {
            end_user_id: String::new(),
            company_id: String::new(),
            mapping_id: spec.mapping_id.clone(),
            label: spec.metric.clone(),
            day: spec.window.from,
            events: 0.0,
            minutes: 0.0,
            passive: spec.passive,
        };
        // In the store's key order: by day, then end user (as merged).
        for ((day, slot), sums) in self.acc.activity.sorted() {
            let owner = self.stable(*slot, true);
            if owner.is_none() || text == Text::Every {
                let Some((user, company)) = self.user(*slot) else {
                    continue;
                };
                // One record reused: its strings keep their buffers from row to row.
                a.end_user_id.clear();
                a.end_user_id.push_str(user);
                a.company_id.clear();
                a.company_id.push_str(company);
            }
            a.day = *day;
            a.events = sums.events;
            a.minutes = sums.minutes;
            // One label in a chunk.
            let slots = Slots {
                object: owner,
                metric: Some(0),
            };
            f(&a, slots)?;
        }
        Ok(())
    }
}
