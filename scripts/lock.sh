#!/usr/bin/env bash
# Recompile the lock files from their .in files with the options their headers record (Dependabot does
# the same in its pull requests). Arguments go to every pip-compile, e.g. `--upgrade-package looker-sdk`
# or `--upgrade`; without any, the existing pins are kept. Then run scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
for name in requirements requirements-dev requirements-checkov; do
  unsafe=()
  # pip itself is pinned in the tool locks; the deployed set never needs it.
  if [ "$name" != requirements ]; then unsafe=(--allow-unsafe); fi
  .venv/bin/pip-compile --quiet "${unsafe[@]}" --no-emit-find-links --no-emit-index-url --strip-extras "$@" "$name.in"
done
