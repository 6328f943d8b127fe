#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine (Python 3.11, pip, gcc, git),
# then run them. As root it installs Chromium and Redis from Debian's packages.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k ledger
# Tests run in two pytest-xdist workers, a test file per worker at a time (most of a test's
# time is spent waiting on real processes); OVERNIGHT_TEST_WORKERS=0 runs them in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing ${missing[*]} from Debian's packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "warning: ${missing[*]} missing and not root: install them for the web and remote tests" >&2
    fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q -n "${OVERNIGHT_TEST_WORKERS:-2}" --dist loadfile "$@"
