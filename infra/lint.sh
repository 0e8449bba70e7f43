#!/usr/bin/env bash
# Lints the SAM stack (`make lint-infra`): cfn-lint (with the SAM translator), our own template
# checks (infra/check_template.py: what cfn-lint misses), and checkov. Offline once installed.
#
# cfn-lint and aws-sam-translator go into the project venv (.venv, shared with moto, as
# infra/local/aws-local.sh creates it); checkov into its own (.venv-checkov), since it pins older
# versions of libraries moto needs. Versions are pinned; a venv is only touched when a pinned
# version is missing.
#
#   infra/lint.sh [all]   # install (both venvs at once) then check
#   infra/lint.sh install # only the installs (`make test` runs them alongside clippy)
#   infra/lint.sh check   # only the lints
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="${ROOT}/infra/template.yaml"
VENV="${ROOT}/.venv"
CHECKOV_VENV="${ROOT}/.venv-checkov"
CFN_LINT_VERSION="1.58.0"
SAM_TRANSLATOR_VERSION="1.115.0"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
PIP_INSTALL=(install --quiet --disable-pip-version-check)

# Never reach AWS: cfn-lint and checkov only read the file, but their SDK imports look for a region.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

has() { # venv, module, version
  "$1/bin/python" - "$2" "$3" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(version(sys.argv[1]) != sys.argv[2])
PY
}

install_cfn_lint() {
  [[ -x "${VENV}/bin/python" ]] || python3 -m venv "$VENV"
  if ! has "$VENV" cfn-lint "$CFN_LINT_VERSION" || ! has "$VENV" aws-sam-translator "$SAM_TRANSLATOR_VERSION"; then
    echo "lint-infra: installing cfn-lint ${CFN_LINT_VERSION} and aws-sam-translator into ${VENV}"
    "${VENV}/bin/pip" "${PIP_INSTALL[@]}" "cfn-lint==${CFN_LINT_VERSION}" "aws-sam-translator==${SAM_TRANSLATOR_VERSION}"
  fi
}

install_checkov() {
  [[ -x "${CHECKOV_VENV}/bin/python" ]] || python3 -m venv "$CHECKOV_VENV"
  if ! has "$CHECKOV_VENV" checkov "$CHECKOV_VERSION"; then
    echo "lint-infra: installing checkov ${CHECKOV_VERSION} into ${CHECKOV_VENV}"
    "${CHECKOV_VENV}/bin/pip" "${PIP_INSTALL[@]}" "checkov==${CHECKOV_VERSION}"
  fi
}

# Both installs at once (they are mostly downloads and unpacking).
install() {
  install_checkov &
  local checkov_pid=$!
  install_cfn_lint
  wait "$checkov_pid"
}

check() {
  echo "lint-infra: cfn-lint"
  "${VENV}/bin/cfn-lint" "$TEMPLATE"
  echo "lint-infra: template checks"
  "${VENV}/bin/python" "${ROOT}/infra/check_template.py" "$TEMPLATE"
  echo "lint-infra: checkov"
  "${CHECKOV_VENV}/bin/checkov" --quiet --compact --skip-download --framework cloudformation -f "$TEMPLATE"
}

case "${1:-all}" in
  install) install ;;
  check) check ;;
  all) install && check ;;
  *)
    echo "usage: $0 [install|check|all]" >&2
    exit 2
    ;;
esac
