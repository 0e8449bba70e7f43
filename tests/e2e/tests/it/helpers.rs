//! `Stack`: a simulator on an ephemeral port, an embedded store, the queue kept in it, a fixed
//! clock and the app, plus typed helpers to configure a tenant and compute expectations.
#![allow(dead_code)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use pendo_sim::{RunningSim, SimConfig, SimKey, Simulator};
use pendo_sync::app::SettingsUpdate;
use pendo_sync::clock::FixedClock;
use pendo_sync::domain::mapping::MappingInput;
use pendo_sync::domain::*;
use pendo_sync::queue::embedded::{EmbeddedQueue, QueueSettings};
use pendo_sync::queue::Queue;
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use pendo_sync::worker::{drain, DrainStats};
use pendo_sync::{App, Ports};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

pub const KEY: &str = "scenario-key";
pub const NY: Tz = chrono_tz::America::New_York;

/// The fetch messages of a run, each one Pendo call when nothing fails: a chunk alone, or the
/// chunks that share a call (`sync::share`).
pub fn calls_of(run: &pendo_sync::domain::SyncRun) -> u64 {
    run.chunks
        .iter()
        .enumerate()
        .filter(|(i, c)| c.share.is_none_or(|lead| lead == *i))
        .count() as u64
}

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Wraps the queue the app sends to (the drain still reads the embedded queue).
pub type QueueWrapper = Box<dyn FnOnce(EmbeddedQueue) -> Arc<dyn Queue>>;

/// Variations of [`Stack::build`].
#[derive(Default)]
pub struct StackOptions {
    /// The Pendo client's whole-request timeout (default: the product's).
    pub request_timeout: Option<StdDuration>,
    /// An embedded store on a file in this folder (default: in memory).
    pub store_dir: Option<std::path::PathBuf>,
    /// Wraps the queue the app sends to.
    pub wrap_queue: Option<QueueWrapper>,
    /// The Pendo client takes each call's token from this shared budget, kept in the store.
    pub budget: Option<BudgetSettings>,
    /// The most chunks one Pendo call fetches (default: the product's; 1: each chunk alone).
    pub max_shared: Option<usize>,
}

pub struct Stack {
    pub sim: Simulator,
    pub running: RunningSim,
    pub app: Arc<App>,
    /// The app's store, to read what a use case stored.
    pub store: EmbeddedStore,
    pub queue: EmbeddedQueue,
    pub clock: FixedClock,
    pub tenant: TenantId,
}

