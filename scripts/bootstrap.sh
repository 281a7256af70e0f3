#!/usr/bin/env bash
# Create .venv with the runtime and development dependencies, and .venv-checkov with checkov
# (kept apart: its pins clash with the Google client libraries). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if [ "${WITH_CHECKOV:-0}" = 1 ]; then
  if [ ! -x .venv-checkov/bin/checkov ]; then "$PYTHON" -m venv .venv-checkov; fi
  .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check "checkov>=3.2,<4"
fi
