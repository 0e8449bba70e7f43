//! Shared by the process tests: a tenant configured in a data folder, the `pendo-sync`
//! binary, and its export.
#![allow(dead_code)]

use pendo_sim::Simulator;
use pendo_sync::app::SettingsUpdate;
use pendo_sync::clock::SystemClock;
use pendo_sync::domain::mapping::MappingInput;
use pendo_sync::domain::*;
use pendo_sync::queue::embedded::{EmbeddedQueue, QueueSettings};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use pendo_sync::{App, Ports};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const KEY: &str = "kill-test-key";

/// The small simulator on an ephemeral port, "now" being now, knowing [`KEY`].
pub async fn simulator_now() -> (Simulator, pendo_sim::RunningSim) {
    // reqwest's rustls (the tests' own HTTP calls) needs a crypto provider: the product's.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config = pendo_sim::SimConfig::small();
    config.now = chrono::Utc::now();
    config.keys = vec![pendo_sim::SimKey {
        key: KEY.into(),
        write_access: true,
    }];
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    (sim, running)
}

pub fn tenant() -> TenantId {
    TenantId::parse("acme-cs").unwrap()
}

/// A tenant with three multi-app feature mappings over 21 days, written into `dir` the way the
/// API would (then the store is closed again).
pub async fn configure(dir: &Path, sim: &Simulator, base_url: &str) {
    configure_with(dir, sim, base_url, false).await
}

/// `configure`, and with `creator` also auto-detect on and an end-user Feature mapping that
/// creates users: the company mappings' chunks of a Re-sync all then wait for its chunks, and
/// are queued by the release once they are over.
pub async fn configure_with(dir: &Path, sim: &Simulator, base_url: &str, creator: bool) {
    let store = Arc::new(EmbeddedStore::open_dir(dir).unwrap());
    let app = App::new(
        Ports::builder()
            .store(store.clone())
            .queue(Arc::new(EmbeddedQueue::new(&store, QueueSettings::LOCAL)))
            .pendo_at(base_url)
            .clock(Arc::new(SystemClock))
            .build(),
    );
    let t = tenant();
    app.connect(&t, KEY, "app.pendo.io").await.unwrap();
    app.update_settings(
        &t,
        &SettingsUpdate {
            days_to_sync: Some(21),
            timezone: Some("America/New_York".into()),
            auto_detect_end_users: Some(creator),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let companies: Vec<DirectoryObject> = sim
        .subscription()
        .accounts
        .iter()
        .map(|a| DirectoryObject {
            external_id: a.id.clone(),
            name: None,
            company_id: None,
        })
        .collect();
    store
        .upsert_objects(&t, Target::Company, &companies)
        .await
        .unwrap();
    if creator {
        let feature = sim
            .subscription()
            .features
            .iter()
            .map(|f| f.id.clone())
            .min();
        app.create_mapping(
            &t,
            &MappingInput {
                source: MappingKind::Feature {
                    feature_id: feature.unwrap(),
                    minutes_metric: None,
                },
                target: Target::EndUser,
                metric_name: "Clicks by user".into(),
                passive: false,
                multi_app: false,
                auto_create_users: true,
                segment_id: None,
                enabled: true,
            },
        )
        .await
        .unwrap();
    }
    for (i, app_id) in sim.subscription().app_ids().into_iter().enumerate() {
        let feature = sim
            .subscription()
            .features
            .iter()
            .filter(|f| f.app_id == app_id)
            .map(|f| f.id.clone())
            .min()
            .unwrap();
        app.create_mapping(
            &t,
            &MappingInput {
                source: MappingKind::Feature {
                    feature_id: feature,
                    minutes_metric: None,
                },
                target: Target::Company,
                metric_name: format!("Clicks {i}"),
                passive: false,
                multi_app: true,
                auto_create_users: false,
                segment_id: None,
                enabled: true,
            },
        )
        .await
        .unwrap();
    }
}

pub fn sync(dir: &Path, base_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pendo-sync"))
        .args(["sync", "--workers", "2", "--data"])
        .arg(dir)
        .args(["--pendo-base-url", base_url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for the process to exit (at most a minute), returning whether it succeeded.
pub async fn finish(mut child: Child) -> bool {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > until {
            child.kill().ok();
            panic!("pendo-sync sync did not finish in a minute");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn export(dir: &Path) -> Vec<ExportRow> {
    EmbeddedStore::open_dir(dir)
        .unwrap()
        .export(Some(&tenant()))
        .await
        .unwrap()
}

/// A `pendo-sync serve` process on a data folder, with the lines it prints.
pub struct Serve {
    pub child: Child,
    pub base: String,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far (stdout and stderr).
    pub seen: Vec<String>,
}

pub const TOKEN: &str = "kill-test-token-0123456789";

impl Serve {
    /// Starts `serve` (one worker, no schedule) with `env` set, and waits for its address.
    pub fn start(dir: &Path, base_url: &str, env: &[(&str, &str)]) -> Serve {
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, format!("{TOKEN}:{}:admin\n", tenant())).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pendo-sync"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-schedule",
                "--workers",
                "1",
            ])
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--tokens")
            .arg(&tokens)
            .args(["--pendo-base-url", base_url])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for pipe in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err) as Box<dyn std::io::Read + Send>,
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let mut serve = Serve {
            child,
            base: String::new(),
            lines,
            seen: Vec::new(),
        };
        let listening = serve.wait_for(|l| l.starts_with("listening on http://"));
        serve.base = listening
            .trim_start_matches("listening on ")
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        serve
    }

    /// The first line (already seen or still to come, within 60 s) that `pred` accepts.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no such line within 60 s; printed: {:#?}", self.seen),
            }
        }
    }

    /// SIGKILL: no cleanup of any kind.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn post(&self, path: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Waits (at most a minute) for import `id` to read finished; returns it.
    pub async fn finished_import(&self, id: &str) -> serde_json::Value {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let import = self.get(&format!("/v1/imports/{id}")).await;
            if import["state"] == "finished" {
                return import;
            }
            assert!(
                Instant::now() < until,
                "import {id} did not finish: {import:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Any request, with its status and JSON answer (`null` when it has none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut rq = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Waits (at most a minute) for run `id` to read finished; returns its view.
    pub async fn finished(&self, id: &str) -> serde_json::Value {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.get(&format!("/v1/runs/{id}")).await;
            if run["state"] == "finished" {
                return run;
            }
            assert!(Instant::now() < until, "run {id} did not finish: {run:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A test that fails leaves no process behind.
impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}
