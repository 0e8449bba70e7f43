//! `pendo-sync serve`: the configurator API on a local port, the same router the Lambda serves,
//! a worker pool that drains the durable local queue whenever work arrives, and the daily sync at
//! `--daily-at` (the scheduler tick; off with `--no-schedule`).

use crate::runtime::Local;
use anyhow::Context;
use pendo_sync::api::auth::{Caller, TokenTable};
use pendo_sync::app::Role;
use pendo_sync::domain::TenantId;
use pendo_sync::schedule::DailyAt;
use pendo_sync::App;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Tokens from `--tokens FILE`, else `PENDO_SYNC_TOKENS`, else one fresh admin token for
/// `tenant` (returned so the sign-in link can carry it; kept only hashed in the table).
pub fn tokens(file: Option<&Path>, tenant: &str) -> anyhow::Result<(TokenTable, Option<String>)> {
    let spec = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => std::env::var("PENDO_SYNC_TOKENS").unwrap_or_default(),
    };
    let table = TokenTable::parse(&spec).map_err(anyhow::Error::msg)?;
    if !table.is_empty() {
        return Ok((table, None));
    }
    fresh_admin(tenant)
}

/// A table with one fresh admin token for `tenant`, and the token.
pub fn fresh_admin(tenant: &str) -> anyhow::Result<(TokenTable, Option<String>)> {
    let mut table = TokenTable::default();
    let token = format!("ps-{}", uuid::Uuid::new_v4().simple());
    table.insert(
        &token,
        Caller {
            tenant: TenantId::parse(tenant)?,
            role: Role::Admin,
        },
    );
    Ok((table, Some(token)))
}

/// The page's address, with the token in the fragment (never sent to the server or logged by
/// it; the page moves it to session storage and clears the address bar).
pub fn signin_link(addr: &str, token: &str) -> String {
    format!("http://{addr}/#token={token}")
}

/// How often the schedule looks at the clock.
const SCHEDULE_POLL: Duration = Duration::from_secs(20);

/// The daily sync's state: when it runs next.
pub struct Daily {
    at: DailyAt,
    next: chrono::DateTime<chrono::Utc>,
}

impl Daily {
    /// The first run is the first `at` after `now` (starting `serve` never runs one at once).
    pub fn new(at: DailyAt, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            at,
            next: at.next_after(now),
        }
    }

    pub fn next(&self) -> chrono::DateTime<chrono::Utc> {
        self.next
    }

    /// When the next run time has come (by the app's clock), runs the daily schedule once and
    /// returns its log line; else `None`. A clock that jumped over several days (a laptop
    /// asleep) gives one run, not one per missed day.
    pub async fn tick(&mut self, app: &App) -> Option<String> {
        let now = app.now();
        if now < self.next {
            return None;
        }
        self.next = self.at.next_after(now);
        let at = now.format("%Y-%m-%d %H:%M:%S UTC");
        let next = self.next.format("%Y-%m-%d %H:%M UTC");
        Some(match app.run_schedule().await {
            Ok(tenants) => {
                let ids: Vec<String> = tenants.iter().map(ToString::to_string).collect();
                format!(
                    "daily sync {at}: run {} queued for {} tenant(s) [{}]; next at {next}",
                    pendo_sync::domain::RunId::daily(now.date_naive()),
                    tenants.len(),
                    ids.join(", ")
                )
            }
            Err(e) => format!(
                "daily sync {at} failed: {}; next at {next}",
                pendo_sync::error::Chain(&e)
            ),
        })
    }
}

/// The schedule's loop: looks at the clock every `poll`, and logs each run through `log`.
pub async fn daily_loop(app: Arc<App>, at: DailyAt, poll: Duration, log: impl Fn(String)) {
    let mut daily = Daily::new(at, app.now());
    loop {
        tokio::time::sleep(poll).await;
        if let Some(line) = daily.tick(&app).await {
            log(line);
        }
    }
}

