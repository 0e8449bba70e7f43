//! `pendo-sync demo`: the one-command tour. Starts the Pendo simulator in-process, configures a
//! demo tenant (connect, settings, apps, segments, directory, four mappings), runs a Re-sync all
//! through the real worker path, and prints what was synced.

use crate::runtime::Local;
use crate::seed;
use anyhow::Context;
use chrono::Duration;
use pendo_sim::data::{Segment, Subscription};
use pendo_sim::{RunningSim, SimConfig, SimKey, Simulator};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::domain::mapping::{FieldMetric, MappingInput, PesComponent};
use pendo_sync::domain::{
    ChunkStats, DirectoryObject, FieldMappingsInput, Mapping, MappingKind, ObjectRef, SyncRun,
    Target, TenantId,
};
use pendo_sync::App;
use std::path::Path;

const KEY: &str = "demo-integration-key";

pub async fn run(data: &Path, seed: u64, days: i64, serve: Option<&str>) -> anyhow::Result<()> {
    let (sim, running) = start_simulator(seed).await?;
    let sub = sim.subscription();
    // An empty store, so the demo shows one clean re-sync.
    let rt = Local::consume_fresh(data, "demo", Some(&running.base_url())).await?;
    let app = &rt.app;
    let t = TenantId::parse("demo")?;
    let segment = configure(app, &t, sub, days).await?;
    let seeded = seed::directory(
        app,
        &t,
        sub,
        &seed::Pick {
            accounts_left_out: 2,
            every_nth_visitor: 2,
            max_end_users: usize::MAX,
            with_names: false,
        },
    )
    .await?;
    println!(
        "Directory: {} companies, {} end users",
        seeded.companies.len(),
        seeded.end_users
    );
    let mappings = create_mappings(app, &t, sub, &segment).await?;

    println!("Re-sync all ({days} days) …");
    let started = std::time::Instant::now();
    let run_id = app.resync_all(&t).await?;
    let stats = rt.drain(4, true).await;
    let (done, retried, failed, _) = stats.snapshot();
    let run = app.run(&t, &run_id).await?;
    println!(
        "Done in {:.1}s: {} chunks ({done} messages processed, {retried} retried, {failed} failed), {} Pendo rows read",
        started.elapsed().as_secs_f64(),
        run.chunks.len(),
        run.totals().rows_read
    );
    print!("\n{}", summary(app, &t, &mappings, &run).await?.render());
    println!("\nLast 5 days for three companies:");
    print!(
        "{}",
        recent(app, &t, &seeded.companies[..seeded.companies.len().min(3)])
            .await?
            .render()
    );
    let rows = app.export(Some(&t)).await?;
    println!(
        "\n{} values and activity records stored in {}",
        rows.len(),
        data.join(pendo_sync::store::embedded::EmbeddedStore::FILE)
            .display()
    );
    println!(
        "Export them with: cargo run -p local --bin pendo-sync -- export --data {}",
        data.display()
    );
    match serve {
        Some(listen) => {
            // The simulator keeps running: the page's discovery lists its pages and features.
            println!();
            let (table, token) = crate::serve::fresh_admin(t.as_str())?;
            crate::serve::run(rt, listen, table, token, 4, None).await?;
        }
        None => println!(
            "\nThe configurator page: `make demo SERVE=1` (or `demo --serve`) serves it at http://127.0.0.1:8080/\n\
             and prints a sign-in link (http://127.0.0.1:8080/#token=…) that opens it as the demo tenant's admin."
        ),
    }
    running.shutdown().await;
    Ok(())
}

/// The small preset's simulator on a free port, with the demo's key.
async fn start_simulator(seed: u64) -> anyhow::Result<(Simulator, RunningSim)> {
    let mut config = SimConfig::small();
    config.seed = seed;
    config.now = chrono::Utc::now();
    config.keys = vec![SimKey {
        key: KEY.into(),
        write_access: true,
    }];
    let sim = Simulator::new(config);
    let running = sim
        .spawn("127.0.0.1:0")
        .await
        .context("starting the Pendo simulator")?;
    let sub = sim.subscription();
    println!(
        "Pendo simulator on {} — seed {seed}, {} accounts, {} visitors, {} apps, timezone {}",
        running.base_url(),
        sub.accounts.len(),
        sub.visitors.len(),
        sub.apps.len(),
        sub.timezone
    );
    Ok((sim, running))
}

