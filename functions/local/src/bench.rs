//! `pendo-sync bench setup|resync`: the measured half of `make bench` (`tests/bench/run.py`
//! drives it). `setup` configures one tenant against a running simulator — its directory is the
//! simulator's own accounts and identified visitors, regenerated from the same seed — and
//! `resync` runs one Re-sync all of that tenant through the real worker path and prints one JSON
//! line of what it did. The driver measures the `resync` process from outside (wall time, CPU
//! and peak RSS from `wait4`), so nothing here times itself.

use crate::runtime::Local;
use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use pendo_sim::{SimConfig, Simulator};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::mapping::{FieldMetric, MappingInput, PesComponent};
use pendo_sync::domain::{MappingKind, Target, TenantId};
use std::path::PathBuf;

/// The benchmark tenant.
pub const TENANT: &str = "bench";

#[derive(Clone, Copy, ValueEnum)]
pub enum BenchTarget {
    Company,
    EndUser,
    /// Alternate: company, end user, company, …
    Mixed,
}

/// What the benchmark tenant's mappings read.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum BenchKind {
    /// Features and pages alternately, most popular first (`--mappings` of them).
    Events,
    /// One mapping of the default app's most popular page.
    Page,
    /// One mapping of the simulator's 7-day visitor report (its events column).
    Report,
    /// One mapping of the setup guide's per-visitor aggregation (events and minutes).
    Aggregation,
    /// One PES mapping of the default app (score and adoption).
    Pes,
    /// One mapping of the default app's most popular track type (events and minutes).
    Track,
    /// One mapping of the simulator's guide of several steps (seen, advanced, dismissed,
    /// completed).
    Guide,
    /// One mapping of the simulator's NPS poll (the NPS of a 90-day window, its responses).
    Poll,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Configure the benchmark tenant against a running simulator (large preset).
    Setup {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "PENDO_BASE_URL")]
        pendo_base_url: String,
        /// The simulator's integration key.
        #[arg(long, default_value = "bench-key")]
        key: String,
        /// The simulator's seed and visitor count (the directory is regenerated from them).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 50_000)]
        visitors: u32,
        /// End users in the directory (the first identified visitors with an account).
        #[arg(long, default_value_t = 50_000)]
        users: usize,
        /// Feature/Page mappings (features and pages alternate, most popular first).
        #[arg(long, default_value_t = 10)]
        mappings: usize,
        /// Days to sync.
        #[arg(long, default_value_t = 90)]
        days: i64,
        #[arg(long, value_enum, default_value_t = BenchTarget::Company)]
        target: BenchTarget,
        /// What the mappings read; every kind but `events` makes one mapping.
        #[arg(long, value_enum, default_value_t = BenchKind::Events)]
        kind: BenchKind,
        /// The first end-user mapping auto-creates end users (auto-detect on): the run then
        /// defers the other mappings' chunks until that mapping's are over.
        #[arg(long)]
        auto_create: bool,
        /// Of the `--mappings`, this many are Page mappings and the rest Feature mappings, over
        /// every app's pages and features in turn (a feature or page may serve several
        /// mappings, each its own metric) rather than alternating within the default app.
        #[arg(long)]
        pages: Option<usize>,
    },
    /// Re-sync all of the benchmark tenant, drain, print a JSON summary line.
    Resync {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "PENDO_BASE_URL")]
        pendo_base_url: String,
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Setup {
            data,
            pendo_base_url,
            key,
            seed,
            visitors,
            users,
            mappings,
            days,
            target,
            kind,
            auto_create,
            pages,
        } => {
            let rt = Local::open(&data, Some(&pendo_base_url), None)?;
            let shape = Shape {
                mappings,
                days,
                target,
                kind,
                auto_create,
                pages,
            };
            setup(&rt, &key, seed, visitors, users, shape).await
        }
        BenchCommand::Resync {
            data,
            pendo_base_url,
            workers,
        } => {
            let rt = Local::consume(&data, "bench", Some(&pendo_base_url), None).await?;
            let t = TenantId::parse(TENANT)?;
            let (ops, pushed) = (rt.store.operations(), rt.queue.sent());
            let run_id = rt.app.resync_all(&t).await?;
            let stats = rt.drain(workers, false).await;
            let (done, retried, failed, _) = stats.snapshot();
            let (ops, pushed) = (rt.store.operations() - ops, rt.queue.sent() - pushed);
            let run = rt.app.run(&t, &run_id).await?;
            let totals = run.totals();
            let attempts: u64 = run.chunks.iter().map(|c| u64::from(c.attempts)).sum();
            println!(
                "{}",
                serde_json::json!({
                    "chunks": run.chunks.len(),
                    "messages_done": done,
                    "retried": retried,
                    "failed": failed,
                    "rows_read": totals.rows_read,
                    "rows_skipped": totals.rows_skipped,
                    "values_written": totals.values_written,
                    "activities_written": totals.activities_written,
                    "users_created": totals.users_created,
                    "deferred": run.chunks.iter().filter(|c| c.deferred).count(),
                    "attempts": attempts,
                    "duplicates": stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
                    // The Re-sync all message and every fetch message sent.
                    "queue_messages": pushed,
                    "store_operations": ops,
                })
            );
            anyhow::ensure!(failed == 0, "{failed} chunks failed");
            Ok(())
        }
    }
}

