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
# `make test` runs a second moto beside the first: moto answers under one Python lock, so one
# server keeps one core busy while the other core's tests wait on it (the AWS tests spread over
# both, tests/e2e/tests/it/aws_local.rs `next_endpoint`).
AWS_LOCAL_PORT_2 ?= $(shell echo $$(( $(AWS_LOCAL_PORT) + 100 )))

# schemathesis for the API fuzz test (functions/local/tests/fuzz_api.rs), in its own venv;
# hypothesis pinned: newer ones break this schemathesis ("'many' object has no attribute 'more'").
FUZZ_VENV ?= .venv-fuzz
SCHEMATHESIS_VERSION = 3.39.16
HYPOTHESIS_VERSION = 6.130.13

.PHONY: demo test test-browser chromium web lint lint-infra dev fmt build package lambda-venv clean aws-local-up aws-local-down fuzz-venv test-fuzz-api soak bench

## The main job: a demo sync against the built-in Pendo simulator on the embedded store. It ends
## with the configurator page's address; `make demo SERVE=1` then serves the page (and the API)
## with a sign-in link until interrupted (LISTEN=host:port to move it).
LISTEN ?= 127.0.0.1:8080
demo:
	cargo run --profile demo -p local --bin pendo-sync -- demo --data $(DATA)/demo $(if $(SERVE),--serve --listen $(LISTEN))

## Everything CI checks: formatting, lints, the SAM stack's lints, then every test of the
## workspace with a local DynamoDB/SQS server (moto, installed into .venv) started first and
## always stopped after, then the configurator page in headless Chromium (test-browser). The
## workspace tests include the API fuzz test (schemathesis from .venv-fuzz, against the
## `pendo-sync serve` binary that `cargo test` builds), so nothing is built twice. The installs
## (stack linters, schemathesis, chromium) run alongside clippy (downloads vs CPU); a failed
## lint stops them.
test:
	@mkdir -p target
	@(bash infra/lint.sh install && $(MAKE) --no-print-directory fuzz-venv chromium) >target/test-installs.log 2>&1 & installing=$$!; \
	  $(MAKE) --no-print-directory lint; rc=$$?; \
	  if [ $$rc -ne 0 ]; then kill $$installing 2>/dev/null; exit $$rc; fi; \
	  wait $$installing; irc=$$?; cat target/test-installs.log; exit $$irc
	bash infra/lint.sh check
	bash infra/local/aws-local.sh start
	AWS_LOCAL_PORT=$(AWS_LOCAL_PORT_2) bash infra/local/aws-local.sh start || \
	  { bash infra/local/aws-local.sh stop; exit 1; }
	AWS_ENDPOINT_URL=http://127.0.0.1:$(AWS_LOCAL_PORT) \
	  AWS_ENDPOINT_URLS=http://127.0.0.1:$(AWS_LOCAL_PORT),http://127.0.0.1:$(AWS_LOCAL_PORT_2) \
	  cargo test --workspace --all-targets; \
	  rc=$$?; bash infra/local/aws-local.sh stop; AWS_LOCAL_PORT=$(AWS_LOCAL_PORT_2) bash infra/local/aws-local.sh stop; exit $$rc
	$(MAKE) test-browser

## The configurator page in a real browser: Debian's chromium (installed when missing; needs
## root, as here and in CI), playwright-core from tests/browser/package-lock.json, the debug
## binaries of the simulator and `pendo-sync serve` exactly as `cargo test --workspace` builds
## them (same profile and features: after the workspace tests, `--no-run` builds nothing).
## Screenshots land in tests/browser/out; SCREENSHOTS=1 refreshes the committed ones README shows.
CHROMIUM_BIN ?= /usr/bin/chromium
export CHROMIUM_BIN
## Debian's chromium, and Node with npm when the machine has none (Debian's, 18+ suffices for
## playwright-core).
chromium:
	@pkgs=""; test -x $(CHROMIUM_BIN) || pkgs="chromium"; command -v npm >/dev/null || pkgs="$$pkgs nodejs npm"; \
	  if [ -n "$$pkgs" ]; then echo "installing$$pkgs"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; fi

test-browser: chromium
	cargo test --workspace --all-targets --no-run
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && \
	  $(if $(SCREENSHOTS),UPDATE_SCREENSHOTS=1) npm test

## Rebuild the page's committed assets (shared/assets/web) from shared/web/src; needs Node and npm.
web:
	cd shared/web && npm ci --no-audit --no-fund --loglevel=error && npm run build

