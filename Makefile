# Pendo Sync — every entry point a developer or CI needs.
# Tests and scripts never reach AWS: dummy credentials, a region, no instance metadata.
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED = true
export CARGO_TERM_COLOR ?= never

DATA ?= ./data
AWS_LOCAL_PORT ?= 4566
export AWS_LOCAL_PORT

.PHONY: demo test lint fmt build clean aws-local-up aws-local-down bench

## The main job: a demo sync against the built-in Pendo simulator on the embedded store.
demo:
	cargo run --release -p local --bin pendo-sync -- demo --data $(DATA)/demo

## Everything CI checks: formatting, lints, then every test of the workspace, with a local
## DynamoDB/SQS server (moto, installed into .venv) started first and always stopped after.
test: lint
	bash infra/local/aws-local.sh start
	AWS_ENDPOINT_URL=http://127.0.0.1:$(AWS_LOCAL_PORT) cargo test --workspace --all-targets; \
	  rc=$$?; bash infra/local/aws-local.sh stop; exit $$rc

## The local DynamoDB/SQS server alone (for `cargo test` by hand or `make dev`).
aws-local-up:
	bash infra/local/aws-local.sh start

aws-local-down:
	bash infra/local/aws-local.sh stop

## Performance figures (issue 8): release build, criterion benches, the simulator and moto in
## their own processes; prints a table and writes target/bench/results.json (about 10 min).
bench:
	python3 tests/bench/run.py

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --release

clean:
	cargo clean
	rm -rf $(DATA) .venv
