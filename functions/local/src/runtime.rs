//! Wiring of the local process: embedded store, the durable queue kept in it, HTTP Pendo
//! client, clock, the drain loop with progress, and the export writer.

use anyhow::Context;
use pendo_sync::clock::{Clock, SystemClock};
use pendo_sync::domain::{BudgetSettings, ExportRow};
use pendo_sync::pendo::http::{HttpPendo, HttpPendoConfig};
use pendo_sync::pendo::PendoEndpoints;
use pendo_sync::queue::embedded::{ConsumerLock, EmbeddedQueue, QueueSettings};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::worker::{drain, resume, DrainStats};
use pendo_sync::{App, Ports};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
    /// The durable queue kept in the store's file.
    pub queue: EmbeddedQueue,
    /// The store the app runs on (for its operation count).
    pub store: EmbeddedStore,
    /// This process's claim on the folder's queue (`None` for a process that only reads).
    _lock: Option<ConsumerLock>,
}

impl Local {
    /// The store and queue of `data`, to read or configure (no worker runs on it).
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
        let budget =
            BudgetSettings::from_vars(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
        let pendo = HttpPendo::new(HttpPendoConfig {
            endpoints,
            ..HttpPendoConfig::default()
        })?
        .with_budgets(Arc::new(store.clone()), budget);
        let max_shared = pendo_sync::sync::share::max_shared_from(|k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?;
        let queue = EmbeddedQueue::new(&store, QueueSettings::LOCAL);
        let ports = Ports {
            store: Arc::new(store.clone()),
            queue: Arc::new(queue.clone()),
            pendo: Arc::new(pendo),
            clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
        };
        let mut app = App::new(ports);
        app.max_shared = max_shared;
        Ok(Self {
            app: Arc::new(app),
            queue,
            store,
            _lock: None,
        })
    }

    /// `open`, as the one process that works the folder's queue (`what` names it to another
    /// process that tries): takes the folder's lock, then resumes what the last process left
    /// in the queue, printing a line per run it resumes.
    pub async fn consume(
        data: &Path,
        what: &str,
        pendo_base_url: Option<&str>,
        clock: Option<Arc<dyn Clock>>,
    ) -> anyhow::Result<Self> {
        Self::consume_with(
            ConsumerLock::acquire(data, what)?,
            data,
            pendo_base_url,
            clock,
        )
        .await
    }

    /// `consume` on an empty store: the folder's store files are removed first (once this
    /// process holds the folder, so never under another process's feet).
    pub async fn consume_fresh(
        data: &Path,
        what: &str,
        pendo_base_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let lock = ConsumerLock::acquire(data, what)?;
        EmbeddedStore::remove_files(data)
            .with_context(|| format!("emptying the store in {}", data.display()))?;
        Self::consume_with(lock, data, pendo_base_url, None).await
    }

    async fn consume_with(
        lock: ConsumerLock,
        data: &Path,
        pendo_base_url: Option<&str>,
        clock: Option<Arc<dyn Clock>>,
    ) -> anyhow::Result<Self> {
        let mut rt = Self::open(data, pendo_base_url, clock)?;
        let resumed = resume(&lock, &rt.app, &rt.queue, &rt.store)
            .await
            .context("resuming the work left in the queue")?;
        for run in &resumed.runs {
            println!("{run}");
        }
        for import in &resumed.imports {
            println!("{import}");
        }
        if resumed.returned > 0 {
            tracing::info!(
                messages = resumed.returned,
                holds = resumed.holds_ended,
                "took over the work of a process that ended without finishing it"
            );
        }
        rt._lock = Some(lock);
        Ok(rt)
    }

    /// Drains the queue; with `progress`, prints a line per second to stderr.
    pub async fn drain(&self, workers: usize, progress: bool) -> Arc<DrainStats> {
        let stats = Arc::new(DrainStats::default());
        let task = tokio::spawn(drain(
            self.app.clone(),
            self.queue.clone(),
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
                    let waiting = self.queue.len().unwrap_or(0);
                    eprintln!("  … {:>4.0}s  chunks done {done}, waiting {waiting}, retried {retried}, failed {failed}",
                        started.elapsed().as_secs_f64());
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
