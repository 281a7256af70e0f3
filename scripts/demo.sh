#!/usr/bin/env bash
# The demo: installs what it needs, starts the emulators, serves the function with
# functions-framework, delivers one Pub/Sub CloudEvent as Eventarc does, and prints the result.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Installing the locked dependencies into .venv: about 2 minutes the first time, a few seconds after that ..."
install_log=$(mktemp)
if ! scripts/bootstrap.sh >"$install_log" 2>&1; then
  cat "$install_log" >&2
  echo "The install failed (its output is above)." >&2
  exit 1
fi
rm -f "$install_log"
exec .venv/bin/python scripts/demo.py "$@"
