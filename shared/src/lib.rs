//! Pendo Sync core: everything the service does, behind ports.
//!
//! - `domain`: types and validation (integration, mappings, directory, values, runs).
//! - `time`: local days and the last complete day (pure).
//! - `pendo`: the Pendo port, its HTTP adapter, the streaming row parser, retries, pipelines.
//! - `sync`: planning, identity resolution, the row transform and the chunk worker.
//! - `store`: the store port, its contract suite, the embedded SQLite and DynamoDB adapters.
//! - `queue`: the queue port, its contract, the embedded (durable, local) and SQS adapters.
//! - `clock`: the clock port.
//! - `directory`: directory batches and per-row errors, CSV uploads (feature `api`), imports
//!   from Pendo.
//! - `schedule`: when the daily sync runs (pure).
//! - `ports`: the bundle of ports (store, queue, Pendo, clock) the workers and use cases take.
//! - `app`: the use cases every entry point calls (local runner, HTTP API, Lambda handlers):
//!   `mappings` (creating and editing mappings, their references checked with Pendo), `reads`,
//!   `directory` (batches and uploads), `imports` (the directory from Pendo) and `recovery` (what
//!   each mapping could not use, and its recovery once the directory knows it).
//! - `api` (feature `api`): the configurator HTTP API.
//! - `lambda`, `aws_env` (feature `lambda`): the Lambda handlers (the configurator's with feature
//!   `configurator`) and the app of a function, wired from its environment.
//! - `worker` (feature `embedded`): the local worker pool on the durable queue kept in the
//!   embedded store, and what a starting process resumes.
//! - `stall`: stall points for the local runner's crash tests (debug builds only).
//!
//! Features pick what a binary links: a Lambda function builds with `default-features = false`
//! and `lambda` (plus `configurator` for the API function); the local runner with `embedded` and
//! `api`. The default enables everything (tests, benches).
//!
//! The core never panics on outside data and never logs the integration key.

#[cfg(feature = "api")]
pub mod api;
pub mod app;
#[cfg(feature = "lambda")]
pub mod aws_env;
pub mod clock;
pub mod deadline;
pub mod directory;
pub mod domain;
pub mod error;
#[cfg(test)]
mod hostile;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod pendo;
pub mod ports;
pub mod queue;
pub mod schedule;
pub mod stall;
pub mod store;
pub mod sync;
pub mod time;
#[cfg(feature = "embedded")]
pub mod worker;

pub use app::{App, AppError, Ports};
pub use error::ValidationError;
