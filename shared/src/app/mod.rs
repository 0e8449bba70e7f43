//! `App`: the use cases every entry point calls (the local runner, the HTTP API, the Lambda
//! handlers). Validation happens before anything is stored; a refused request changes nothing.

//!
//! The use cases are grouped by what they act on: `integration` (connection, settings, apps,
//! segments), `mappings`, `runs` (starting runs and taking the workers' messages), `reads`
//! (an object's data), `directory`, `imports` (the directory from Pendo), `recovery`
//! (unmatched identities), `discovery` (Pendo's objects); `error` is what they answer when they
//! cannot.

use crate::sync::plan::DEFAULT_LOOKBACK_DAYS;
use serde::{Deserialize, Serialize};

mod directory;
mod discovery;
mod error;
pub mod imports;
mod integration;
pub mod mappings;
pub mod pipeline_check;
pub mod reads;
pub mod recovery;
mod runs;

pub use crate::ports::Ports;
pub use directory::{Deleted, DELETED_VALUES};
pub use error::{AppError, ConnectProblem};
pub use integration::SettingsUpdate;
pub use reads::{ObjectMetric, SystemMetrics};

/// What a run fetches of each mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planning {
    /// From the cursor (minus the look-back) to the last complete day; with `recover`, also the
    /// earlier days whose unmatched rows the directory now resolves.
    FromCursor { recover: bool },
    /// `days_to_sync` days, the cursor reset (a rebuild).
    FromScratch,
    /// Only the days whose unmatched rows the directory now resolves.
    RecoverOnly,
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Admin,
    Member,
}

/// The use cases, on the ports of a process (built once per process or Lambda container).
pub struct App {
    pub(crate) ports: Ports,
    pub lookback_days: u32,
    /// The most chunks one shared Pendo call fetches (`sync::share`; 1: each chunk alone).
    pub max_shared: usize,
    /// Directory snapshots shared by this process's chunks (see `sync::directory_cache`).
    directories: crate::sync::directory_cache::DirectoryCache,
}

/// The tenant's Pendo connection; `NotConnected` when it has none active.
pub(crate) fn active_connection(
    i: &crate::domain::Integration,
) -> Result<&crate::domain::Connection, AppError> {
    i.connection
        .as_ref()
        .filter(|_| i.is_active())
        .ok_or(AppError::NotConnected)
}

impl App {
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            lookback_days: DEFAULT_LOOKBACK_DAYS,
            max_shared: crate::sync::share::DEFAULT_MAX_SHARED,
            directories: Default::default(),
        }
    }
}
