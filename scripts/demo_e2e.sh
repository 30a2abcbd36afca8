#!/usr/bin/env bash
# End-to-end test of `dpgan demo` in headless Chromium.
# Installs what is missing (Debian's chromium via apt-get, the playwright Python package into the
# venv; never `playwright install`, which would download its own browser), then runs `pytest -m e2e`.
# Usage: scripts/demo_e2e.sh [extra pytest args]      (VENV=path to use another virtualenv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    echo "demo_e2e: installing chromium with apt-get (about 1 minute, ~150 MB)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    echo "demo_e2e: installing playwright==$PLAYWRIGHT_VERSION into $VENV"
    "$PY" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$PY" -m pytest -m e2e tests/demo "$@"
