# Pendo Sync — every entry point a developer or CI needs.
# Tests and scripts never reach AWS: dummy credentials, a region, no instance metadata.
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED = true
export CARGO_TERM_COLOR ?= never

DATA ?= ./data

.PHONY: demo test lint fmt build clean

## The main job: a demo sync against the built-in Pendo simulator on the embedded store.
demo:
	cargo run --release -p local --bin pendo-sync -- demo --data $(DATA)/demo

## Everything CI checks: formatting, lints, then every test of the workspace.
test: lint
	cargo test --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --release

clean:
	cargo clean
	rm -rf $(DATA)
