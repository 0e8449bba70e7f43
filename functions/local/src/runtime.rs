//! Wiring of the local process: embedded store, in-process queue, HTTP Pendo client, clock,
//! the drain loop with progress, and the export writer.

use anyhow::Context;
use pendo_sync::clock::{Clock, SystemClock};
use pendo_sync::domain::ExportRow;
use pendo_sync::pendo::http::{HttpPendo, HttpPendoConfig};
use pendo_sync::pendo::PendoEndpoints;
use pendo_sync::queue::in_process::InProcessQueue;
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::worker::{drain, DrainStats};
use pendo_sync::{App, Ports};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const MAX_RECEIVES: u32 = 5;

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

pub struct Local {
    pub app: Arc<App>,
    pub queue: InProcessQueue,
    /// The store the app runs on (for its operation count).
    pub store: EmbeddedStore,
}

impl Local {
    pub fn open(
        data: &Path,
        pendo_base_url: Option<&str>,
        clock: Option<Arc<dyn Clock>>,
    ) -> anyhow::Result<Self> {
        let store = EmbeddedStore::open_dir(data)
            .with_context(|| format!("opening the store in {}", data.display()))?;
        let endpoints = PendoEndpoints::from_settings(
            pendo_base_url,
            std::env::var("PENDO_BASE_URLS").ok().as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        let pendo = HttpPendo::new(HttpPendoConfig {
            endpoints,
            ..HttpPendoConfig::default()
        })?;
        let queue = InProcessQueue::new(MAX_RECEIVES, Duration::from_secs(2));
        let ports = Ports {
            store: Arc::new(store.clone()),
            queue: Arc::new(queue.clone()),
            pendo: Arc::new(pendo),
            clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
        };
        Ok(Self {
            app: Arc::new(App::new(ports)),
            queue,
            store,
        })
    }

    /// Drains the queue; with `progress`, prints a line per second to stderr.
    pub async fn drain(&self, workers: usize, progress: bool) -> Arc<DrainStats> {
        let stats = Arc::new(DrainStats::default());
        let task = tokio::spawn(drain(
            self.app.clone(),
            self.queue.clone(),
            MAX_RECEIVES,
            workers,
            stats.clone(),
        ));
        let started = std::time::Instant::now();
        let mut task = task;
        loop {
            tokio::select! {
                _ = &mut task => break,
                _ = tokio::time::sleep(Duration::from_secs(1)), if progress => {
                    let (done, retried, failed, _) = stats.snapshot();
                    eprintln!("  … {:>4.0}s  chunks done {done}, waiting {}, retried {retried}, failed {failed}",
                        started.elapsed().as_secs_f64(), self.queue.len());
                }
            }
        }
        stats
    }
}

pub fn write_export(out: &mut impl Write, rows: &[ExportRow], csv: bool) -> anyhow::Result<()> {
    if csv {
        writeln!(
            out,
            "tenant,record,object_type,object_id,metric,app,day,value"
        )?;
        let q = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for r in rows {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                q(&r.tenant),
                q(&r.record),
                q(&r.object_type),
                q(&r.object_id),
                q(&r.metric),
                q(&r.app),
                r.day,
                r.value
            )?;
        }
    } else {
        for r in rows {
            serde_json::to_writer(&mut *out, r).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}