## The virtualenv with schemathesis (once; about 30 s).
fuzz-venv:
	@if ! $(FUZZ_VENV)/bin/st --version 2>/dev/null | grep -q "$(SCHEMATHESIS_VERSION)" || \
	  ! $(FUZZ_VENV)/bin/python -c "import hypothesis, sys; sys.exit(hypothesis.__version__ != '$(HYPOTHESIS_VERSION)')" 2>/dev/null; then \
	  echo "fuzz-venv: installing schemathesis $(SCHEMATHESIS_VERSION) into $(FUZZ_VENV)"; \
	  python3 -m venv $(FUZZ_VENV) && \
	  $(FUZZ_VENV)/bin/pip install -q "schemathesis==$(SCHEMATHESIS_VERSION)" "hypothesis==$(HYPOTHESIS_VERSION)"; \
	fi

## The API fuzzed from its OpenAPI document alone (schema-violating requests, then valid ones).
test-fuzz-api: fuzz-venv
	cargo test -p local --test fuzz_api -- --nocapture

## A longer soak: the reliability scenarios and the kill-and-restart test, SOAK_ROUNDS times.
SOAK_ROUNDS ?= 20
soak:
	cargo test -p e2e --test it reliability --no-run
	cargo test -p local --test kill --no-run
	for i in $$(seq 1 $(SOAK_ROUNDS)); do \
	  echo "soak round $$i/$(SOAK_ROUNDS)"; \
	  cargo test -q -p e2e --test it reliability && cargo test -q -p local --test kill || exit 1; \
	done

## The local DynamoDB/SQS server alone (for `cargo test` by hand or `make dev`).
aws-local-up:
	bash infra/local/aws-local.sh start

aws-local-down:
	bash infra/local/aws-local.sh stop

## Performance figures (issue 8): release build, criterion benches, the simulator and moto in
## their own processes; prints a table (ending with each phase's time) and writes
## target/bench/results.json (budget: 15 min on 2 idle cores, release build included).
bench:
	python3 tests/bench/run.py

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

## Release binaries. The Lambda functions build apart, each with only its own features of
## `pendo_sync` (as `cargo lambda build` deploys them; in one workspace invocation cargo would
## unify features and link SQLite and the API into every function).
LAMBDA_FNS = scheduler fetch resync configurator
build:
	cargo build --workspace --release $(addprefix --exclude ,$(LAMBDA_FNS))
	cargo build --release -p scheduler -p fetch -p resync
	cargo build --release -p configurator

## The deployable bootstraps (not part of `make test`): `cargo lambda build --release`, as
## `sam build` runs it, for ARCH (the template's `Architecture`: arm64, its default, or x86_64),
## into target/lambda/<function>/bootstrap; the three queue functions in one build (the same
## features of `pendo_sync`), the configurator apart. cargo-lambda and zig are pinned in
## .venv-lambda. arm64 needs the Rust target aarch64-unknown-linux-gnu (`rustup target add`).
ARCH ?= arm64
LAMBDA_VENV ?= .venv-lambda
CARGO_LAMBDA_VERSION = 1.9.2
ZIGLANG_VERSION = 0.15.1
LAMBDA_ARCH_FLAG = $(if $(filter arm64,$(ARCH)),--arm64,$(if $(filter x86_64,$(ARCH)),--x86-64,$(error ARCH is arm64 or x86_64, not $(ARCH))))
lambda-venv:
	@if ! $(LAMBDA_VENV)/bin/cargo-lambda lambda --version 2>/dev/null | grep -q "$(CARGO_LAMBDA_VERSION)" || \
	  ! $(LAMBDA_VENV)/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('ziglang') != '$(ZIGLANG_VERSION)')" 2>/dev/null; then \
	  echo "lambda-venv: installing cargo-lambda $(CARGO_LAMBDA_VERSION) and ziglang $(ZIGLANG_VERSION) into $(LAMBDA_VENV)"; \
	  python3 -m venv $(LAMBDA_VENV) && \
	  $(LAMBDA_VENV)/bin/pip install -q "cargo-lambda==$(CARGO_LAMBDA_VERSION)" "ziglang==$(ZIGLANG_VERSION)"; \
	fi

package: lambda-venv
	@if [ "$(ARCH)" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$$'; then \
	  echo "package: ARCH=arm64 needs the Rust target aarch64-unknown-linux-gnu: rustup target add aarch64-unknown-linux-gnu (or make package ARCH=x86_64, and deploy with Architecture=x86_64)" >&2; exit 1; fi
	PATH="$(CURDIR)/$(LAMBDA_VENV)/bin:$$PATH" cargo lambda build --release $(LAMBDA_ARCH_FLAG) -p scheduler -p fetch -p resync
	PATH="$(CURDIR)/$(LAMBDA_VENV)/bin:$$PATH" cargo lambda build --release $(LAMBDA_ARCH_FLAG) -p configurator
	@ls -l target/lambda/*/bootstrap

clean:
	cargo clean
	rm -rf $(DATA) .venv .venv-checkov $(FUZZ_VENV) $(LAMBDA_VENV) shared/web/node_modules tests/browser/node_modules
