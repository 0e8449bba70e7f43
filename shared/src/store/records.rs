//! The records of one chunk as a store's `replace_chunk_from` reads them: produced on demand,
//! with slots that let an adapter resolve an object or metric once.

#[cfg(doc)]
use super::DataStore;
use super::StoreError;
use crate::domain::{Activity, MetricValue, ObjectRef};

/// Which object and which metric (or label) a record of a chunk is of: within one
/// [`ChunkRecords`], values with the same `object` slot are of one object (kind and id) and
/// values with the same `metric` slot of one metric and app; activity records with the same
/// `object` slot are of one end user and company, and with the same `metric` slot of one label
/// (the objects of one chunk are of one kind).
/// A store may then resolve each slot once instead of each record's text. `None`: not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slots {
    pub object: Option<u32>,
    pub metric: Option<u32>,
}

/// Which records of a [`ChunkRecords`] call carry their object's text (the object's id; for
/// activity, the end user's and the company's ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// Every record.
    Every,
    /// Only records without an object slot. A record with one carries no object text (what its
    /// fields hold is any text): its object is [`ChunkRecords::slot_object`] (values) or
    /// [`ChunkRecords::slot_owner`] (activity) of the slot, for a caller that does not know the
    /// slot yet.
    Unslotted,
}

/// The values and activity records of one chunk, produced on demand: a chunk of a large
/// response aggregates to hundreds of thousands of records, and an adapter that writes as it
/// goes ([`DataStore::replace_chunk_from`]) then never holds them all as owned structs.
pub trait ChunkRecords: Sync {
    /// A number that makes object slots hold beyond these records: records of two
    /// [`ChunkRecords`] of one tenant with the same space give one object (per object kind),
    /// and one end user and company, the same `object` slot. `None`: the slots mean something
    /// within these records only.
    fn slot_space(&self) -> Option<u64> {
        None
    }
    /// The object of a value's object slot.
    fn slot_object(&self, _slot: u32) -> Option<ObjectRef> {
        None
    }
    /// The end user and company ids of an activity record's object slot.
    fn slot_owner(&self, _slot: u32) -> Option<(String, String)> {
        None
    }
    /// Calls `f` with every value and its [`Slots`], stopping at its first error.
    fn for_each_value(
        &self,
        text: Text,
        f: &mut dyn FnMut(&MetricValue, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Calls `f` with every activity record and its [`Slots`], stopping at its first error.
    fn for_each_activity(
        &self,
        text: Text,
        f: &mut dyn FnMut(&Activity, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// Records already in memory.
pub struct RecordSlices<'a> {
    pub values: &'a [MetricValue],
    pub activities: &'a [Activity],
}

impl ChunkRecords for RecordSlices<'_> {
    fn for_each_value(
        &self,
        _: Text,
        f: &mut dyn FnMut(&MetricValue, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.values.iter().try_for_each(|v| f(v, Slots::default()))
    }
    fn for_each_activity(
        &self,
        _: Text,
        f: &mut dyn FnMut(&Activity, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.activities
            .iter()
            .try_for_each(|a| f(a, Slots::default()))
    }
}

/// Every record of `records`, owned.
pub fn collect_records(
    records: &dyn ChunkRecords,
) -> Result<(Vec<MetricValue>, Vec<Activity>), StoreError> {
    let mut values = Vec::new();
    records.for_each_value(Text::Every, &mut |v, _| {
        values.push(v.clone());
        Ok(())
    })?;
    let mut activities = Vec::new();
    records.for_each_activity(Text::Every, &mut |a, _| {
        activities.push(a.clone());
        Ok(())
    })?;
    Ok((values, activities))
}
