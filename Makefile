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

.PHONY: demo test lint lint-infra dev fmt build clean aws-local-up aws-local-down

## The main job: a demo sync against the built-in Pendo simulator on the embedded store.
demo:
	cargo run --release -p local --bin pendo-sync -- demo --data $(DATA)/demo

## Everything CI checks: formatting, lints, the SAM stack's lints, then every test of the
## workspace, with a local DynamoDB/SQS server (moto, installed into .venv) started first and
## always stopped after.
## The linters' pip installs run alongside clippy (downloads vs CPU); a failed lint stops them.
test:
	@mkdir -p target
	@bash infra/lint.sh install >target/lint-infra-install.log 2>&1 & installing=$$!; \
	  $(MAKE) --no-print-directory lint; rc=$$?; \
	  if [ $$rc -ne 0 ]; then kill $$installing 2>/dev/null; exit $$rc; fi; \
	  wait $$installing; irc=$$?; cat target/lint-infra-install.log; exit $$irc
	bash infra/lint.sh check
	bash infra/local/aws-local.sh start
	AWS_ENDPOINT_URL=http://127.0.0.1:$(AWS_LOCAL_PORT) cargo test --workspace --all-targets; \
	  rc=$$?; bash infra/local/aws-local.sh stop; exit $$rc

## The local DynamoDB/SQS server alone (for `cargo test` by hand or `make dev`).
aws-local-up:
	bash infra/local/aws-local.sh start

aws-local-down:
	bash infra/local/aws-local.sh stop

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## The SAM stack (infra/template.yaml): cfn-lint + SAM translator and our template checks
## (.venv), checkov (.venv-checkov). Pinned versions, installed on first use.
lint-infra:
	bash infra/lint.sh

## Local AWS development (not part of `test`): the Pendo simulator, moto, `cargo lambda watch`
## serving the four functions, and the SQS poller feeding fetch/resync. Ctrl-C stops it all.
dev:
	bash infra/local/dev.sh

fmt:
	cargo fmt --all

build:
	cargo build --workspace --release

clean:
	cargo clean
	rm -rf $(DATA) .venv .venv-checkov
