#!/usr/bin/env bash
# Set everything up (deploy/local/setup.sh), then run every check the machine can run:
# architecture contracts, lint, types, and the unit, integration and GPU test tiers
# (GPU tests skip with a reason where vLLM or a GPU is absent).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh

export PATH="$PWD/.venv/bin:$PATH"
echo "== import contracts" && lint-imports
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy pipeline sandbox cluster services
echo "== pytest"
set +e
pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure for us, not a pass.
if [ "$status" -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$status"