/// Connects the tenant, sets its settings (days, the subscription's timezone, field mappings,
/// auto-detect) and its apps and first segment; returns that segment.
async fn configure(
    app: &App,
    t: &TenantId,
    sub: &Subscription,
    days: i64,
) -> anyhow::Result<Segment> {
    let i = app.connect(t, KEY, "app.pendo.io").await?;
    println!(
        "Connected tenant '{t}' to app.pendo.io with key {}",
        i.connection
            .as_ref()
            .map(|c| c.key.masked())
            .unwrap_or_default()
    );
    app.update_settings(
        t,
        &SettingsUpdate {
            days_to_sync: Some(days),
            timezone: Some(sub.timezone.name().to_string()),
            field_mappings: Some(FieldMappingsInput {
                email: Some("metadata.agent.email".into()),
                name: Some("metadata.agent.firstname".into()),
                surname: Some("metadata.agent.lastname".into()),
                ..Default::default()
            }),
            auto_detect_end_users: Some(true),
        },
    )
    .await?;
    for a in &sub.apps {
        app.upsert_app(t, &a.id.to_string(), &a.name).await?;
    }
    app.upsert_app(t, "unknown", "Other Apps").await?;
    let segment = sub
        .segments
        .first()
        .context("the simulator has no segment")?;
    app.upsert_segment(t, &segment.id, &segment.name).await?;
    Ok(segment.clone())
}

