#!/usr/bin/env bash
# The test command: installs what it needs, then lint, type check, and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_CHECKOV=1 scripts/bootstrap.sh
export CHECKOV="$PWD/.venv-checkov/bin/checkov"
.venv/bin/ruff check .
.venv/bin/mypy looker_audit_export main.py emulators benchmarks scripts tests
.venv/bin/python -m pytest "$@"
