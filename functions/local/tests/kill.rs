//! The real `pendo-sync sync` process SIGKILLed while a chunk is in flight, then started again:
//! the embedded store converges to the state of a run that was never interrupted.

use chrono::Utc;
use pendo_sim::{FaultKind, FaultRule, SimConfig, SimKey, Simulator};
use pendo_sync::app::{Role, SettingsUpdate};
use pendo_sync::clock::SystemClock;
use pendo_sync::domain::mapping::MappingInput;
use pendo_sync::domain::*;
use pendo_sync::pendo::http::{HttpPendo, HttpPendoConfig};
use pendo_sync::pendo::PendoEndpoints;
use pendo_sync::queue::in_process::InProcessQueue;
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::Store;
use pendo_sync::{App, Ports};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "kill-test-key";
const AGG: &str = "/api/v1/aggregation";

fn tenant() -> TenantId {
    TenantId::parse("acme-cs").unwrap()
}

/// A tenant with three multi-app feature mappings over 21 days, written into `dir` the way the
/// API would (then the store is closed again).
async fn configure(dir: &Path, sim: &Simulator, base_url: &str) {
    let pendo = HttpPendo::new(HttpPendoConfig {
        endpoints: PendoEndpoints {
            all: Some(base_url.to_string()),
            ..Default::default()
        },
        ..HttpPendoConfig::default()
    })
    .unwrap();
    let store = Arc::new(EmbeddedStore::open_dir(dir).unwrap());
    let app = App::new(Ports {
        store: store.clone(),
        queue: Arc::new(InProcessQueue::new(1, Duration::ZERO)),
        pendo: Arc::new(pendo),
        clock: Arc::new(SystemClock),
    });
    let t = tenant();
    app.connect(&t, KEY, "app.pendo.io").await.unwrap();
    app.update_settings(
        &t,
        &SettingsUpdate {
            days_to_sync: Some(21),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        },
        Role::Admin,
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

fn sync(dir: &Path, base_url: &str) -> Child {
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
async fn finish(mut child: Child) -> bool {
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

async fn export(dir: &Path) -> Vec<ExportRow> {
    EmbeddedStore::open_dir(dir)
        .unwrap()
        .export(Some(&tenant()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_chunk_converges_after_a_restart() {
    let mut config = SimConfig::small();
    config.now = Utc::now();
    config.keys = vec![SimKey {
        key: KEY.into(),
        write_access: true,
    }];
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let url = running.base_url();

    let clean = tempfile::tempdir().unwrap();
    configure(clean.path(), &sim, &url).await;
    assert!(finish(sync(clean.path(), &url)).await);
    let want = export(clean.path()).await;
    assert!(!want.is_empty());

    let dir = tempfile::tempdir().unwrap();
    configure(dir.path(), &sim, &url).await;
    let c = sim.control();
    // Every 4th aggregation call hangs: the process is killed while one is in flight, after
    // some chunks were written.
    c.add_fault(FaultRule {
        every: Some(4),
        times: None,
        delay_ms: Some(30_000),
        ..FaultRule::times(AGG, FaultKind::Delay, 0)
    })
    .unwrap();
    let before = c.calls(AGG);
    let mut child = sync(dir.path(), &url);
    let until = Instant::now() + Duration::from_secs(30);
    while c.calls(AGG) < before + 4 {
        assert!(Instant::now() < until, "the slow call never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap(); // SIGKILL: no cleanup of any kind
    child.wait().unwrap();

    let partial = export(dir.path()).await;
    assert!(partial.len() < want.len(), "the kill came too late");
    let runs = EmbeddedStore::open_dir(dir.path())
        .unwrap()
        .list_runs(&tenant(), 1)
        .await
        .unwrap();
    let pending = runs[0]
        .chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Pending)
        .count();
    assert!(pending > 0, "a chunk was in flight");
    eprintln!(
        "killed with {} of {} rows written and {pending} chunks pending; faults injected 1",
        partial.len(),
        want.len()
    );

    c.clear_faults();
    assert!(finish(sync(dir.path(), &url)).await);
    assert_eq!(export(dir.path()).await, want);
}
