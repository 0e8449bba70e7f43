//! `pendo-sim` binary: serve the simulated Pendo API.

use clap::{Parser, ValueEnum};
use pendo_sim::{Latency, Limits, SimConfig, SimKey, Simulator};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    Tiny,
    Small,
    Large,
}

/// Serve a deterministic simulated Pendo subscription.
#[derive(Debug, Parser)]
#[command(name = "pendo-sim", version)]
struct Args {
    /// Size preset (explicit flags override its values).
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: String,
    /// Integration key with write access (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Read-only integration key (repeatable).
    #[arg(long = "read-only-key")]
    read_only_keys: Vec<String>,
    /// PRNG seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Number of accounts.
    #[arg(long)]
    accounts: Option<u32>,
    /// Number of visitors.
    #[arg(long)]
    visitors: Option<u32>,
    /// History length in days.
    #[arg(long)]
    days: Option<u32>,
    /// IANA time zone of the subscription.
    #[arg(long, default_value = "America/New_York")]
    timezone: String,
    /// Initial clock (RFC 3339); default: the real current time.
    #[arg(long)]
    now: Option<String>,
    /// Benchmarks: answer grouped event queries with this many synthetic rows.
    #[arg(long)]
    synthetic_event_rows: Option<u64>,
    /// Benchmarks: answer a repeated aggregation (the same request body) from memory, so that
    /// later runs measure the client alone.
    #[arg(long)]
    cache_aggregations: bool,
    /// Assumed Pendo rate limit: requests per second per integration key (token bucket,
    /// burst = the rate); beyond it, 429 with `Retry-After`. Default: no limit.
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Requests in flight per integration key; beyond it, 429. Default: no limit.
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// Latency model: fixed time per call before the response headers, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Latency model: time per 1,000 rows of a streamed row body, in ms.
    #[arg(long = "latency-per-1000-rows-ms", default_value_t = 0)]
    latency_per_1000_rows_ms: u64,
}

/// Apply the limit and latency flags to a new simulator.
fn apply_limits(args: &Args, sim: &Simulator) -> Result<(), String> {
    let limits = Limits {
        requests_per_second: args.rate_limit,
        max_in_flight: args.max_in_flight,
    };
    sim.control()
        .set_limits(limits)
        .map_err(|e| format!("invalid --rate-limit/--max-in-flight: {e}"))?;
    let latency = Latency {
        latency_ms: args.latency_ms,
        per_1000_rows_ms: args.latency_per_1000_rows_ms,
    };
    sim.control()
        .set_latency(latency)
        .map_err(|e| format!("invalid --latency-ms/--latency-per-1000-rows-ms: {e}"))
}

fn config(args: &Args) -> Result<SimConfig, String> {
    let mut c = match args.preset {
        Preset::Tiny => SimConfig::tiny(),
        Preset::Small => SimConfig::small(),
        Preset::Large => SimConfig::large(),
    };
    c.seed = args.seed.unwrap_or(c.seed);
    c.accounts = args.accounts.unwrap_or(c.accounts);
    c.visitors = args.visitors.unwrap_or(c.visitors);
    c.days = args.days.unwrap_or(c.days);
    c.timezone = args
        .timezone
        .parse()
        .map_err(|e| format!("invalid --timezone: {e}"))?;
    c.now = match &args.now {
        Some(s) => pendo_sim::control_api::parse_instant(s)?,
        None => chrono::Utc::now(),
    };
    let mut keys: Vec<SimKey> = args.keys.iter().map(|k| SimKey::write(k)).collect();
    keys.extend(args.read_only_keys.iter().map(|k| SimKey::read_only(k)));
    if !keys.is_empty() {
        c.keys = keys;
    }
    Ok(c)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pendo-sim: {e}");
            std::process::exit(2);
        }
    };
    let key_names: Vec<String> = cfg.keys.iter().map(|k| k.key.clone()).collect();
    let sim = Simulator::new(cfg);
    sim.control()
        .set_synthetic_event_rows(args.synthetic_event_rows);
    sim.control()
        .set_cache_aggregations(args.cache_aggregations);
    if let Err(e) = apply_limits(&args, &sim) {
        eprintln!("pendo-sim: {e}");
        std::process::exit(2);
    }
    let running = match sim.spawn(&args.listen).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pendo-sim: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    println!("listening on {}", running.base_url());
    let sub = sim.subscription();
    eprintln!(
        "pendo-sim: {} accounts, {} visitors, {}..={} ({}), keys: {}",
        sub.accounts.len(),
        sub.visitors.len(),
        sub.first_date,
        sub.last_date,
        sub.timezone.name(),
        key_names.join(", ")
    );
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
}
