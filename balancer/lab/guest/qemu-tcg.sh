#!/bin/bash
# The lab's QEMU for TCG guests: /usr/bin/qemu-system-x86_64 with 8 KiB more guest RAM.
#
# Why: QEMU before 9.0 loses guest writes in a live migration under TCG (fixed upstream by
# "physmem: Fix migration dirty bitmap coherency with TCG memory access"). When a RAM block's size
# is a multiple of 64 pages, the dirty-bitmap sync takes a fast path that clears the bitmap without
# re-arming the vCPU's TLB, so stores through TLB entries that stay cached (the kernel's per-CPU
# pages: timers, slab, LRU lists) are no longer tracked and the target gets stale copies. Measured
# on QEMU 7.2 here: 3 of 6 migrations of a RAM-dirtying 128 MiB guest ended with 7-8 pages that
# differed between the paused source and the target, and the guest oopsed or hung on arrival; with
# 128 MiB + 8 KiB, 0 pages differed in 10 of 10. libvirt rounds memory to whole MiB, so the 8 KiB
# are added here, on the command line libvirt hands to QEMU (the same on source and target, so the
# migration stream matches). Everything else passes through unchanged (capability probes too).
set -euo pipefail
EXTRA_KIB=8
args=()
expect_m=0
for arg in "$@"; do
  if [[ $expect_m == 1 && $arg =~ ^[0-9]+$ ]]; then
    arg="$((arg * 1024 + EXTRA_KIB))k"  # `-m 128` is MiB
  elif [[ $arg =~ ^(.*\"id\":\"pc\.ram\".*\"size\":)([0-9]+)(.*)$ ]]; then
    arg="${BASH_REMATCH[1]}$((BASH_REMATCH[2] + EXTRA_KIB * 1024))${BASH_REMATCH[3]}"
  fi
  expect_m=0
  [[ $arg == -m ]] && expect_m=1
  args+=("$arg")
done
exec /usr/bin/qemu-system-x86_64 "${args[@]}"
