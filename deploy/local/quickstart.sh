#!/usr/bin/env bash
# Set everything up (deploy/local/setup.sh), then build the bundled example dataset with
# the replay sampler, the real Docker sandbox, PageRank ranking and Focused-DPO pairs.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
.venv/bin/pairforge build examples/quickstart/job.yaml --resume "$@"
echo "dataset: $PWD/runs/quickstart (pairs/*.parquet, problems/*.parquet, manifest.json)"
