//! Pendo Sync core: everything the service does, behind ports.
//!
//! - `domain`: types and validation (integration, mappings, directory, values, runs).
//! - `time`: local days and the last complete day (pure).
//! - `pendo`: the Pendo port, its HTTP adapter, the streaming row parser, retries, pipelines.
//! - `sync`: planning, identity resolution, the row transform and the chunk worker.
//! - `store`: the store port, its contract suite and the embedded SQLite adapter.
//! - `queue`: the queue port, its contract and the in-process adapter.
//! - `clock`: the clock port.
//! - `app`: the use cases every entry point calls (local runner, HTTP API, Lambda handlers).
//!
//! The core never panics on outside data and never logs the integration key.

pub mod app;
pub mod clock;
pub mod domain;
pub mod error;
pub mod pendo;
pub mod queue;
pub mod store;
pub mod sync;
pub mod time;
pub mod worker;

pub use app::{App, AppError, Ports};
pub use error::ValidationError;
