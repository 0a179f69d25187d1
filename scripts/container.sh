#!/usr/bin/env bash
# Build the Containerfile with buildah and smoke-test the image: `balancer --version`, `config check`,
# and `balancer run` on libvirt's test driver answering /readyz, /docs and /metrics from the host.
#
# Needs Debian's buildah (apt-get install buildah; root). The base image is Debian 12 (BASE, default
# docker.io/library/debian:bookworm-slim); where no registry is reachable, BASE=local builds one from
# Debian's own packages with debootstrap (apt-get install debootstrap). A TLS-intercepting proxy's CA
# bundle, if the host trusts one, is passed to pip in the build (PIP_CERT). Not part of .ci/run: it
# downloads a Debian base and the Python packages (~3 min).
#   ./scripts/container.sh            # build localhost/balancer:latest and smoke-test it
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/balancer:latest}
BASE=${BASE:-docker.io/library/debian:bookworm-slim}
PORT=${PORT:-18787}
work=$(mktemp -d)
container=""
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$BASE" = local ]; then
  BASE=localhost/debian-bookworm-minbase:latest
  if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
    echo "container: making $BASE with debootstrap" >&2
    debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >/dev/null
    rm -f "$work"/rootfs/var/cache/apt/archives/*.deb
    tar -C "$work/rootfs" -c . | podman import - "$BASE" >/dev/null
    rm -rf "$work/rootfs"
  fi
fi

build=(--isolation chroot --network host --build-arg "BASE=$BASE" -t "$IMAGE" -f Containerfile)
case "$BASE" in localhost/*) build+=(--pull-never) ;; esac
ca=$(python3 -c 'import ssl; print(ssl.get_default_verify_paths().openssl_cafile)')
if [ -f "$ca" ]; then  # the host's CA bundle, for pip behind a TLS-intercepting proxy
  build+=(--build-arg PIP_CERT=/etc/host-ca.crt -v "$ca:/etc/host-ca.crt:ro")
fi
echo "container: building $IMAGE on $BASE" >&2
buildah bud "${build[@]}" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }

container=$(buildah from --pull-never "$IMAGE")
run() { buildah run --isolation chroot --network host "$container" -- "$@"; }
config="hosts: [{name: t1, uri: 'test:///default'}]
collection: {interval_seconds: 1}
api: {listen: '127.0.0.1:$PORT'}"

echo "--- balancer --version: $(run /opt/balancer/venv/bin/balancer --version)"
run sh -c "printf '%s\n' \"$config\" >/tmp/config.yaml && /opt/balancer/venv/bin/balancer config check /tmp/config.yaml >/dev/null"
echo "--- config check: ok"

# The service under `timeout`, so it gets SIGTERM (and stops cleanly) whatever happens here.
run sh -c 'timeout -s TERM 30 /opt/balancer/venv/bin/balancer run -c /tmp/config.yaml --log-format json \
  >/tmp/service.log 2>&1' >/dev/null 2>&1 &
service=$!
for _ in $(seq 1 100); do
  curl -sf -m 2 "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf -m 5 "http://127.0.0.1:$PORT/readyz" >/dev/null || { run cat /tmp/service.log >&2; exit 1; }
echo "--- /readyz: ready"
curl -sf -m 5 "http://127.0.0.1:$PORT/docs" | grep -q swagger-ui
echo "--- /docs: served from the image"
curl -sf -m 5 "http://127.0.0.1:$PORT/metrics" | grep -q '^balancer_ticks_total{result="ok"}'
echo "--- /metrics: ticking"
wait "$service" || [ $? = 124 ]  # timeout's status once it stopped the service
run cat /tmp/service.log >"$work/service.log"
grep -q '"event": "stopped"' "$work/service.log" || { cat "$work/service.log" >&2; exit 1; }
if grep -v '^{' "$work/service.log" >&2; then echo "container: non-JSON log lines above" >&2; exit 1; fi
echo "--- stopped cleanly on SIGTERM; every log line JSON"
echo "container: $IMAGE ok"
