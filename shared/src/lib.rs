//! Pendo Sync core: everything the service does, behind ports.
//!
//! - `domain`: types and validation (integration, mappings, directory, values, runs).
//! - `time`: local days and the last complete day (pure).
//! - `pendo`: the Pendo port, its HTTP adapter, the streaming row parser, retries, pipelines.
//! - `sync`: planning, identity resolution, the row transform and the chunk worker.
//! - `store`: the store port, its contract suite, the embedded SQLite and DynamoDB adapters.
//! - `queue`: the queue port, its contract, the in-process and SQS adapters.
//! - `clock`: the clock port.
//! - `app`: the use cases every entry point calls (local runner, HTTP API, Lambda handlers).
//! - `lambda`, `aws_env` (feature `aws`): the Lambda handlers and their wiring from env vars.
//!
//! The core never panics on outside data and never logs the integration key.

pub mod api;
pub mod app;
#[cfg(feature = "aws")]
pub mod aws_env;
pub mod clock;
pub mod domain;
pub mod error;
#[cfg(test)]
mod hostile;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod pendo;
pub mod queue;
pub mod store;
pub mod sync;
pub mod time;
pub mod worker;

pub use app::{App, AppError, Ports};
pub use error::ValidationError;
