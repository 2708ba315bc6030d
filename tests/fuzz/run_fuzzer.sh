#!/bin/sh
# SPDX-License-Identifier: MIT
# Fuzzes one target for a bounded time: the tests of meson suite 'fuzz'.
#
#   run_fuzzer.sh FUZZER CORPUS REGRESSIONS WORKDIR SECONDS
#
# FUZZ_SECONDS in the environment overrides SECONDS. The fuzzer works on a
# copy of the committed corpus in WORKDIR/corpus (kept between runs, so it
# grows) and never writes into the source tree. Fails if libFuzzer saves a
# crash, leak, timeout or out-of-memory input, printing where it is and how
# to keep it as a regression test.
set -eu

fuzzer=$1
corpus=$2
regressions=$3
work=$4
seconds=${FUZZ_SECONDS:-$5}

mkdir -p "$work/corpus"
cp "$corpus"/* "$work/corpus/"
rm -rf "$work/artifacts"
mkdir -p "$work/artifacts"

# libFuzzer's own exit code for a failing input is 77, which meson reads as
# "skipped": ask for 1. -timeout bounds one input, -max_total_time the
# fuzzing loop, timeout(1) everything (meson's own timeout is off for these
# tests, so that FUZZ_SECONDS can be anything).
status=0
timeout -k 30 $((seconds + 300)) \
  "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$regressions" || status=$?

found=$(find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' \
  -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
if [ -n "$found" ]; then
  echo "FUZZING FOUND FAILING INPUTS:"
  for f in $found; do echo "  $f"; done
  echo "Reproduce with: $fuzzer FILE"
  echo "Once fixed, keep each input as a regression test (every build replays them):"
  echo "  cp FILE tests/fuzz/regressions/$(basename "$fuzzer")-WHAT"
  exit 1
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "the fuzzer did not stop within $((seconds + 300)) s of a $seconds s run"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "the fuzzer failed (exit status $status) without saving an input"
  exit 1
fi
