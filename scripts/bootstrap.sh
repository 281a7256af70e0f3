#!/usr/bin/env bash
# Create .venv with exactly the locked runtime and development set (requirements-dev.txt, which holds
# requirements.txt, the deployed set, at the same versions), and with WITH_CHECKOV=1 .venv-checkov with
# exactly the locked checkov set (requirements-checkov.txt; kept apart: its pins clash with the Google
# client libraries). Safe to run again: each virtualenv ends up holding its lock file and nothing else
# (pip-sync removes what the lock no longer lists), and `pip check` proves the set is consistent.
# tests/test_dependencies.py checks the result once more from inside the test run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
QUIET=(--quiet --disable-pip-version-check)
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
# --no-deps: the lock is complete, so nothing is resolved here and nothing unlisted comes in.
.venv/bin/python -m pip install "${QUIET[@]}" --no-deps -r requirements-dev.txt
.venv/bin/pip-sync --quiet requirements-dev.txt
.venv/bin/python -m pip check
if [ "${WITH_CHECKOV:-0}" = 1 ]; then
  if [ ! -x .venv-checkov/bin/python ]; then "$PYTHON" -m venv .venv-checkov; fi
  .venv-checkov/bin/python -m pip install "${QUIET[@]}" --no-deps -r requirements-checkov.txt
  .venv/bin/pip-sync --quiet --python-executable .venv-checkov/bin/python requirements-checkov.txt
  .venv-checkov/bin/python -m pip check
fi
