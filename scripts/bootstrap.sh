#!/usr/bin/env bash
# Install everything balancer needs on Debian 12 (root): Debian packages, a virtualenv in .venv, pip packages.
# Idempotent and quiet when nothing is missing; sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  # libvirt and QEMU: the lab's hosts are real libvirtd daemons with real guests
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
  # building libvirt-python against the system libvirt
  libvirt-dev pkg-config gcc python3-dev python3-venv
  # the lab: namespaces, veth/bridge, the tiny guest's initramfs
  iproute2 util-linux busybox-static cpio
  # tests: real Prometheus/promtool, a real PostgreSQL server, and libfaketime for wall-clock steps
  prometheus postgresql faketime
  # tests: systemd-analyze checks the unit offline (it needs no running systemd)
  systemd
  # tests: tmux gives the CLI a real terminal of a set width for the golden-output tests
  tmux
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: need root to install Debian packages: ${missing[*]}" >&2; exit 2
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # policy-rc.d keeps Debian from starting the packaged daemons (libvirtd, prometheus, postgresql):
  # the lab and the tests start their own instances.
  own_rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_rc=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ $own_rc = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.balancer-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv" >&2
  .venv/bin/pip install -q -U pip >/dev/null
  # constraints.txt pins every package to the versions the tests last passed with (reproducible).
  # The editable install maps the whole balancer/ of this checkout, the lab (balancer/lab/) included,
  # so the demo and the lab tests have it without the `lab` extra: that extra (the balancer-lab
  # distribution, lab/pyproject.toml) is for wheel installs. Installing balancer-lab editable here as
  # well would put a second `balancer` directory on the path and hide this one.
  .venv/bin/pip install -q -e '.[test]' -c constraints.txt
  touch "$stamp"
fi
