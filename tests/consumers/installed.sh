#!/bin/sh
# SPDX-License-Identifier: MIT
# (b) The installed library through pkg-config: `meson install --destdir`
# into a temporary root, PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR pointed
# at it, and a Meson project with dependency('icmpengine', method:
# 'pkg-config'). Also: every public header of the source tree is installed,
# and the installed headers need neither liburing nor fmt.
. "$(dirname "$0")/common.sh"
stage_install

incdir=$(pkg-config --cflags-only-I icmpengine | tr ' ' '\n' | grep -m1 "^-I$work/root" | cut -c3-)
[ -n "$incdir" ] || fail "pkg-config --cflags gives no include directory in the staged root: $(pkg-config --cflags icmpengine)"
(cd "$src/include" && find icmpengine -name '*.hpp' | sort) >"$work/want"
(cd "$incdir" && find icmpengine -name '*.hpp' | sort) >"$work/have"
diff "$work/want" "$work/have" >"$work/diff" ||
    { cat "$work/diff"; fail "installed headers differ from include/ (< not installed, > extra)"; }
# shellcheck disable=SC2046
check_header_origin "$incdir" $(pkg-config --cflags icmpengine)

mkdir "$work/project"
cp "$here/pkgconfig/meson.build" "$here/main.cpp" "$work/project/"
meson setup "$work/build" "$work/project" >"$work/setup.log" 2>&1 ||
    { cat "$work/setup.log"; fail "meson setup of the pkg-config consumer failed"; }
meson compile -C "$work/build" -j "$jobs" >"$work/compile.log" 2>&1 ||
    { cat "$work/compile.log"; fail "the pkg-config consumer did not build"; }
export LD_LIBRARY_PATH="$libdir"
ldd "$work/build/consumer" | grep -q "$libdir/libicmpengine.so" ||
    fail "the consumer does not use the staged library: $(ldd "$work/build/consumer" | grep icmpengine)"
"$work/build/consumer" || fail "the consumer did not run"
run_ping "$work/build/consumer"
say "ok"