/// What the benchmark tenant syncs.
struct Shape {
    mappings: usize,
    days: i64,
    target: BenchTarget,
    kind: BenchKind,
    auto_create: bool,
    pages: Option<usize>,
}

async fn setup(
    rt: &Local,
    key: &str,
    seed: u64,
    visitors: u32,
    users: usize,
    shape: Shape,
) -> anyhow::Result<()> {
    let Shape {
        mappings,
        days,
        target,
        kind,
        auto_create,
        pages: page_mappings,
    } = shape;
    let mut config = SimConfig::large();
    config.seed = seed;
    config.visitors = visitors;
    let sim = Simulator::new(config);
    let sub = sim.subscription();
    let app = &rt.app;
    let t = TenantId::parse(TENANT)?;
    app.connect(&t, key, "app.pendo.io")
        .await
        .context("connecting to the simulator")?;
    app.update_settings(
        &t,
        &SettingsUpdate {
            days_to_sync: Some(days),
            timezone: Some(sub.timezone.name().to_string()),
            field_mappings: None,
            auto_detect_end_users: Some(auto_create),
        },
    )
    .await?;
    for a in &sub.apps {
        app.upsert_app(&t, &a.id.to_string(), &a.name).await?;
    }
    let seeded = crate::seed::directory(
        app,
        &t,
        sub,
        &crate::seed::Pick {
            accounts_left_out: 0,
            every_nth_visitor: 1,
            max_end_users: users,
            with_names: true,
        },
    )
    .await?;
    let app_id = sub.apps.first().map(|a| a.id).context("no app")?;
    if kind != BenchKind::Events {
        let target = match target {
            BenchTarget::EndUser => Target::EndUser,
            _ => Target::Company,
        };
        let input = MappingInput::new(one_source(kind, sub, app_id)?, target, "Bench metric");
        app.create_mapping(&t, &input).await?;
        println!(
            "{}",
            serde_json::json!({ "companies": seeded.companies.len(), "end_users": seeded.end_users, "mappings": 1, "days": days })
        );
        return Ok(());
    }
    let features = sub.popular_features(app_id);
    let pages = sub.popular_pages(app_id);
    if let Some(np) = page_mappings {
        return many_mappings(app, &t, sub, mappings, np, seeded.companies.len(), days).await;
    }
    let mut creator_chosen = false;
    for i in 0..mappings {
        let source = if i % 2 == 0 {
            MappingKind::Feature {
                feature_id: features.get(i / 2).context("too few features")?.clone(),
                minutes_metric: Some(format!("Feature minutes {i}")),
            }
        } else {
            MappingKind::Page {
                page_id: pages.get(i / 2).context("too few pages")?.clone(),
                minutes_metric: None,
            }
        };
        let target = match target {
            BenchTarget::Company => Target::Company,
            BenchTarget::EndUser => Target::EndUser,
            BenchTarget::Mixed if i % 2 == 0 => Target::Company,
            BenchTarget::Mixed => Target::EndUser,
        };
        // With auto-create, the first end-user mapping creates the users it does not find.
        let creates = auto_create && target == Target::EndUser && !creator_chosen;
        creator_chosen |= creates;
        app.create_mapping(
            &t,
            &MappingInput {
                auto_create_users: creates,
                ..MappingInput::new(source, target, &format!("Bench metric {i}"))
            },
        )
        .await?;
    }
    anyhow::ensure!(
        !auto_create || creator_chosen,
        "--auto-create needs an end-user mapping (--target end-user or mixed)"
    );
    println!(
        "{}",
        serde_json::json!({ "companies": seeded.companies.len(), "end_users": seeded.end_users, "mappings": mappings, "days": days })
    );
    Ok(())
}

