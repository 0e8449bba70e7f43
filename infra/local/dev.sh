#!/usr/bin/env bash
# `make dev`: the AWS shape of Pendo Sync on one machine, never touching AWS.
#
#   - the Pendo simulator (tests/pendo-sim) on 127.0.0.1:$SIM_PORT (key `scenario-key`, the key
#     the event fixtures use);
#   - moto (DynamoDB + SQS) on 127.0.0.1:$AWS_LOCAL_PORT, with the tables and the fetch/resync
#     queues (+ DLQs, redrive after 5 receives) created by `sqs-poller setup`;
#   - `cargo lambda watch` on 127.0.0.1:$WATCH_PORT serving scheduler, fetch, resync and
#     configurator (rebuilt on change), with the env file written by setup;
#   - `sqs-poller run`, delivering queue messages to fetch and resync like Lambda's event source
#     mapping (batches of 10, partial batch failures left on the queue for redelivery).
#
# Ctrl-C (or any of them exiting) stops everything this script started. See infra/README.md,
# "Developing the AWS functions locally", for invoking the scheduler and calling the API.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export AWS_LOCAL_PORT="${AWS_LOCAL_PORT:-4566}"
SIM_PORT="${SIM_PORT:-8787}"
WATCH_PORT="${WATCH_PORT:-9000}"
TARGET="${CARGO_TARGET_DIR:-${ROOT}/target}"
DEV="${ROOT}/target/dev"
ENV_FILE="${DEV}/lambda.env"
CARGO_LAMBDA_VERSION="1.9.2"
VENV="${ROOT}/.venv"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL="http://127.0.0.1:${AWS_LOCAL_PORT}"
mkdir -p "$DEV"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  bash infra/local/aws-local.sh stop || true
}
trap cleanup EXIT INT TERM

bash infra/local/aws-local.sh start
if ! "${VENV}/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "^cargo-lambda ${CARGO_LAMBDA_VERSION} "; then
  echo "dev: installing cargo-lambda ${CARGO_LAMBDA_VERSION} into ${VENV}"
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==${CARGO_LAMBDA_VERSION}"
fi

cargo build -p pendo-sim -p sqs-poller --bin pendo-sim --bin sqs-poller
"${TARGET}/debug/pendo-sim" --preset small --key scenario-key --listen "127.0.0.1:${SIM_PORT}" \
  >"${DEV}/pendo-sim.log" 2>&1 &
pids+=($!)

"${TARGET}/debug/sqs-poller" setup --prefix dev --env-file "$ENV_FILE" \
  --env "PENDO_BASE_URL=http://127.0.0.1:${SIM_PORT}" \
  --env "AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL}" \
  --env AWS_ACCESS_KEY_ID=test --env AWS_SECRET_ACCESS_KEY=test --env AWS_REGION=us-east-1 \
  --env AWS_EC2_METADATA_DISABLED=true --env RUST_LOG=info
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a

PATH="${VENV}/bin:${PATH}" cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --env-file "$ENV_FILE" &
pids+=($!)
"${TARGET}/debug/sqs-poller" run --invoke-url "http://127.0.0.1:${WATCH_PORT}" &
pids+=($!)

cat <<EOF
dev: simulator http://127.0.0.1:${SIM_PORT} (log ${DEV}/pendo-sim.log), moto ${AWS_ENDPOINT_URL},
dev: functions http://127.0.0.1:${WATCH_PORT} (cargo lambda watch), env ${ENV_FILE}
dev: e.g.  cargo lambda invoke configurator -A 127.0.0.1 -P ${WATCH_PORT} --data-file tests/fixtures/apigw-v2-jwt-admin-connect.json
dev: Ctrl-C stops everything.
EOF
# Stop everything as soon as one of them exits.
wait -n "${pids[@]}"
