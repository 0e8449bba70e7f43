//! Simulator configuration: subscription size, seed, time zone, clock and keys, plus presets.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// An integration key the simulator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimKey {
    /// The key string sent in `X-Pendo-Integration-Key`.
    pub key: String,
    /// Whether the key may call `POST /api/v1/aggregation`.
    pub write_access: bool,
}

impl SimKey {
    /// A key with write access.
    pub fn write(key: &str) -> Self {
        SimKey {
            key: key.to_string(),
            write_access: true,
        }
    }

    /// A read-only key (aggregation answers 403).
    pub fn read_only(key: &str) -> Self {
        SimKey {
            key: key.to_string(),
            write_access: false,
        }
    }
}

/// Everything that determines the generated subscription and the initial server state.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// PRNG seed; same config ⇒ byte-identical responses.
    pub seed: u64,
    /// Number of accounts.
    pub accounts: u32,
    /// Number of visitors (including a few anonymous ones).
    pub visitors: u32,
    /// History length in local days, ending on the local date of `now`.
    pub days: u32,
    /// Subscription time zone (event days are local midnights in this zone).
    pub timezone: Tz,
    /// Initial simulated clock (`now()`).
    pub now: DateTime<Utc>,
    /// Accepted integration keys.
    pub keys: Vec<SimKey>,
}

/// The fixed default clock of the presets: 2026-11-20T12:00:00Z.
pub fn default_test_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

impl SimConfig {
    fn preset(accounts: u32, visitors: u32, days: u32) -> Self {
        SimConfig {
            seed: 42,
            accounts,
            visitors,
            days,
            timezone: chrono_tz::America::New_York,
            now: default_test_now(),
            keys: vec![SimKey::write("test-key")],
        }
    }

    /// 3 accounts, 12 visitors, 20 days: small enough to compute by hand.
    pub fn tiny() -> Self {
        Self::preset(3, 12, 20)
    }

    /// 20 accounts, 200 visitors, 120 days.
    pub fn small() -> Self {
        Self::preset(20, 200, 120)
    }

    /// 200 accounts, 5,000 visitors, 120 days.
    pub fn medium() -> Self {
        Self::preset(200, 5_000, 120)
    }

    /// 2,000 accounts, 50,000 visitors, 365 days (never materialised as rows).
    pub fn large() -> Self {
        Self::preset(2_000, 50_000, 365)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::tiny()
    }
}
