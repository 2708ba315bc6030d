#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages icmpengine needs to build, test and
# benchmark, if any are missing. Everything comes from Debian: no downloads.
set -euo pipefail

packages=(
  g++ clang libclang-rt-14-dev          # compilers; clang's sanitizer and fuzzer runtimes
  clang-tidy                            # scripts/check-layout: function sizes
  meson ninja-build pkg-config python3  # build
  cmake                                 # tests/consumers: a CMake project using pkg-config
  liburing-dev libfmt-dev               # the library
  catch2 libbenchmark-dev               # tests, benchmarks
  nlohmann-json3-dev                    # the command-line tool (--json-lines)
  libasio-dev                           # include/icmpengine/asio.hpp: its tests, example server, benchmarks
  libboost-dev libyaml-cpp-dev          # icmpengine-exporter: Boost.Beast HTTP, smokeping_prober's YAML config
  prometheus                            # the exporter's tests: a real Prometheus, promtool check metrics
  prometheus-smokeping-prober           # the exporter's benchmark peer
  chromium                              # the exporter's status page, loaded headless in a test
  iproute2 util-linux procps            # ip, unshare, nsenter, sysctl: private namespaces
  fping iputils-ping                    # side-by-side figures; fping: the oracle of tests/fping_compat
  monitoring-plugins-standard           # check_fping: an fping consumer (tests/fping_compat/consumers.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
