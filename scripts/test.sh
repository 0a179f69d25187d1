#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then lint, types, layering,
# alert-rule tests, pytest (fast tests, then the lab and the real-server tests) and benchmark smokes.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
# On the test machine the lab must run: a missing tool or privilege is a failure, not a skip.
export BALANCER_LAB_REQUIRED=1

step() { printf '\n=== %s\n' "$*"; }

step "ruff";          ruff check balancer tests bench
step "mypy";          mypy
step "import-linter"; lint-imports
if [ -f deploy/prometheus/alerts.yml ]; then
  step "promtool";    promtool check rules deploy/prometheus/alerts.yml
                      promtool test rules deploy/prometheus/alerts_test.yml
fi
if command -v systemd-analyze >/dev/null; then
  step "systemd unit"  # offline: no running systemd needed; the installed path swapped for this checkout's
  unit=$(mktemp -d)/balancer.service
  sed "s#/opt/balancer/venv/bin/balancer#$PWD/.venv/bin/balancer#" deploy/systemd/balancer.service >"$unit"
  systemd-analyze verify "$unit"
  systemd-analyze security --offline=true --threshold=30 "$unit" | tail -1
fi
step "pytest"
python -m pytest -p no:cacheprovider --hypothesis-profile=ci --durations=25 "$@"
step "benchmark smoke"
for b in bench/*.py; do
  case "$b" in */_*|*/exact.py|*/report.py) continue;; esac
  echo "--- $b --quick"; python "$b" --quick
done