/// Small preset, "now" = 2026-11-05T15:00Z, so 20 days of history span the DST change of
/// 2026-11-01 in New York.
pub fn sim_config() -> SimConfig {
    let mut c = SimConfig::small();
    c.now = Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap();
    c.keys = vec![SimKey {
        key: KEY.into(),
        write_access: true,
    }];
    c
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(sim_config()).await
    }

    pub async fn start_with(config: SimConfig) -> Stack {
        Self::build(config, StackOptions::default()).await
    }

    /// A stack with a shorter Pendo client timeout, a file store and/or a queue wrapper
    /// (what the app sends goes through the wrapper; the drain reads the embedded queue).
    pub async fn build(config: SimConfig, opts: StackOptions) -> Stack {
        let now = config.now;
        let sim = Simulator::new(config);
        let running = sim.spawn("127.0.0.1:0").await.unwrap();
        let clock = FixedClock::new(now);
        let store = match &opts.store_dir {
            Some(dir) => EmbeddedStore::open_dir(dir).unwrap(),
            None => EmbeddedStore::in_memory().unwrap(),
        };
        let pendo = pendo_sync::ports::simulator_pendo(&running.base_url(), |c| {
            if let Some(t) = opts.request_timeout {
                c.request_timeout = t;
            }
        })
        .with_budgets(Arc::new(store.clone()), opts.budget);
        let ports = Ports::builder().pendo(Arc::new(pendo));
        let queue = EmbeddedQueue::new(&store, QueueSettings::with(5, StdDuration::from_millis(1)));
        let sent: Arc<dyn Queue> = match opts.wrap_queue {
            Some(wrap) => wrap(queue.clone()),
            None => Arc::new(queue.clone()),
        };
        let ports = ports
            .store(Arc::new(store.clone()))
            .queue(sent)
            .clock(Arc::new(clock.clone()))
            .build();
        let mut app = App::new(ports);
        if let Some(n) = opts.max_shared {
            app.max_shared = n;
        }
        let app = Arc::new(app);
        let tenant = TenantId::parse("acme-cs").unwrap();
        app.connect(&tenant, KEY, "app.pendo.io").await.unwrap();
        Stack {
            sim,
            running,
            app,
            store,
            queue,
            clock,
            tenant,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now_value()
    }

    /// Days to sync and the New York zone (the simulator's subscription zone).
    pub async fn ny_days(&self, days: i64) {
        self.settings(SettingsUpdate {
            days_to_sync: Some(days),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        })
        .await;
    }

    pub async fn settings(&self, u: SettingsUpdate) {
        self.app.update_settings(&self.tenant, &u).await.unwrap();
    }

    /// End users matched by email too (`metadata.agent.email`), and auto-detected.
    pub async fn emails_and_auto_detect(&self) {
        self.settings(SettingsUpdate {
            field_mappings: Some(pendo_sync::domain::FieldMappingsInput {
                email: Some("metadata.agent.email".into()),
                ..Default::default()
            }),
            auto_detect_end_users: Some(true),
            ..Default::default()
        })
        .await;
    }

    /// Companies = every simulator account except `skip`.
    pub async fn add_companies(&self, skip: &[&str]) -> Vec<String> {
        let ids: Vec<String> = self
            .sim
            .subscription()
            .accounts
            .iter()
            .map(|a| a.id.clone())
            .filter(|id| !skip.contains(&id.as_str()))
            .collect();
        let objs: Vec<DirectoryObject> = ids
            .iter()
            .map(|id| DirectoryObject {
                external_id: id.clone(),
                name: None,
                company_id: None,
            })
            .collect();
        self.store
            .upsert_objects(&self.tenant, Target::Company, &objs)
            .await
            .unwrap();
        ids
    }

    pub async fn add_user(
        &self,
        company: &str,
        ext: Option<&str>,
        email: Option<&str>,
        name: Option<&str>,
    ) -> EndUser {
        self.store
            .upsert_end_user(
                &self.tenant,
                &EndUserInput {
                    company_id: company.into(),
                    external_id: ext.map(Into::into),
                    email: email.map(Into::into),
                    name: name.map(Into::into),
                    surname: None,
                },
            )
            .await
            .unwrap()
    }

    pub async fn mapping(
        &self,
        source: MappingKind,
        target: Target,
        name: &str,
        f: impl FnOnce(&mut MappingInput),
    ) -> Mapping {
        let mut input = MappingInput::new(source, target, name);
        f(&mut input);
        self.app.create_mapping(&self.tenant, &input).await.unwrap()
    }

    pub async fn drain(&self) {
        drain(
            self.app.clone(),
            self.queue.clone(),
            2,
            Arc::new(DrainStats::default()),
        )
        .await;
        let dead = self.queue.dead_letters().unwrap();
        assert!(dead.is_empty(), "dead letters: {dead:?}");
    }

    pub async fn resync(&self) {
        self.app.resync_all(&self.tenant).await.unwrap();
        self.drain().await;
    }

    /// The end users mapping `m`'s chunks created in the last run.
    pub async fn users_created(&self, m: &MappingId) -> u64 {
        let run = self
            .store
            .list_runs(&self.tenant, 1)
            .await
            .unwrap()
            .remove(0);
        run.chunks
            .iter()
            .filter(|c| &c.mapping_id == m)
            .map(|c| c.stats.users_created)
            .sum()
    }

    /// The end users by (external id, company), checked to be one per pair of `pairs` and no
    /// other, with `kept` (added by hand) never overwritten.
    pub async fn users_by_pair(
        &self,
        pairs: &std::collections::BTreeSet<(String, String)>,
        kept: &EndUser,
    ) -> BTreeMap<(String, String), String> {
        let users = self.store.list_end_users(&self.tenant).await.unwrap();
        let by_pair: BTreeMap<(String, String), String> = users
            .iter()
            .map(|u| {
                let ext = u.external_id.clone().unwrap_or_default();
                ((ext, u.company_id.clone()), u.id.clone())
            })
            .collect();
        let got: std::collections::BTreeSet<_> = by_pair.keys().cloned().collect();
        assert_eq!(
            &got, pairs,
            "one end user per (visitor, company) met, and no other"
        );
        let after = users.iter().find(|u| u.id == kept.id).unwrap();
        assert_eq!(after.name.as_deref(), Some("Keep"), "never overwritten");
        by_pair
    }

    /// A mapping's sync state (it must have one).
    pub async fn state(&self, m: &MappingId) -> MappingState {
        let st = self.store.get_mapping_state(&self.tenant, m).await.unwrap();
        st.unwrap_or_else(|| panic!("mapping {m} has no state"))
    }

    /// The daily schedule, run to the end.
    pub async fn daily(&self) {
        self.app.run_schedule().await.unwrap();
        self.drain().await;
    }

    pub async fn export(&self) -> Vec<ExportRow> {
        self.store.export(Some(&self.tenant)).await.unwrap()
    }

    /// (object id, metric, app, day) → value of the stored values.
    pub async fn values(&self) -> BTreeMap<(String, String, String, NaiveDate), f64> {
        self.export()
            .await
            .into_iter()
            .filter(|r| r.record == "value")
            .map(|r| ((r.object_id, r.metric, r.app, r.day), r.value))
            .collect()
    }

    /// The most popular feature of an app (deterministic).
    pub fn feature(&self, app_id: i64) -> String {
        let mut f: Vec<_> = self
            .sim
            .subscription()
            .features
            .iter()
            .filter(|f| f.app_id == app_id)
            .collect();
        f.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
        f[0].id.clone()
    }

    pub fn feature_rows(
        &self,
        feature: &str,
        from: NaiveDate,
        to: NaiveDate,
        tz: Tz,
        extra: Vec<Value>,
    ) -> Vec<Value> {
        feature_rows(&self.sim, feature, from, to, tz, extra)
    }

    /// The most popular track type of an app (deterministic).
    pub fn track_type(&self, app_id: i64) -> String {
        let mut t: Vec<_> = self
            .sim
            .subscription()
            .track_types
            .iter()
            .filter(|t| t.app_id == app_id)
            .collect();
        t.sort_by(|a, b| b.popularity.total_cmp(&a.popularity).then(a.id.cmp(&b.id)));
        t[0].id.clone()
    }

    /// A guide of an app: of several steps (`several`) or of one, the first by id.
    pub fn guide(&self, app_id: i64, several: bool) -> pendo_sim::data::Guide {
        let mut g: Vec<_> = self
            .sim
            .subscription()
            .guides
            .iter()
            .filter(|g| g.app_id == app_id && (g.steps.len() > 1) == several && g.polls.is_empty())
            .cloned()
            .collect();
        g.sort_by(|a, b| a.id.cmp(&b.id));
        g.remove(0)
    }

    /// Raw guideEvents rows of one guide, all apps, local days `from..=to` in New York.
    pub fn guide_rows(&self, guide: &str, from: NaiveDate, to: NaiveDate) -> Vec<Value> {
        event_rows(
            &self.sim,
            ("guideEvents", "guideId", guide),
            from,
            to,
            NY,
            vec![],
        )
    }

    /// Raw trackEvents rows of one track type (as [`feature_rows`]).
    pub fn track_rows(&self, track_type: &str, from: NaiveDate, to: NaiveDate) -> Vec<Value> {
        event_rows(
            &self.sim,
            ("trackEvents", "trackTypeId", track_type),
            from,
            to,
            NY,
            vec![],
        )
    }
}

