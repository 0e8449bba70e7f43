//! `pendo-sync serve` and its daily schedule, through the binary: the time it announces,
//! `--no-schedule`, and the refusal of a bad `--daily-at`. (The loop itself, on a fixed and
//! advancing clock, is tested in `src/serve.rs`.)

use chrono::Utc;
use pendo_sync::schedule::DailyAt;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const TOKEN: &str = "schedule-test-token-0123456789";

/// Starts `serve` with `args`, returns the lines it printed up to "serving until interrupted".
fn started(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}:acme:admin\n")).unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_pendo-sync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--tokens")
        .arg(&tokens)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    for line in BufReader::new(serve.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("serving until interrupted");
        out.push(line);
        if done {
            break;
        }
    }
    serve.kill().ok();
    serve.wait().ok();
    out
}

fn announced(at: &str, next: chrono::DateTime<Utc>) -> String {
    format!(
        "daily sync at {at} UTC (next {}; change with --daily-at HH:MM, turn off with --no-schedule)",
        next.format("%Y-%m-%d %H:%M UTC")
    )
}

#[test]
fn serve_announces_its_daily_sync_and_can_run_without_one() {
    for (args, at) in [(&["--daily-at", "03:30"][..], "03:30"), (&[][..], "02:00")] {
        let before = DailyAt::parse(at).unwrap().next_after(Utc::now());
        let lines = started(args);
        let after = DailyAt::parse(at).unwrap().next_after(Utc::now());
        let line = lines
            .iter()
            .find(|l| l.starts_with("daily sync"))
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!(
            *line == announced(at, before) || *line == announced(at, after),
            "{line}"
        );
    }
    let lines = started(&["--no-schedule"]);
    let schedule: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("daily sync"))
        .collect();
    assert_eq!(schedule, vec!["daily sync off"], "{lines:?}");
}

#[test]
fn a_bad_daily_at_is_refused_before_serving() {
    for (args, says) in [
        (
            &["--daily-at", "24:00"][..],
            "must be a time of day as HH:MM (00:00 to 23:59), in UTC",
        ),
        (&["--daily-at", "2am"][..], "must be a time of day as HH:MM"),
        (
            &["--daily-at", "03:30", "--no-schedule"][..],
            "cannot be used with '--no-schedule'",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pendo-sync"))
            .args(["serve", "--data", "/nonexistent/never-created"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
