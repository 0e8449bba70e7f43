//! `pendo-sync`: the local runner. One process hosts the stages: the use cases, a worker pool on
//! the durable queue kept in the embedded store, and that store, under a data folder.

mod bench;
mod demo;
mod runtime;
mod seed;
mod serve;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pendo-sync",
    version,
    about = "Sync Pendo usage data into daily metrics"
)]
struct Cli {
    /// Log as JSON lines (default: human-readable, warnings only unless RUST_LOG is set).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the Pendo simulator in-process, configure a demo tenant, re-sync and print a summary.
    Demo {
        #[arg(long, default_value = "./data/demo")]
        data: PathBuf,
        /// Simulator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Days to sync.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Then serve the configurator page and API for the demo tenant until interrupted.
        #[arg(long)]
        serve: bool,
        /// Where `--serve` listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Run the daily schedule once for every active tenant, drain the queue, exit.
    Sync {
        #[arg(long)]
        data: PathBuf,
        /// Pendo base URL override for every domain (a deployment setting, for the simulator).
        #[arg(long, env = "PENDO_BASE_URL")]
        pendo_base_url: Option<String>,
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Serve the configurator HTTP API, with a worker pool draining the queue in the background.
    Serve {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// A file of `token:tenant:role` lines (role admin or member).
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// Pendo base URL override for every domain (a deployment setting, for the simulator).
        #[arg(long, env = "PENDO_BASE_URL")]
        pendo_base_url: Option<String>,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// When the daily sync runs, as HH:MM in UTC.
        #[arg(
            long,
            value_name = "HH:MM",
            default_value = "02:00",
            conflicts_with = "no_schedule"
        )]
        daily_at: pendo_sync::schedule::DailyAt,
        /// Run no daily sync (runs start only from the API).
        #[arg(long)]
        no_schedule: bool,
    },
    /// The measured half of `make bench` (see tests/bench/run.py).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print every stored metric value and activity record, sorted, one per line.
    Export {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime::init_logging(cli.log_json);
    match cli.command {
        Command::Demo {
            data,
            seed,
            days,
            serve,
            listen,
        } => demo::run(&data, seed, days, serve.then_some(listen.as_str())).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Serve {
            data,
            listen,
            tokens,
            pendo_base_url,
            workers,
            daily_at,
            no_schedule,
        } => {
            let rt =
                runtime::Local::consume(&data, "serve", pendo_base_url.as_deref(), None).await?;
            let (table, signin) = serve::tokens(tokens.as_deref(), "default")?;
            let schedule = (!no_schedule).then_some(daily_at);
            serve::run(rt, &listen, table, signin, workers, schedule).await
        }
        Command::Sync {
            data,
            pendo_base_url,
            workers,
        } => {
            let rt =
                runtime::Local::consume(&data, "sync", pendo_base_url.as_deref(), None).await?;
            // What a process killed earlier left in the queue first, so the daily runs plan
            // from the cursors it moved.
            rt.drain(workers, true).await;
            let tenants = rt
                .app
                .run_schedule()
                .await
                .context("planning the daily runs")?;
            rt.drain(workers, true).await;
            let run = pendo_sync::domain::RunId::daily(rt.app.now().date_naive());
            for t in tenants {
                println!("{t}: run {run} planned and drained");
            }
            Ok(())
        }
        Command::Export {
            data,
            format,
            tenant,
        } => {
            let rt = runtime::Local::open(&data, None, None)?;
            let tenant = tenant
                .map(|t| pendo_sync::domain::TenantId::parse(&t))
                .transpose()?;
            let rows = rt.app.export(tenant.as_ref()).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match runtime::write_export(&mut out, &rows, matches!(format, Format::Csv)) {
                // `export | head` closes the pipe early: that is not an error.
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
                {
                    Ok(())
                }
                other => other,
            }
        }
    }
}
