//! The sync engine: planning (`plan`), identity (`identity`), the hot-path transform
//! (`transform`), the order of a run's chunks (`waves`), the chunk worker (`engine`), the Re-sync
//! all worker (`resync`) and its end (`publish`: reads move to the new generation once it is
//! whole), how a message ended (`processed`), the
//! directory snapshots it shares (`directory_cache`), the rows no object took (`unmatched`);
//! per-day pipeline mappings: `report_source`, `pes`, `custom_rows` (their transform) and
//! `pipeline_fetch`; the Pendo objects mappings refer to (`references`); one Pendo call for several mappings
//! (`share`).

pub mod custom_rows;
pub mod directory_cache;
pub mod engine;
pub mod guide_source;
pub mod identity;
pub mod persist;
pub mod pes;
pub mod pipeline_fetch;
pub mod plan;
pub mod poll_source;
pub mod processed;
pub mod publish;
pub mod references;
pub mod report_source;
pub mod resync;
pub mod share;
pub mod transform;
pub mod unmatched;
pub mod user_list;
pub mod waves;