/// Raw featureEvents rows of one feature, all apps, for local days `from..=to` in `tz`, from a
/// pipeline run directly on the simulator (bypassing the product).
pub fn feature_rows(
    sim: &Simulator,
    feature: &str,
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
    extra: Vec<Value>,
) -> Vec<Value> {
    event_rows(
        sim,
        ("featureEvents", "featureId", feature),
        from,
        to,
        tz,
        extra,
    )
}

/// Raw rows of an event source (`(source, id parameter, id)`), all apps, for local days
/// `from..=to` in `tz`, from a pipeline run directly on the simulator, then `extra` stages.
pub fn event_rows(
    sim: &Simulator,
    (source, param, id): (&str, &str, &str),
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
    extra: Vec<Value>,
) -> Vec<Value> {
    let first = tz
        .from_local_datetime(&from.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_millis();
    let count = (to - from).num_days() + 1;
    let mut params = serde_json::Map::new();
    params.insert(param.into(), json!(id));
    params.insert("appId".into(), json!("expandAppIds(\"*\")"));
    let mut src = serde_json::Map::new();
    src.insert(source.into(), Value::Object(params));
    src.insert(
        "timeSeries".into(),
        json!({"period": "dayRange", "first": first, "count": count}),
    );
    let mut p = vec![json!({ "source": src })];
    p.extend(extra);
    let body = json!({"response": {"mimeType": "application/json"}, "request": {"pipeline": p}});
    sim.run_aggregation(&body).unwrap()
}

/// The local date of a bucket, computed here with chrono-tz (not with the product's code).
pub fn local_day(ms: i64, tz: Tz) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&tz)
        .date_naive()
}

