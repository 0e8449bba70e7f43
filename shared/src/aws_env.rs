//! Building the app of a Lambda function from its environment: DynamoDB tables, SQS queues, the
//! Pendo client, the system clock. Read once per container. AWS endpoint, region and credentials
//! are the SDK's own settings (`AWS_ENDPOINT_URL`, `AWS_REGION`, …), so a local server needs no
//! code path of its own.
//!
//! Cold start: the SDK's default HTTPS client loads and parses the system's root certificates
//! (every file under `/etc/ssl/certs`, several hundred certificates) each time it builds a
//! connector, three times per container — most of a function's start-up CPU. The clients here
//! trust only the Amazon Trust Services roots (`shared/assets/tls/aws-roots.pem`), which every
//! AWS service endpoint chains to, compiled in; `AWS_TLS_NATIVE_ROOTS=true` restores the system
//! roots (an endpoint behind another CA, e.g. a TLS-inspecting proxy). Pendo's client
//! (`pendo::http`) has its own compiled-in roots.

use crate::app::{App, Ports};
use crate::clock::SystemClock;
use crate::lambda::BatchConfig;
use crate::pendo::http::{HttpPendo, HttpPendoConfig};
use crate::pendo::PendoEndpoints;
use crate::queue::sqs::SqsQueue;
use crate::store::dynamo::{DynamoStore, DynamoTables};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use std::sync::Arc;
use std::time::Duration;

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
/// Records of one SQS batch processed at once (default 1: the fetch function's reserved
/// concurrency is then the bound of Pendo calls in flight).
pub const FETCH_CONCURRENCY: &str = "FETCH_CONCURRENCY";
/// `true`: the AWS clients trust the system's root certificates instead of Amazon's alone.
pub const AWS_TLS_NATIVE_ROOTS: &str = "AWS_TLS_NATIVE_ROOTS";

/// The Amazon Trust Services roots (PEM).
pub const AWS_ROOTS_PEM: &[u8] = include_bytes!("../assets/tls/aws-roots.pem");

/// A missing or malformed variable, by name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("could not build the Pendo client: {0}")]
    Pendo(String),
    #[error("could not build the AWS HTTP client: {0}")]
    Tls(String),
}

/// Everything a function reads from its environment.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub tables: DynamoTables,
    pub fetch_queue_url: String,
    pub resync_queue_url: String,
    pub pendo: PendoEndpoints,
    pub batch: BatchConfig,
    /// Trust the system's roots (`AWS_TLS_NATIVE_ROOTS=true`) rather than Amazon's alone.
    pub native_roots: bool,
    /// The Pendo subscriptions' shared request budget (`PENDO_REQUESTS_PER_SECOND`, …; none
    /// when unset).
    pub budget: Option<crate::domain::BudgetSettings>,
    /// The most chunks one Pendo call fetches (`PENDO_SHARED_CALL_MAPPINGS`; `sync::share`).
    pub max_shared: usize,
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
        let pendo =
            PendoEndpoints::from_settings(all.as_deref(), per_domain.as_deref()).map_err(|e| {
                EnvError::Invalid {
                    name: PENDO_BASE_URLS,
                    reason: e.reason,
                }
            })?;
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
                ..defaults
            },
            budget: crate::domain::BudgetSettings::from_vars(&var).map_err(|reason| {
                EnvError::Invalid {
                    name: crate::domain::budget::RATE_VAR,
                    reason,
                }
            })?,
            max_shared: crate::sync::share::max_shared_from(&var).map_err(|reason| {
                EnvError::Invalid {
                    name: crate::sync::share::MAX_SHARED_VAR,
                    reason,
                }
            })?,
            native_roots: match var(AWS_TLS_NATIVE_ROOTS).as_deref().map(str::trim) {
                None | Some("" | "false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(EnvError::Invalid {
                        name: AWS_TLS_NATIVE_ROOTS,
                        reason: format!("'{other}' is not true or false"),
                    })
                }
            },
        })
    }
}

