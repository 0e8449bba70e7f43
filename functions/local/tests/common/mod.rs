//! Shared by the process tests: a tenant configured in a data folder, the `pendo-sync`
//! binary, and its export.
#![allow(dead_code)]

use pendo_sim::Simulator;
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

pub const KEY: &str = "kill-test-key";

pub fn tenant() -> TenantId {
    TenantId::parse("acme-cs").unwrap()
}

/// A tenant with three multi-app feature mappings over 21 days, written into `dir` the way the
/// API would (then the store is closed again).
pub async fn configure(dir: &Path, sim: &Simulator, base_url: &str) {
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
