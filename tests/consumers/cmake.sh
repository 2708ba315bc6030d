#!/bin/sh
# SPDX-License-Identifier: MIT
# (c) A CMake project with pkg_check_modules(ICMPENGINE REQUIRED
# IMPORTED_TARGET icmpengine) against a staged `meson install --destdir`.
. "$(dirname "$0")/common.sh"
stage_install

mkdir "$work/project"
cp "$here/cmake/CMakeLists.txt" "$here/main.cpp" "$work/project/"
cmake -S "$work/project" -B "$work/build" >"$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log"; fail "cmake could not configure the consumer"; }
cmake --build "$work/build" -j "$jobs" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; fail "the CMake consumer did not build"; }
export LD_LIBRARY_PATH="$libdir"
ldd "$work/build/consumer" | grep -q "$libdir/libicmpengine.so" ||
    fail "the consumer does not use the staged library: $(ldd "$work/build/consumer" | grep icmpengine)"
"$work/build/consumer" || fail "the consumer did not run"
run_ping "$work/build/consumer"
say "ok"