/// The HTTPS client both AWS clients share: rustls on aws-lc (the SDK's default), trusting the
/// Amazon roots alone unless `native_roots`.
///
/// # Errors
/// `EnvError::Tls` when the TLS settings are rejected.
pub fn aws_http_client(
    native_roots: bool,
) -> Result<aws_sdk_dynamodb::config::SharedHttpClient, EnvError> {
    let trust = if native_roots {
        TrustStore::default()
    } else {
        TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_ROOTS_PEM)
    };
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| EnvError::Tls(e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// Attempts of one AWS call (the first and 5 retries): the SDK retries throttling
/// (`ProvisionedThroughputExceededException`, `ThrottlingException`, `RequestLimitExceeded`),
/// 5xx answers, connection errors and attempt timeouts. A call it gives up on is tried again
/// by the code where that saves a Pendo call (`sync::persist`), else the message is redelivered.
pub const AWS_MAX_ATTEMPTS: u32 = 6;

/// The retry policy of both AWS clients: standard mode, [`AWS_MAX_ATTEMPTS`] attempts,
/// exponential backoff with full jitter from 100 ms up to 5 s between attempts (the SDK's
/// default, 1 s to 20 s over 3 attempts, gives up sooner and waits longer than a DynamoDB
/// partition's throttling lasts).
pub fn aws_retry() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(AWS_MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(5))
}

/// DynamoDB's timeouts: 3 s to connect, 10 s an attempt (a call of 25 items answers in tens
/// of milliseconds; an attempt that hangs is cut and retried), 60 s for a call with its retries.
pub fn dynamodb_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

/// SQS's timeouts: an attempt may take 30 s (a `ReceiveMessage` long poll waits up to 20 s).
pub fn sqs_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(90))
        .build()
}

/// The DynamoDB client of `sdk` with this service's retry policy and timeouts.
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(aws_retry())
        .timeout_config(dynamodb_timeouts())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// The SQS client of `sdk` with this service's retry policy and timeouts.
pub fn sqs_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .retry_config(aws_retry())
        .timeout_config(sqs_timeouts())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// The app on DynamoDB + SQS, with the SDK configuration loaded once and both clients built
/// from it.
///
/// # Errors
/// `EnvError` naming the variable that is missing or invalid.
pub async fn app_from_settings(settings: &AwsSettings) -> Result<App, EnvError> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_http_client(settings.native_roots)?)
        .load()
        .await;
    let store = Arc::new(DynamoStore::new(
        dynamodb_client(&sdk),
        settings.tables.clone(),
    ));
    let queue = SqsQueue::new(
        sqs_client(&sdk),
        settings.fetch_queue_url.clone(),
        settings.resync_queue_url.clone(),
    );
    let pendo = HttpPendo::new(HttpPendoConfig {
        endpoints: settings.pendo.clone(),
        ..HttpPendoConfig::default()
    })
    .map_err(|e| EnvError::Pendo(e.to_string()))?
    .with_budgets(store.clone(), settings.budget);
    let mut app = App::new(Ports {
        store,
        queue: Arc::new(queue),
        pendo: Arc::new(pendo),
        clock: Arc::new(SystemClock),
    });
    app.max_shared = settings.max_shared;
    Ok(app)
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

    #[test]
    fn native_roots_are_opt_in() {
        assert!(!AwsSettings::from_lookup(vars(&BASE)).unwrap().native_roots);
        for (value, expected) in [("true", true), ("false", false), ("", false)] {
            let mut v = BASE.to_vec();
            v.push((AWS_TLS_NATIVE_ROOTS, value));
            assert_eq!(
                AwsSettings::from_lookup(vars(&v)).unwrap().native_roots,
                expected
            );
        }
        let mut v = BASE.to_vec();
        v.push((AWS_TLS_NATIVE_ROOTS, "yes"));
        let e = AwsSettings::from_lookup(vars(&v)).unwrap_err();
        assert!(e.to_string().contains(AWS_TLS_NATIVE_ROOTS), "{e}");
    }

    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_roots() {
        let pem = std::str::from_utf8(AWS_ROOTS_PEM).unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        for cn in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(pem.contains(&format!("CN = {cn},")), "{cn}");
        }
    }

    /// Building a client builds its TLS connector, which parses the roots (and panics inside
    /// the SDK on a malformed certificate), so this fails if the bundle does not load.
    #[tokio::test]
    async fn the_aws_clients_build_on_the_compiled_in_roots() {
        for native_roots in [false, true] {
            let http = aws_http_client(native_roots).unwrap();
            let sdk = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .http_client(http)
                .build();
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            assert_eq!(
                client.config().region().map(|r| r.as_ref()),
                Some("us-east-1")
            );
        }
    }
}
