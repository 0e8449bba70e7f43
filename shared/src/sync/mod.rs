//! The sync engine: planning (`plan`), identity (`identity`), the hot-path transform
//! (`transform`), queue messages (`messages`) and the chunk worker (`engine`).

pub mod engine;
pub mod identity;
pub mod messages;
pub mod plan;
pub mod transform;
