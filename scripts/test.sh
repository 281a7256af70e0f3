#!/usr/bin/env bash
# The test command: installs what it needs, then lint, type check, and the whole pytest suite.
# The tests spend most of their time waiting (retries, run budgets, Cloud Storage's one write a second per
# object), so pytest-xdist runs them on twice as many workers as there are cores (at most 8), and mypy runs
# beside them. PYTEST_WORKERS sets the number of workers (0: one process); arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_CHECKOV=1 scripts/bootstrap.sh
export CHECKOV="$PWD/.venv-checkov/bin/checkov"
.venv/bin/ruff check .
mypy_log=$(mktemp)
trap 'rm -f "$mypy_log"' EXIT
.venv/bin/mypy looker_audit_export main.py emulators benchmarks scripts tests >"$mypy_log" 2>&1 &
mypy_pid=$!
workers=${PYTEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(8, 2 * (os.cpu_count() or 1)))')}
status=0
.venv/bin/python -m pytest -n "$workers" --dist worksteal "$@" || status=$?
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat "$mypy_log"
[ "$mypy_status" = 0 ] || exit "$mypy_status"
exit "$status"