/// Serves until Ctrl-C. With `signin` (a token made for this run), prints the sign-in link.
/// With `schedule`, runs the daily sync at that time.
pub async fn run(
    rt: Local,
    listen: &str,
    table: TokenTable,
    signin: Option<String>,
    workers: usize,
    schedule: Option<DailyAt>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?.to_string();
    println!("listening on http://{addr} (API under /v1, the configurator page at /)");
    match &signin {
        Some(token) => println!(
            "configurator page, signed in as admin (this link holds a token made for this run; keep it private):\n  {}",
            signin_link(&addr, token)
        ),
        None => println!("configurator page: http://{addr}/ (sign in with one of your tokens)"),
    }
    match schedule {
        Some(at) => {
            let next = Daily::new(at, rt.app.now()).next();
            println!(
                "daily sync at {at} (next {}; change with --daily-at HH:MM, turn off with --no-schedule)",
                next.format("%Y-%m-%d %H:%M UTC")
            );
            tokio::spawn(daily_loop(rt.app.clone(), at, SCHEDULE_POLL, |line| {
                tracing::info!(target: "pendo_sync::schedule", "{line}");
                println!("{line}");
            }));
        }
        None => println!("daily sync off"),
    }
    println!("serving until interrupted (Ctrl-C)");
    let router = pendo_sync::api::router(rt.app.clone(), Arc::new(table));
    let (app, queue) = (rt.app.clone(), rt.queue.clone());
    tokio::spawn(async move {
        loop {
            if queue.is_empty().is_ok_and(|empty| !empty) {
                let stats = Arc::new(pendo_sync::worker::DrainStats::default());
                pendo_sync::worker::drain(app.clone(), queue.clone(), workers, stats).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use pendo_sync::clock::FixedClock;
    use pendo_sync::domain::*;
    use pendo_sync::pendo::http::{HttpPendo, HttpPendoConfig};
    use pendo_sync::queue::embedded::{EmbeddedQueue, QueueSettings};
    use pendo_sync::store::embedded::EmbeddedStore;
    use pendo_sync::store::prelude::*;
    use pendo_sync::Ports;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// An app on the clock with one connected tenant (no mappings: a daily run is recorded and
    /// has nothing to fetch).
    async fn app(clock: &FixedClock) -> (Arc<App>, EmbeddedQueue) {
        let store = EmbeddedStore::in_memory().unwrap();
        let queue = EmbeddedQueue::new(&store, QueueSettings::LOCAL);
        let app = App::new(
            Ports::builder()
                .store(Arc::new(store.clone()))
                .queue(Arc::new(queue.clone()))
                .pendo(Arc::new(
                    HttpPendo::new(HttpPendoConfig::default()).unwrap(),
                ))
                .clock(Arc::new(clock.clone()))
                .build(),
        );
        let mut i = Integration::new(TenantId::parse("acme").unwrap());
        i.connection = Some(Connection {
            domain: PendoDomain::parse("app.pendo.io").unwrap(),
            key: IntegrationKey::parse("a-key-of-some-length").unwrap(),
        });
        i.status = ConnectionStatus::Active;
        store.put_integration(&i).await.unwrap();
        (Arc::new(app), queue)
    }

    /// The tenant's daily runs, once the planning messages the schedule sent are processed.
    async fn daily_runs(app: &Arc<App>, queue: &EmbeddedQueue) -> usize {
        pendo_sync::worker::drain(app.clone(), queue.clone(), 1, Default::default()).await;
        let t = TenantId::parse("acme").unwrap();
        let runs = app.runs(&t, 100).await.unwrap();
        assert!(runs.iter().all(|r| r.kind == RunKind::Daily));
        runs.len()
    }

    #[tokio::test]
    async fn tick_runs_the_schedule_once_when_the_time_comes() {
        let clock = FixedClock::new(at("2026-12-01T01:00:00Z"));
        let (app, queue) = app(&clock).await;
        let mut daily = Daily::new(DailyAt::DEFAULT, clock.now_value());
        assert_eq!(daily.next(), at("2026-12-01T02:00:00Z"));
        assert_eq!(daily.tick(&app).await, None);
        clock.set(at("2026-12-01T01:59:59Z"));
        assert_eq!(daily.tick(&app).await, None);
        assert_eq!(daily_runs(&app, &queue).await, 0);
        clock.set(at("2026-12-01T02:00:00Z"));
        let line = daily.tick(&app).await.unwrap();
        assert!(
            line.starts_with(
                "daily sync 2026-12-01 02:00:00 UTC: run d-2026-12-01 queued for 1 tenant(s) [acme"
            ),
            "{line}"
        );
        assert!(line.ends_with("]; next at 2026-12-02 02:00 UTC"), "{line}");
        assert_eq!(daily.tick(&app).await, None);
        assert_eq!(daily_runs(&app, &queue).await, 1);
        // Asleep for three days: one run on waking, the next on the following day.
        clock.set(at("2026-12-05T09:30:00Z"));
        assert!(daily.tick(&app).await.is_some());
        assert_eq!(daily.next(), at("2026-12-06T02:00:00Z"));
        assert_eq!(daily.tick(&app).await, None);
        assert_eq!(daily_runs(&app, &queue).await, 2);
    }

    #[tokio::test]
    async fn the_serve_loop_follows_the_clock_and_logs_each_run() {
        let clock = FixedClock::new(at("2026-12-01T03:00:00Z"));
        let (app, queue) = app(&clock).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(daily_loop(
            app.clone(),
            DailyAt::parse("03:30").unwrap(),
            Duration::from_millis(2),
            move |line| {
                let _ = tx.send(line);
            },
        ));
        let quiet = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>| {
            let mut got = Vec::new();
            while let Ok(l) = rx.try_recv() {
                got.push(l);
            }
            got
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(quiet(&mut rx), Vec::<String>::new());
        assert_eq!(daily_runs(&app, &queue).await, 0);
        clock.set(at("2026-12-01T03:30:05Z"));
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            line.starts_with("daily sync 2026-12-01 03:30:05 UTC: run d-2026-12-01 queued"),
            "{line}"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(quiet(&mut rx), Vec::<String>::new());
        clock.set(at("2026-12-02T03:30:00Z"));
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(line.ends_with("next at 2026-12-03 03:30 UTC"), "{line}");
        assert_eq!(daily_runs(&app, &queue).await, 2);
        task.abort();
    }
}
