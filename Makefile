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

.PHONY: demo test test-browser web lint fmt build clean aws-local-up aws-local-down

## The main job: a demo sync against the built-in Pendo simulator on the embedded store. It ends
## with the configurator page's address; `make demo SERVE=1` then serves the page (and the API)
## with a sign-in link until interrupted (LISTEN=host:port to move it).
LISTEN ?= 127.0.0.1:8080
demo:
	cargo run --release -p local --bin pendo-sync -- demo --data $(DATA)/demo $(if $(SERVE),--serve --listen $(LISTEN))

## Everything CI checks: formatting, lints, then every test of the workspace, with a local
## DynamoDB/SQS server (moto, installed into .venv) started first and always stopped after.
## Then the configurator page in headless Chromium (test-browser).
test: lint
	bash infra/local/aws-local.sh start
	AWS_ENDPOINT_URL=http://127.0.0.1:$(AWS_LOCAL_PORT) cargo test --workspace --all-targets; \
	  rc=$$?; bash infra/local/aws-local.sh stop; exit $$rc
	$(MAKE) test-browser

## The configurator page in a real browser: Debian's chromium (installed when missing; needs
## root, as here and in CI), playwright-core from tests/browser/package-lock.json, the debug
## binaries of the simulator and `pendo-sync serve` (the dev profile `cargo test` also uses).
## Screenshots land in tests/browser/out; SCREENSHOTS=1 refreshes the committed ones README shows.
CHROMIUM_BIN ?= /usr/bin/chromium
export CHROMIUM_BIN
test-browser:
	@test -x $(CHROMIUM_BIN) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	cargo build -p local -p pendo-sim --bins
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && \
	  $(if $(SCREENSHOTS),UPDATE_SCREENSHOTS=1) npm test

## Rebuild the page's committed assets (shared/assets/web) from web/src; needs Node and npm.
web:
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build

## The local DynamoDB/SQS server alone (for `cargo test` by hand or `make dev`).
aws-local-up:
	bash infra/local/aws-local.sh start

aws-local-down:
	bash infra/local/aws-local.sh stop

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --release

clean:
	cargo clean
	rm -rf $(DATA) .venv web/node_modules tests/browser/node_modules
