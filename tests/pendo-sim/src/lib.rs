//! Pendo simulator: a deterministic, seeded stand-in for Pendo's v1 REST API
//! (aggregations, reports, pages, features, track types, guides and their guide and poll
//! events, segments, metadata schema, key checks) with a
//! control API for the clock, keys, fault injection, per-key request limits and a latency
//! model.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = pendo_sim::Simulator::new(pendo_sim::SimConfig::tiny());
//! let running = sim.spawn("127.0.0.1:0").await?;
//! println!("{}", running.base_url());
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod config;
pub mod control;
pub mod control_api;
pub mod data;
pub mod error;
pub mod expr;
pub mod faults;
pub mod limits;
pub mod pipeline;
pub mod rng;
pub mod server;
pub mod stream;
pub mod timeutil;
pub mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

pub use config::{SimConfig, SimKey};
pub use control::{Control, ObjectKind, RequestLogEntry};
pub use data::{
    Account, App, EventRow, EventSource, Feature, Guide, GuideEventType, GuideFilter, GuideRow,
    GuideSource, Page, Poll, PollAnswer, PollKind, Segment, SegmentRule, Subscription, Tier,
    TrackType, Visitor, DEFAULT_APP_ID,
};
pub use error::SimError;
pub use faults::{FaultKind, FaultRule};
pub use limits::{Latency, Limits};

use expr::EvalCtx;

struct Inner {
    sub: Subscription,
    control: Control,
}

/// The simulator: generated data plus mutable control state (cheap to clone).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl Simulator {
    /// Generate the subscription for `config`.
    pub fn new(config: SimConfig) -> Self {
        let sub = data::generate::build(&config);
        let control = Control::new(config.now, &config.keys);
        Simulator {
            inner: Arc::new(Inner { sub, control }),
        }
    }

    /// The generated data (read-only).
    pub fn subscription(&self) -> &Subscription {
        &self.inner.sub
    }

    /// Mutable state: clock, keys, faults, memory limit, limits and latency, request log.
    pub fn control(&self) -> &Control {
        &self.inner.control
    }

    /// Expression context at the simulator's current now.
    pub fn eval_ctx(&self) -> EvalCtx {
        EvalCtx {
            now_ms: self.control().now().timestamp_millis(),
            tz: self.inner.sub.timezone,
            app_ids: self.inner.sub.app_ids(),
        }
    }

    /// Run an aggregation (envelope, `{"pipeline":…}` or bare pipeline array) with the same
    /// engine as the HTTP endpoint, at the current now; returns the `results` rows.
    /// The memory-limit setting is not applied here.
    pub fn run_aggregation(&self, body: &Value) -> Result<Vec<Value>, SimError> {
        let ctx = self.eval_ctx();
        let plan = pipeline::plan_request(body, self.subscription(), &ctx)?;
        Ok(pipeline::execute(&plan, self.subscription(), &ctx).collect())
    }

    /// The full HTTP router (`/api/…` guarded by keys and faults, `/_sim/…` control).
    pub fn router(&self) -> axum::Router {
        server::api_router(self.clone()).merge(control_api::control_router(self.clone()))
    }

    /// Bind `listen` (e.g. `"127.0.0.1:0"`) and serve in the background.
    pub async fn spawn(&self, listen: &str) -> std::io::Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = self.router();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(RunningSim {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }
}

/// A simulator serving on a socket.
pub struct RunningSim {
    /// Bound address.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving (waits up to 2 s for in-flight responses, then aborts).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let abort = h.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), h)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}
