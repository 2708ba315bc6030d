#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start: installs what is missing, builds, and pings 127.0.0.1 and ::1
# a few times. The pings run in a private network namespace created here
# (loopback only), never on the host's network. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
[ -d build ] || meson setup build -Dbuildtype=release -Dtests=disabled -Dbenchmarks=disabled >/dev/null
meson compile -C build >/dev/null

exec unshare --net sh -c '
  ip link set lo up &&
  sysctl -qw net.ipv4.ping_group_range="0 2147483647" &&
  exec build/tools/icmpengine -c 3 127.0.0.1 ::1'
