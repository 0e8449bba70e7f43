//! The `scheduler` binary started as Lambda starts it, without the deployment's variables: its init
//! fails, naming the first missing one (what CloudWatch shows), instead of panicking. Also what
//! makes `cargo test --workspace` build the binary the real-binary scenario runs
//! (`tests/e2e/tests/it/binaries.rs`).

#[test]
fn init_without_its_tables_fails_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONFIG_TABLE"), "{err}");
}
