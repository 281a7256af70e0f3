#!/usr/bin/env bash
# The demo: installs what it needs, starts the emulators, serves the function with
# functions-framework, delivers one Pub/Sub CloudEvent as Eventarc does, and prints the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
