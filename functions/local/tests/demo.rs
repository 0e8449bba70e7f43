//! The README's first command runs `pendo-sync demo`: it must finish on a fresh data folder and
//! print its summary (the demo leaves companies out of the directory on purpose, and its seeded
//! end users must then leave theirs out too: an end user's company must be in the directory).

use std::process::Command;

#[test]
fn the_demo_runs_to_its_summary_on_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pendo-sync"))
        .args(["demo", "--days", "7", "--data"])
        .arg(dir.path().join("demo"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("values and activity records stored in"),
        "{stdout}"
    );
    assert!(stdout.contains("Daily usage - Events"), "{stdout}");
}