/// The demo's mappings, one or more of each kind, created and printed.
async fn create_mappings(
    app: &App,
    t: &TenantId,
    sub: &Subscription,
    segment: &Segment,
) -> anyhow::Result<Vec<Mapping>> {
    let default_app = sub.apps.first().map(|a| a.id).unwrap_or(-323232);
    let top_feature = |app_id: i64, skip: usize| {
        let mut f: Vec<_> = sub.features.iter().filter(|f| f.app_id == app_id).collect();
        f.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
        f.get(skip).map(|f| (f.id.clone(), f.name.clone()))
    };
    let (f1, f1_name) = top_feature(default_app, 0).context("no feature in the default app")?;
    let (f2, _) = top_feature(default_app, 1).unwrap_or((f1.clone(), String::new()));
    let mut pages: Vec<_> = sub
        .pages
        .iter()
        .filter(|p| p.app_id == default_app)
        .collect();
    pages.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
    let page = pages.first().context("no page in the default app")?;
    let feature = |id: &str, minutes: Option<&str>| MappingKind::Feature {
        feature_id: id.to_string(),
        minutes_metric: minutes.map(str::to_string),
    };
    let mut inputs = vec![
        MappingInput {
            multi_app: true,
            ..MappingInput::new(
                feature(&f1, Some("Feature minutes")),
                Target::Company,
                "Feature clicks",
            )
        },
        MappingInput {
            passive: true,
            ..MappingInput::new(
                MappingKind::Page {
                    page_id: page.id.clone(),
                    minutes_metric: None,
                },
                Target::Company,
                "Page views",
            )
        },
        MappingInput {
            segment_id: Some(segment.id.clone()),
            ..MappingInput::new(feature(&f2, None), Target::Company, "Segment clicks")
        },
        MappingInput {
            auto_create_users: true,
            ..MappingInput::new(feature(&f1, None), Target::EndUser, "Clicks")
        },
    ];
    // One mapping of each per-day kind: a saved report, the setup guide's aggregation, PES.
    let report = app
        .report_catalog(t)
        .await?
        .into_iter()
        .filter(|r| r.compatible && r.window_days == Some(7))
        .find(|r| !r.numeric_columns.is_empty())
        .context("the simulator has no compatible 7-day report")?;
    let column = &report.numeric_columns[0];
    let metric = format!("{}, 7-day report", column.title);
    inputs.push(MappingInput::new(
        MappingKind::Report {
            report_id: report.id.clone(),
            columns: vec![FieldMetric {
                field: column.field.clone(),
                metric: metric.clone(),
            }],
        },
        Target::Company,
        &metric,
    ));
    let field = |field: &str, metric: &str| FieldMetric {
        field: field.into(),
        metric: metric.into(),
    };
    inputs.push(MappingInput::new(
        MappingKind::Aggregation {
            pipeline: guide_pipeline(),
            fields: vec![field("metric1", "Events"), field("metric2", "Minutes")],
        },
        Target::Company,
        "Daily usage",
    ));
    inputs.push(MappingInput::new(
        MappingKind::Pes {
            app_id: default_app,
            components: vec![PesComponent::Score, PesComponent::Adoption],
        },
        Target::Company,
        "Engagement",
    ));
    // A guide of several steps (seen and completed), and the NPS of the guide that asks it.
    let tour = sub
        .guides
        .iter()
        .find(|g| g.app_id == default_app && g.steps.len() > 1)
        .context("the simulator has no guide of several steps")?;
    inputs.push(MappingInput::new(
        MappingKind::Guide {
            guide_id: tour.id.clone(),
            advanced_metric: None,
            dismissed_metric: None,
            completed_metric: Some(format!("{} completed", tour.name)),
        },
        Target::Company,
        &format!("{} seen", tour.name),
    ));
    let (nps_guide, nps_poll) = sub
        .guides
        .iter()
        .find_map(|g| {
            let p = g.polls.iter().find(|p| p.kind.as_str() == "NPSRating")?;
            Some((g.id.clone(), p.id.clone()))
        })
        .context("the simulator has no NPS poll")?;
    inputs.push(MappingInput::new(
        MappingKind::Poll {
            guide_id: nps_guide,
            poll_id: nps_poll,
            window_days: None,
            responses_metric: Some("NPS responses".into()),
            mean_metric: None,
        },
        Target::Company,
        "NPS",
    ));
    let mut mappings = Vec::new();
    for input in &inputs {
        let m = app.create_mapping(t, input).await?;
        println!(
            "Mapping {:<28} {:<11} → {:<8} passive={} multi-app={} auto-create={} segment={}",
            m.metric_name,
            m.source.name(),
            m.target.as_str(),
            m.passive,
            m.multi_app,
            m.auto_create_users,
            m.segment_id.as_deref().unwrap_or("-")
        );
        mappings.push(m);
    }
    println!(
        "(feature '{f1_name}', page '{}', segment '{}', report '{}' over {} days)",
        page.name,
        segment.name,
        report.name,
        report.window_days.unwrap_or_default()
    );
    Ok(mappings)
}

/// Each mapping's cursor and what the run did for it.
async fn summary(
    app: &App,
    t: &TenantId,
    mappings: &[Mapping],
    run: &SyncRun,
) -> anyhow::Result<Table> {
    let mut table = Table::new(&[
        ("mapping", Align::Left),
        ("last synced", Align::Right),
        ("rows read", Align::Right),
        ("values", Align::Right),
        ("created", Align::Right),
        ("skipped", Align::Right),
    ]);
    for m in mappings {
        let st = app.mapping_state(t, &m.id).await?;
        let mut totals = ChunkStats::default();
        for c in run.chunks.iter().filter(|c| c.mapping_id == m.id) {
            totals.add(&c.stats);
        }
        table.row(vec![
            m.metric_name.clone(),
            st.and_then(|s| s.last_synced_day)
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            totals.rows_read.to_string(),
            totals.values_written.to_string(),
            totals.users_created.to_string(),
            totals.rows_skipped.to_string(),
        ]);
    }
    Ok(table)
}

