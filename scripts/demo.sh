#!/usr/bin/env bash
# The main job: bring up a local lab of 3 libvirtd hosts with real guests, run the balancer on it in
# auto mode, show it balancing the uneven cluster and draining a host. Ctrl-C stops it and takes the
# lab down. Extra arguments go to `balancer demo` (e.g. --exit, --keep-lab).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/balancer demo "$@"
