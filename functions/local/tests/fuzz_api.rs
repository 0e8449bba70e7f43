//! The HTTP API fuzzed from its own OpenAPI document: schemathesis (from `.venv-fuzz`, made by
//! `make fuzz-venv`) against the real `pendo-sync serve` process, with the Pendo simulator as
//! Pendo. First schema-violating requests only (each must be refused, and the stored state —
//! configuration and every exported value — must not change), then valid ones; never a 5xx,
//! and the process is still serving at the end. Bounded in examples, so it takes seconds.
//!
//! Without schemathesis installed this test FAILS, saying how to install it: a green run never
//! means "skipped".

mod common;

use chrono::Utc;
use common::*;
use pendo_sim::{SimConfig, SimKey, Simulator};
use pendo_sync::store::embedded::EmbeddedStore;
use pendo_sync::store::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TOKEN: &str = "fuzz-admin-token-0123456789abcdef";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("PENDO_SYNC_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-fuzz/bin/st"));
    assert!(
        path.exists(),
        "schemathesis not found at {}: run `make fuzz-venv` (make test does), or set \
         PENDO_SYNC_SCHEMATHESIS to an `st` executable",
        path.display()
    );
    path
}

/// Everything stored for the tenant: configuration, directory, runs and every exported value.
async fn snapshot(dir: &Path) -> Vec<String> {
    let s = EmbeddedStore::open_dir(dir).unwrap();
    let t = tenant();
    let mut out = vec![
        format!("{:?}", s.get_integration(&t).await.unwrap()),
        format!("{:?}", s.list_mappings(&t).await.unwrap()),
        format!("{:?}", s.list_end_users(&t).await.unwrap()),
        format!("{:?}", s.list_runs(&t, 1000).await.unwrap().len()),
    ];
    for kind in [
        pendo_sync::domain::Target::Company,
        pendo_sync::domain::Target::Asset,
        pendo_sync::domain::Target::Project,
    ] {
        out.push(format!("{:?}", s.list_objects(&t, kind).await.unwrap()));
    }
    out.extend(
        s.export(None)
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{r:?}")),
    );
    out
}

/// One schemathesis run; returns its summary lines.
fn fuzz(
    st: &Path,
    base: &str,
    mode: &str,
    examples: u32,
    extra: &[&str],
    workdir: &Path,
) -> String {
    let out = Command::new(st)
        .current_dir(workdir)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("NO_COLOR", "1")
        .args([
            "run",
            &format!("{base}/v1/openapi.json"),
            "--base-url",
            base,
        ])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--data-generation-method", mode])
        .args(["--experimental", "openapi-3.1"])
        .args(["--checks", "not_a_server_error"])
        .args(["--hypothesis-max-examples", &examples.to_string()])
        .args(["--hypothesis-seed", "20261129"])
        .args(["--hypothesis-database", "none"])
        .args(["--hypothesis-suppress-health-check", "all"])
        .args(["--request-timeout", "20000"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis ({mode}) found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| {
            l.contains("passed")
                || l.contains("Performed checks")
                || l.contains("not_a_server_error")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn health(base: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_the_api_from_its_openapi_document_finds_no_server_error_and_stores_nothing_refused(
) {
    let st = schemathesis();
    let mut config = SimConfig::small();
    config.now = Utc::now();
    config.keys = vec![SimKey {
        key: KEY.into(),
        write_access: true,
    }];
    let sim = Simulator::new(config);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let url = running.base_url();
    let dir = tempfile::tempdir().unwrap();
    configure(dir.path(), &sim, &url).await;
    assert!(finish(sync(dir.path(), &url)).await);
    let work = tempfile::tempdir().unwrap();
    let tokens = work.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}:{}:admin\n", tenant().as_str())).unwrap();

    let mut serve = Command::new(env!("CARGO_BIN_EXE_pendo-sync"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--no-schedule",
            "--data",
        ])
        .arg(dir.path())
        .arg("--tokens")
        .arg(&tokens)
        .args(["--pendo-base-url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        // "listening on http://ADDR (…)": the address is the first word.
        if let Some(addr) = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            break addr.to_string();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let before = snapshot(dir.path()).await;
    assert!(before.len() > 100, "the tenant has synced values");
    // Path parameters are plain strings: no schema-violating value exists for them, so the
    // negative pass covers the operations without one (every request body is among them).
    let t = std::time::Instant::now();
    let negative = fuzz(
        &st,
        &base,
        "negative",
        20,
        &["--exclude-path-regex", r"\{"],
        work.path(),
    );
    eprintln!("negative pass: {:.1} s", t.elapsed().as_secs_f64());
    eprintln!("schemathesis, schema-violating requests:\n{negative}");
    // The background worker may still be finishing nothing: there is nothing queued, so the
    // state is compared at once.
    assert_eq!(
        snapshot(dir.path()).await,
        before,
        "a refused request changed the stored state"
    );
    let t = std::time::Instant::now();
    let positive = fuzz(&st, &base, "positive", 10, &[], work.path());
    eprintln!("positive pass: {:.1} s", t.elapsed().as_secs_f64());
    eprintln!("schemathesis, valid requests:\n{positive}");

    assert!(serve.try_wait().unwrap().is_none(), "serve exited");
    assert_eq!(health(&base), "HTTP/1.1 200 OK");
    serve.kill().ok();
    serve.wait().ok();
}