/// The one mapping of a kind other than `events`: the default app's most popular page, the
/// simulator's 7-day visitor report, the setup guide's aggregation, or the default app's PES.
fn one_source(
    kind: BenchKind,
    sub: &pendo_sim::data::Subscription,
    app_id: i64,
) -> anyhow::Result<MappingKind> {
    let field = |field: &str, metric: &str| FieldMetric {
        field: field.into(),
        metric: metric.into(),
    };
    Ok(match kind {
        BenchKind::Page => MappingKind::Page {
            page_id: sub
                .popular_pages(app_id)
                .into_iter()
                .next()
                .context("no page")?,
            minutes_metric: None,
        },
        BenchKind::Report => MappingKind::Report {
            report_id: "rpt-visitor-7d".into(),
            columns: vec![field("numEvents", "Events")],
        },
        BenchKind::Aggregation => MappingKind::Aggregation {
            pipeline: crate::demo::guide_pipeline(),
            fields: vec![field("metric1", "Events"), field("metric2", "Minutes")],
        },
        BenchKind::Track => MappingKind::Track {
            track_type_id: sub
                .track_types
                .iter()
                .filter(|t| t.app_id == app_id)
                .max_by(|a, b| a.popularity.total_cmp(&b.popularity))
                .context("no track type")?
                .id
                .clone(),
            minutes_metric: Some("Minutes".into()),
        },
        BenchKind::Guide => MappingKind::Guide {
            guide_id: sub
                .guides
                .iter()
                .find(|g| g.app_id == app_id && g.steps.len() > 1)
                .context("no guide of several steps")?
                .id
                .clone(),
            advanced_metric: Some("Advanced".into()),
            dismissed_metric: Some("Dismissed".into()),
            completed_metric: Some("Completed".into()),
        },
        BenchKind::Poll => {
            let (guide, poll) = sub
                .guides
                .iter()
                .find_map(|g| {
                    let p = g.polls.iter().find(|p| p.kind.as_str() == "NPSRating")?;
                    Some((g.id.clone(), p.id.clone()))
                })
                .context("no NPS poll")?;
            MappingKind::Poll {
                guide_id: guide,
                poll_id: poll,
                window_days: None,
                responses_metric: Some("Responses".into()),
                mean_metric: None,
            }
        }
        BenchKind::Pes | BenchKind::Events => MappingKind::Pes {
            app_id,
            components: vec![PesComponent::Score, PesComponent::Adoption],
        },
    })
}

/// `mappings` company mappings, `pages` of them Page mappings and the others Feature mappings,
/// over every app's features and pages in turn.
async fn many_mappings(
    app: &pendo_sync::App,
    t: &TenantId,
    sub: &pendo_sim::data::Subscription,
    mappings: usize,
    pages: usize,
    companies: usize,
    days: i64,
) -> anyhow::Result<()> {
    anyhow::ensure!(pages <= mappings, "--pages is more than --mappings");
    let all_features: Vec<String> = sub.features.iter().map(|f| f.id.clone()).collect();
    let all_pages: Vec<String> = sub.pages.iter().map(|p| p.id.clone()).collect();
    anyhow::ensure!(
        !all_features.is_empty() && !all_pages.is_empty(),
        "the subscription has no features or no pages"
    );
    for i in 0..mappings {
        let source = if i < mappings - pages {
            MappingKind::Feature {
                feature_id: all_features[i % all_features.len()].clone(),
                minutes_metric: None,
            }
        } else {
            MappingKind::Page {
                page_id: all_pages[i % all_pages.len()].clone(),
                minutes_metric: None,
            }
        };
        let input = MappingInput::new(source, Target::Company, &format!("Bench metric {i}"));
        app.create_mapping(t, &input).await?;
    }
    println!(
        "{}",
        serde_json::json!({ "companies": companies, "mappings": mappings, "pages": pages, "days": days })
    );
    Ok(())
}