/// The last 5 days of each metric of `companies`, and their users active in the last 7 days.
async fn recent(app: &App, t: &TenantId, companies: &[DirectoryObject]) -> anyhow::Result<Table> {
    let i = app.integration(t).await?;
    let last = pendo_sync::time::last_complete_day(app.now(), i.settings.timezone.map(|z| z.0));
    let from = last - Duration::days(4);
    let days: Vec<_> = from.iter_days().take_while(|d| *d <= last).collect();
    let mut columns = vec![
        ("company".to_string(), Align::Left),
        ("metric".to_string(), Align::Left),
    ];
    columns.extend(
        days.iter()
            .map(|d| (d.format("%m-%d").to_string(), Align::Right)),
    );
    let mut table = Table::with_columns(columns);
    for c in companies {
        let obj = ObjectRef {
            kind: Target::Company,
            id: c.external_id.clone(),
        };
        for metric in app.object_metrics(t, &obj).await? {
            let series = app
                .object_series(t, &obj, &metric.metric, from, last)
                .await?;
            let mut row = vec![c.external_id.clone(), metric.metric.clone()];
            row.extend(days.iter().map(|d| {
                series
                    .iter()
                    .find(|p| p.day == *d && p.app == metric.app)
                    .map(|p| p.value.to_string())
                    .unwrap_or_else(|| "·".into())
            }));
            table.row(row);
        }
        // One number for the 7 days ending on the last day: shown under that day.
        let sys = app.system_metrics(t, &obj).await?;
        let mut row = vec![
            c.external_id.clone(),
            "users active last 7 days".to_string(),
        ];
        row.extend(days.iter().map(|d| {
            if *d == last {
                sys.users_active_last_7_days.unwrap_or(0).to_string()
            } else {
                String::new()
            }
        }));
        table.row(row);
    }
    Ok(table)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A text table whose columns are as wide as their widest cell (header included), one space
/// apart, so long metric names never push the other columns out of line.
struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&str, Align)]) -> Self {
        Self::with_columns(columns.iter().map(|(h, a)| (h.to_string(), *a)).collect())
    }

    fn with_columns(columns: Vec<(String, Align)>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra ones dropped.
    fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// The table, a header line then one line per row, each ending in a newline (no trailing
    /// spaces).
    fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (h, _))| {
                self.rows
                    .iter()
                    .map(|r| width(&r[i]))
                    .chain([width(h)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<&str> = self.columns.iter().map(|(h, _)| h.as_str()).collect();
        for cells in std::iter::once(header).chain(
            self.rows
                .iter()
                .map(|r| r.iter().map(String::as_str).collect()),
        ) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                let pad = " ".repeat(widths[i] - width(cell));
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The functional spec's example pipeline: per visitor, the day's events (`metric1`) and
/// minutes (`metric2`) of all apps, with the visitor's account.
pub(crate) fn guide_pipeline() -> serde_json::Value {
    serde_json::json!([
        {"source": {"events": {"appId": "expandAppIds(\"*\")"},
            "timeSeries": {"first": "now()", "count": 1, "period": "dayRange"}}},
        {"group": {"group": ["visitorId"], "fields": {"metric1": {"sum": "numEvents"},
            "metric2": {"sum": "numMinutes"}, "accountId": {"first": "accountId"}}}},
        {"select": {"accountId": "accountId", "visitorId": "visitorId",
            "metric1": "metric1", "metric2": "metric2"}}
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_sized_from_the_data() {
        let mut t = Table::new(&[
            ("mapping", Align::Left),
            ("last synced", Align::Right),
            ("values", Align::Right),
        ]);
        t.row(vec!["Clicks".into(), "2026-11-30".into(), "12".into()]);
        t.row(vec![
            "Average Number of Minutes per Visitor, 7-day report".into(),
            "-".into(),
            "1234567".into(),
        ]);
        t.row(vec!["Page views".into()]);
        assert_eq!(
            t.render(),
            "\
mapping                                             last synced  values
Clicks                                               2026-11-30      12
Average Number of Minutes per Visitor, 7-day report           - 1234567
Page views
"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new(&[("metric", Align::Left), ("11-30", Align::Right)]);
        t.row(vec!["Café · visits".into(), "·".into()]);
        t.row(vec!["x".into(), "1.5".into()]);
        assert_eq!(
            t.render(),
            "metric        11-30\nCafé · visits     ·\nx               1.5\n"
        );
    }
}
