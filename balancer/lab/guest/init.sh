#!/bin/busybox sh
# /init of the balancer lab guest: PID 1 of a busybox-only initramfs.
#
# Knobs come from the kernel command line (written by balancer/lab/domain.py):
#   lab.dirty_mb=N        MiB of RAM rewritten per second, inside a tmpfs of lab.live_mb MiB
#   lab.live_mb=N         MiB of live data kept in RAM (what a migration has to copy)
#   lab.disk_mb=N         MiB written to /dev/vda per second (fsync'd) ...
#   lab.disk_window_mb=N  ... always inside the first N MiB of the disk, so the rest stays stable
#   lab.cpu_burn=PCT      busy-loop PCT % of every second on the single vCPU
#   lab.console=1         run `poweroff` typed on ttyS1 (the owner's console, Lab.guest_command)
# It prints "LABGUEST up ..." once per boot and "HB <n> ..." every second on ttyS0. The lab reads
# both from the serial log: a counter that keeps going on another host proves a live migration,
# a second banner proves a reboot.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# modules in dependency order (virtio PCI transport, block, balloon for libvirt's memory stats)
while read -r mod; do insmod "/lib/modules/$mod.ko" 2>/dev/null; done </lib/modules/load-order

arg() { v=$(sed -n "s/.*lab\.$1=\([0-9]*\).*/\1/p" /proc/cmdline); echo "${v:-$2}"; }
DIRTY=$(arg dirty_mb 8)
LIVE=$(arg live_mb 48)
DISK=$(arg disk_mb 1)
WINDOW=$(arg disk_window_mb 16)
BURN=$(arg cpu_burn 0)
CONSOLE=$(arg console 0)
[ "$LIVE" -gt 0 ] || LIVE=1
[ "$DIRTY" -le "$LIVE" ] || DIRTY=$LIVE
[ "$DISK" -le "$WINDOW" ] || WINDOW=$DISK
[ "$BURN" -le 100 ] || BURN=100

# The owner's console: `poweroff` there powers the guest off (2 s after answering), as an owner shutting it down
# from inside would (libvirt's own shutdown waits for a running migration job to end).
if [ "$CONSOLE" = 1 ]; then
  stty -F /dev/ttyS1 clocal -echo 2>/dev/null  # no carrier on a virtual port: do not wait for one
  while read -r cmd; do
    if [ "$cmd" = poweroff ]; then
      echo "LABGUEST poweroff from the console"
      echo "ran poweroff" >/dev/ttyS1
      sleep 2  # the answer reaches whoever typed it before the port goes away
      poweroff -f
    fi
  done </dev/ttyS1 &
fi

# Duty cycle over 1 s periods: spin for BURN centiseconds (reading /proc/uptime, so no fork
# per iteration), then sleep for the rest of the period.
burn() {
  while :; do
    read -r up _ </proc/uptime
    end=$(( ${up%.*} * 100 + 1${up#*.} - 100 + BURN ))
    while read -r up _ </proc/uptime; [ $(( ${up%.*} * 100 + 1${up#*.} - 100 )) -lt "$end" ]; do :; done
    [ "$BURN" -lt 100 ] && usleep $(( (100 - BURN) * 10000 ))
  done
}
[ "$BURN" -gt 0 ] && burn &

# Random data comes from a seed made once: /dev/urandom is slow under TCG, while copying the seed
# costs little. Identical pages still cost a migration their full size (no dedup by default),
# and writing a page dirties it whatever its content.
SEED=$DIRTY
[ "$DISK" -le "$SEED" ] || SEED=$DISK
[ "$SEED" -ge 1 ] || SEED=1
[ "$SEED" -le "$LIVE" ] || SEED=$LIVE
mount -t tmpfs -o size=$((LIVE + SEED + 4))m tmpfs /mnt
dd if=/dev/urandom of=/mnt/seed bs=1M count="$SEED" 2>/dev/null
# The tmpfs holds exactly LIVE + SEED MiB of data (+4 of slack): balancer/lab/domain.py sizes
# LIVE so that it fits in the guest's RAM beside the kernel, with no OOM kill.
n=0
while [ "$n" -lt "$LIVE" ]; do
  c=$SEED
  [ $((LIVE - n)) -ge "$c" ] || c=$((LIVE - n))
  dd if=/mnt/seed of=/mnt/live bs=1M count="$c" seek="$n" conv=notrunc 2>/dev/null
  n=$((n + c))
done
VDA=no
[ -b /dev/vda ] && VDA=yes
echo "LABGUEST up dirty=${DIRTY}MiB/s live=${LIVE}MiB disk=${DISK}MiB/s window=${WINDOW}MiB burn=${BURN}% vda=$VDA"
i=0
while :; do
  i=$((i + 1))
  if [ "$DIRTY" -gt 0 ]; then
    dd if=/mnt/seed of=/mnt/live bs=1M count="$DIRTY" seek=$(( (i % (LIVE / DIRTY)) * DIRTY )) \
       conv=notrunc 2>/dev/null
  fi
  if [ "$DISK" -gt 0 ] && [ "$VDA" = yes ]; then
    dd if=/mnt/seed of=/dev/vda bs=1M count="$DISK" seek=$(( (i % (WINDOW / DISK)) * DISK )) \
       conv=fsync 2>/dev/null
  fi
  echo "HB $i up=$(cut -d' ' -f1 /proc/uptime)"
  sleep 1
done