/// Sums `field` of rows by (key of `key_fn`, local day).
pub fn sum_by<K: Ord>(
    rows: &[Value],
    tz: Tz,
    field: &str,
    key_fn: impl Fn(&Value) -> Option<K>,
) -> BTreeMap<(K, NaiveDate), f64> {
    let mut out = BTreeMap::new();
    for r in rows {
        let Some(k) = key_fn(r) else { continue };
        let day = local_day(r["day"].as_i64().unwrap(), tz);
        *out.entry((k, day)).or_insert(0.0) += r[field].as_f64().unwrap_or(0.0);
    }
    out
}

pub fn days_back(last: NaiveDate, n: i64) -> NaiveDate {
    last - Duration::days(n - 1)
}

/// Every account of the simulator's subscription as a company of the directory (no name).
pub fn every_company(sim: &Simulator) -> Vec<DirectoryObject> {
    sim.subscription()
        .accounts
        .iter()
        .map(|a| DirectoryObject {
            external_id: a.id.clone(),
            name: None,
            company_id: None,
        })
        .collect()
}

/// Two companies with values and two end users with activity of an export: the objects a
/// reader polls in the tests of a Re-sync all without a gap.
pub fn objects_to_read(rows: &[ExportRow]) -> Vec<ObjectRef> {
    let pick = |kind: Target, record: &str| -> Vec<ObjectRef> {
        let mut ids: Vec<String> = rows
            .iter()
            .filter(|r| r.object_type == kind.as_str() && r.record.starts_with(record))
            .map(|r| r.object_id.clone())
            .collect();
        ids.dedup();
        ids.into_iter()
            .take(2)
            .map(|id| ObjectRef { kind, id })
            .collect()
    };
    let mut out = pick(Target::Company, "value");
    out.extend(pick(Target::EndUser, "activity"));
    out
}

/// Polls of reads (one entry per read: each reads one generation) taken while `old` became
/// `new`: each read shows `old`, then from one poll on `new`, never anything else. Returns how
/// many polls were wholly old and wholly new.
pub fn assert_old_then_new(
    polls: &[Vec<String>],
    old: &[String],
    new: &[String],
) -> (usize, usize) {
    let mut switched = vec![false; old.len()];
    let (mut wholly_old, mut wholly_new) = (0, 0);
    for (n, p) in polls.iter().enumerate() {
        assert_eq!(p.len(), old.len(), "poll {n}");
        for r in 0..p.len() {
            if p[r] == new[r] && (old[r] != new[r] || switched[r]) {
                switched[r] = true;
            } else if p[r] == old[r] {
                assert!(!switched[r], "poll {n}: read {r} is old again after new");
            } else {
                panic!(
                    "poll {n} of {}: read {r} is neither old nor new:\n{}\nold: {}\nnew: {}",
                    polls.len(),
                    p[r],
                    old[r],
                    new[r]
                );
            }
        }
        wholly_old += usize::from(p == old);
        wholly_new += usize::from(p == new);
    }
    (wholly_old, wholly_new)
}

/// Renames mapping `name`'s metric to `to` in place (it then needs a rebuild); returns it.
pub async fn rename(app: &pendo_sync::app::App, t: &TenantId, name: &str, to: &str) -> Mapping {
    let m = app
        .mappings(t)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.metric_name == name)
        .unwrap();
    let input = MappingInput {
        source: m.source.clone(),
        target: m.target,
        metric_name: to.into(),
        passive: m.passive,
        multi_app: m.multi_app,
        auto_create_users: m.auto_create_users,
        segment_id: m.segment_id.clone(),
        enabled: m.enabled,
    };
    let edited = app.update_mapping(t, &m.id, &input).await.unwrap();
    assert!(edited.rebuild_required);
    edited
}
