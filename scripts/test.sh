#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as CI runs it (.ci/run calls this and nothing else):
#  1. GCC, warnings as errors: unit, system and bench-smoke suites, and the
#     layout check (file and function sizes, scripts/check-layout);
#  2. clang with AddressSanitizer + UndefinedBehaviorSanitizer (and
#     LeakSanitizer): unit and system suites again, and the fuzzers for 60 s each;
#  3. clang with ThreadSanitizer: the multi-engine (engine per thread), remote
#     handle and Asio adapter tests.
# System tests create their own network namespaces; they need root. Under
# CI=true a system test that cannot do so fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

summary=()
run_suites() { # build-dir timeout-multiplier suite [test-name]... (names after the suite)
  local dir=$1 mult=$2
  shift 2
  local args=()
  for s in "$@"; do
    case "$s" in
      unit|system|bench-smoke|fuzz|layout) args+=(--suite "$s") ;;
      no-e2e) args+=(--no-suite e2e) ;;
      *) args+=("$s") ;;
    esac
  done
  local rc=0
  meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier "$mult" "${args[@]}" || rc=$?
  summary+=("$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {}
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    counts[r] = counts.get(r, 0) + 1
ok = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
bad = sum(v for k, v in counts.items() if k not in ("OK", "EXPECTEDFAIL", "SKIP"))
print(f"{ok} {bad} {counts.get('SKIP', 0)}")
PY
)")
  return $rc
}

status=0

echo "== gcc, -Werror =="
[ -d build-ci ] || meson setup build-ci -Dbuildtype=debugoptimized -Dwerror=true >/dev/null
meson compile -C build-ci
run_suites build-ci 1 unit system bench-smoke layout || status=1

echo "== consumers: wrap, installed .pc (Meson, CMake), uninstalled .pc, headers alone =="
# tests/consumers/: projects that build against this build tree as users'
# projects would. (run_suites passes --suite through unchanged.)
run_suites build-ci 1 --suite consumers || status=1

echo "== clang, ASan + UBSan =="
# -fno-sanitize=function: clang 14 cannot compile coroutines with it
# (llvm/llvm-project#49689); every other UBSan check stays on.
[ -d build-ci-asan ] || CXX=clang++ meson setup build-ci-asan -Dbuildtype=debug -Dwerror=true \
  -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fno-sanitize=function \
  -Dbenchmarks=disabled >/dev/null
meson compile -C build-ci-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# The end-to-end comparisons (suite e2e: fping_compat against fping, the
# exporter under a real Prometheus) ran in the gcc stage; here the same
# programs run through their lifecycle and system tests.
run_suites build-ci-asan 4 unit system no-e2e || status=1
# libFuzzer, 60 s per target (tests/fuzz/run_fuzzer.sh); a crash input it
# finds goes into tests/fuzz/regressions/, which every build replays.
run_suites build-ci-asan 1 fuzz || status=1

echo "== clang, ThreadSanitizer: engines per thread, remote handles, Asio thread pools, the exporter's threads =="
[ -d build-ci-tsan ] || CXX=clang++ meson setup build-ci-tsan -Dbuildtype=debug -Dwerror=true \
  -Db_sanitize=thread -Db_lundef=false -Dbenchmarks=disabled >/dev/null
meson compile -C build-ci-tsan tests/test_engine_pool tests/test_embedding tests/test_asio \
  tests/test_asio_remote tests/test_exporter_resolver tools/exporter/icmpengine-exporter
export TSAN_OPTIONS=halt_on_error=1
run_suites build-ci-tsan 4 system engine_pool embedding asio asio_remote exporter_resolver \
  exporter_lifecycle || status=1

passed=0 failed=0 skipped=0
for s in "${summary[@]}"; do
  read -r p f k <<<"$s"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + k))
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
