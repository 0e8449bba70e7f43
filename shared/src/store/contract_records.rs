//! The store contract, records produced on demand: `replace_chunk_from` keeps
//! `replace_chunk`'s contract whether the records carry their objects' text or only slots.
//! Run against every adapter by `store_contract_tests!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contract::{d, integration, tenant, value};
use super::{ActivityOf, ChunkRecords, RecordSlices, Slots, Store, StoreError, Text};
use crate::domain::Window;
use crate::domain::*;

/// Values of companies known by slot (0 = acme, 1 = beta) and activity of end users known by
/// slot (0 = u1 of acme): with [`Text::Unslotted`] their records carry no object text.
struct Slotted {
    values: Vec<(u32, MetricValue)>,
    activities: Vec<(u32, Activity)>,
}

const COMPANIES: [&str; 2] = ["acme", "beta"];

impl ChunkRecords for Slotted {
    fn slot_space(&self) -> Option<u64> {
        Some(7)
    }
    fn slot_object(&self, slot: u32) -> Option<ObjectRef> {
        COMPANIES.get(slot as usize).map(|c| ObjectRef {
            kind: Target::Company,
            id: c.to_string(),
        })
    }
    fn slot_owner(&self, slot: u32) -> Option<(String, String)> {
        (slot == 0).then(|| ("acme|x:u1".to_string(), "acme".to_string()))
    }
    fn for_each_value(
        &self,
        text: Text,
        f: &mut dyn FnMut(&MetricValue, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (slot, v) in &self.values {
            let mut v = v.clone();
            if text == Text::Unslotted {
                v.object.id = "not this text".into();
            }
            let slots = Slots {
                object: Some(*slot),
                metric: Some(0),
            };
            f(&v, slots)?;
        }
        Ok(())
    }
    fn for_each_activity(
        &self,
        text: Text,
        f: &mut dyn FnMut(&Activity, Slots) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (slot, a) in &self.activities {
            let mut a = a.clone();
            if text == Text::Unslotted {
                a.end_user_id = "not this text".into();
                a.company_id = "nor this".into();
            }
            let slots = Slots {
                object: Some(*slot),
                metric: Some(0),
            };
            f(&a, slots)?;
        }
        Ok(())
    }
}

/// `replace_chunk_from` writes what `replace_chunk` would with the same records (a record with
/// an object slot is of that slot's object, whatever its text), replaces exactly the window on
/// a rewrite (slots of the same space meaning the same objects), and refuses a stale generation.
pub async fn replace_chunk_from_writes_what_replace_chunk_would(s: &dyn Store) {
    let t = tenant("c-records");
    let i = integration(s, &t).await;
    let m = MappingId::parse("m#1").unwrap();
    let w = Window {
        from: d("2026-11-01"),
        to: d("2026-11-02"),
    };
    let act = Activity {
        end_user_id: "acme|x:u1".into(),
        company_id: "acme".into(),
        mapping_id: m.clone(),
        label: "Clicks".into(),
        day: d("2026-11-02"),
        events: 3.0,
        minutes: 1.5,
        passive: false,
    };
    let first = Slotted {
        values: vec![
            (0, value("acme", "Clicks", "2026-11-01", 1.0)),
            (0, value("acme", "Clicks", "2026-11-02", 2.0)),
            (1, value("beta", "Clicks", "2026-11-01", 3.0)),
        ],
        activities: vec![(0, act.clone())],
    };
    s.replace_chunk_from(&t, i.generation, &m, w, &first)
        .await
        .unwrap();
    let series = |id: &str| {
        let obj = ObjectRef {
            kind: Target::Company,
            id: id.into(),
        };
        let t = t.clone();
        async move {
            s.read_series(&t, &obj, "Clicks", d("2026-10-01"), d("2026-12-01"))
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.day, p.value))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        series("acme").await,
        vec![(d("2026-11-01"), 1.0), (d("2026-11-02"), 2.0)]
    );
    assert_eq!(series("beta").await, vec![(d("2026-11-01"), 3.0)]);
    let of_user = ActivityOf::EndUser("acme|x:u1".into());
    assert_eq!(
        s.recent_activity(&t, &of_user, d("2026-10-01"), 10)
            .await
            .unwrap(),
        vec![act.clone()]
    );
    // The same records through `replace_chunk` give the same export.
    let exported = s.export(Some(&t)).await.unwrap();
    let u = tenant("c-records-plain");
    let j = integration(s, &u).await;
    let values: Vec<MetricValue> = first.values.iter().map(|(_, v)| v.clone()).collect();
    s.replace_chunk(&u, j.generation, &m, w, &values, std::slice::from_ref(&act))
        .await
        .unwrap();
    let plain = s.export(Some(&u)).await.unwrap();
    let without_tenant = |rows: Vec<ExportRow>| {
        rows.into_iter()
            .map(|r| ExportRow {
                tenant: String::new(),
                ..r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_tenant(exported), without_tenant(plain));

    // A rewrite of the window (slots of the same space) replaces it: beta's day is gone.
    let second = Slotted {
        values: vec![(0, value("acme", "Clicks", "2026-11-02", 5.0))],
        activities: Vec::new(),
    };
    s.replace_chunk_from(&t, i.generation, &m, w, &second)
        .await
        .unwrap();
    assert_eq!(series("acme").await, vec![(d("2026-11-02"), 5.0)]);
    assert_eq!(series("beta").await, Vec::new());
    assert_eq!(
        s.recent_activity(&t, &of_user, d("2026-10-01"), 10)
            .await
            .unwrap(),
        Vec::new()
    );
    // Records already in memory, and a stale generation that writes nothing.
    let slices = RecordSlices {
        values: &[value("beta", "Clicks", "2026-11-02", 6.0)],
        activities: &[],
    };
    assert!(matches!(
        s.replace_chunk_from(&t, i.generation + 1, &m, w, &slices)
            .await,
        Err(StoreError::StaleGeneration(_))
    ));
    s.replace_chunk_from(&t, i.generation, &m, w, &slices)
        .await
        .unwrap();
    assert_eq!(series("acme").await, Vec::new());
    assert_eq!(series("beta").await, vec![(d("2026-11-02"), 6.0)]);
}
