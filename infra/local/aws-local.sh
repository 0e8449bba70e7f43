#!/usr/bin/env bash
# Local DynamoDB + SQS for tests and development: moto in server mode on 127.0.0.1.
#
#   infra/local/aws-local.sh start   # venv (.venv) + moto_server in the background, waits until it answers
#   infra/local/aws-local.sh stop    # stops the server started by `start` (pid file under target/)
#   infra/local/aws-local.sh status
#
# Port: $AWS_LOCAL_PORT (default 4566). Point the SDK at it with
#   AWS_ENDPOINT_URL=http://127.0.0.1:$AWS_LOCAL_PORT
# Tables and queues are created by the code that uses them (`store::dynamo::ensure_tables`,
# the tests' own setup), each with a unique name prefix, so one server serves every test.
# Never contacts AWS: dummy credentials, a region, no instance metadata, loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${AWS_LOCAL_PORT:-4566}"
VENV="${ROOT}/.venv"
STATE="${ROOT}/target/aws-local"
PIDFILE="${STATE}/moto-${PORT}.pid"
LOG="${STATE}/moto-${PORT}.log"
MOTO_VERSION="5.2.5"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

answers() {
  curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${PORT}/moto-api/" 2>/dev/null
}

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

ensure_venv() {
  if [[ -x "${VENV}/bin/moto_server" ]] &&
    "${VENV}/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '${MOTO_VERSION}')" 2>/dev/null; then
    return
  fi
  echo "aws-local: installing moto[server]==${MOTO_VERSION} into ${VENV} (about 30 s, once)"
  [[ -x "${VENV}/bin/python" ]] || python3 -m venv "$VENV"
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
}

start() {
  mkdir -p "$STATE"
  if pid="$(running_pid)"; then
    echo "aws-local: already running on 127.0.0.1:${PORT} (pid ${pid})"
    return
  fi
  if answers; then
    echo "aws-local: port ${PORT} already answers, but not for a server this script started" >&2
    echo "aws-local: stop it or choose another AWS_LOCAL_PORT" >&2
    exit 1
  fi
  ensure_venv
  # moto_server with transactions that back up their own items only (moto_server.py says why).
  nohup "${VENV}/bin/python" "${ROOT}/infra/local/moto_server.py" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if answers; then
      echo "aws-local: moto on http://127.0.0.1:${PORT} (pid $(cat "$PIDFILE"), log ${LOG})"
      return
    fi
    if ! running_pid >/dev/null; then
      echo "aws-local: moto exited during start-up; its log:" >&2
      cat "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.1
  done
  echo "aws-local: moto did not answer on port ${PORT} within 10 s; log: ${LOG}" >&2
  stop
  exit 1
}

stop() {
  if pid="$(running_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    echo "aws-local: stopped (pid ${pid})"
  else
    echo "aws-local: not running"
  fi
  rm -f "$PIDFILE"
}

status() {
  if pid="$(running_pid)" && answers; then
    echo "aws-local: running on http://127.0.0.1:${PORT} (pid ${pid})"
  else
    echo "aws-local: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
