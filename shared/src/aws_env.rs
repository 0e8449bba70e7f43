//! Building the app of a Lambda function from its environment: DynamoDB tables, SQS queues, the
//! Pendo client, the system clock. Read once per container. AWS endpoint, region and credentials
//! are the SDK's own settings (`AWS_ENDPOINT_URL`, `AWS_REGION`, …), so a local server needs no
//! code path of its own.

use crate::app::{App, Ports};
use crate::clock::SystemClock;
use crate::lambda::BatchConfig;
use crate::pendo::http::{HttpPendo, HttpPendoConfig};
use crate::pendo::PendoEndpoints;
use crate::queue::sqs::SqsQueue;
use crate::store::dynamo::{DynamoStore, DynamoTables};
use std::sync::Arc;

pub const CONFIG_TABLE: &str = "CONFIG_TABLE";
pub const DATA_TABLE: &str = "DATA_TABLE";
pub const FETCH_QUEUE_URL: &str = "FETCH_QUEUE_URL";
pub const RESYNC_QUEUE_URL: &str = "RESYNC_QUEUE_URL";
/// Deployment-only override of every Pendo domain's base URL (the simulator).
pub const PENDO_BASE_URL: &str = "PENDO_BASE_URL";
/// Per-domain overrides: `app.eu.pendo.io=http://127.0.0.1:9001,…`.
pub const PENDO_BASE_URLS: &str = "PENDO_BASE_URLS";
/// The queues' `maxReceiveCount` (default 5).
pub const MAX_RECEIVES: &str = "MAX_RECEIVES";
/// Records of one SQS batch processed at once (default 4).
pub const FETCH_CONCURRENCY: &str = "FETCH_CONCURRENCY";

/// A missing or malformed variable, by name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("could not build the Pendo client: {0}")]
    Pendo(String),
}

/// Everything a function reads from its environment.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub tables: DynamoTables,
    pub fetch_queue_url: String,
    pub resync_queue_url: String,
    pub pendo: PendoEndpoints,
    pub batch: BatchConfig,
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `var` (tests pass a map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let required = |name: &'static str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(EnvError::Missing(name))
        };
        let number = |name: &'static str, default: u32| -> Result<u32, EnvError> {
            match var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(default),
                Some(v) => {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| EnvError::Invalid {
                            name,
                            reason: format!("'{v}' is not a whole number of at least 1"),
                        })
                }
            }
        };
        let all = var(PENDO_BASE_URL);
        let per_domain = var(PENDO_BASE_URLS);
        let pendo = PendoEndpoints::from_settings(all.as_deref(), per_domain.as_deref()).map_err(
            |reason| EnvError::Invalid {
                name: PENDO_BASE_URLS,
                reason,
            },
        )?;
        let defaults = BatchConfig::default();
        Ok(Self {
            tables: DynamoTables {
                config: required(CONFIG_TABLE)?,
                data: required(DATA_TABLE)?,
            },
            fetch_queue_url: required(FETCH_QUEUE_URL)?,
            resync_queue_url: required(RESYNC_QUEUE_URL)?,
            pendo,
            batch: BatchConfig {
                max_receives: number(MAX_RECEIVES, defaults.max_receives)?,
                concurrency: number(FETCH_CONCURRENCY, defaults.concurrency as u32)? as usize,
            },
        })
    }
}

/// The app on DynamoDB + SQS, with the SDK configuration loaded once and both clients built
/// from it.
///
/// # Errors
/// `EnvError` naming the variable that is missing or invalid.
pub async fn app_from_settings(settings: &AwsSettings) -> Result<App, EnvError> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), settings.tables.clone());
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        settings.fetch_queue_url.clone(),
        settings.resync_queue_url.clone(),
    );
    let pendo = HttpPendo::new(HttpPendoConfig {
        endpoints: settings.pendo.clone(),
        ..HttpPendoConfig::default()
    })
    .map_err(|e| EnvError::Pendo(e.to_string()))?;
    Ok(App::new(Ports {
        store: Arc::new(store),
        queue: Arc::new(queue),
        pendo: Arc::new(pendo),
        clock: Arc::new(SystemClock),
    }))
}

/// Settings from the environment and the app built on them.
///
/// # Errors
/// `EnvError` naming the variable that is missing or invalid.
pub async fn app_from_env() -> Result<(App, AwsSettings), EnvError> {
    let settings = AwsSettings::from_env()?;
    let app = app_from_settings(&settings).await?;
    Ok((app, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const BASE: [(&str, &str); 4] = [
        (CONFIG_TABLE, "c"),
        (DATA_TABLE, "d"),
        (FETCH_QUEUE_URL, "http://q/f"),
        (RESYNC_QUEUE_URL, "http://q/r"),
    ];

    #[test]
    fn settings_read_every_variable_with_defaults() {
        let s = AwsSettings::from_lookup(vars(&BASE)).unwrap();
        assert_eq!(s.tables.data, "d");
        assert_eq!(s.batch, BatchConfig::default());
        let mut v = BASE.to_vec();
        v.push((MAX_RECEIVES, "3"));
        v.push((PENDO_BASE_URL, "http://127.0.0.1:9"));
        let s = AwsSettings::from_lookup(vars(&v)).unwrap();
        assert_eq!(s.batch.max_receives, 3);
        assert_eq!(s.pendo.all.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = AwsSettings::from_lookup(vars(&BASE[1..])).unwrap_err();
        assert_eq!(e, EnvError::Missing(CONFIG_TABLE));
        assert!(e.to_string().contains("CONFIG_TABLE"));
        let mut v = BASE.to_vec();
        v.push((MAX_RECEIVES, "0"));
        let e = AwsSettings::from_lookup(vars(&v)).unwrap_err();
        assert!(e.to_string().contains("MAX_RECEIVES"), "{e}");
        let mut v = BASE.to_vec();
        v.push((PENDO_BASE_URLS, "evil.example=http://x"));
        let e = AwsSettings::from_lookup(vars(&v)).unwrap_err();
        assert!(e.to_string().contains("PENDO_BASE_URLS"), "{e}");
    }
}
