#!/bin/sh
# SPDX-License-Identifier: MIT
# (d) The uninstalled pkg-config file of a build tree
# (meson-uninstalled/icmpengine-uninstalled.pc, which pkg-config prefers to
# icmpengine.pc when it is on PKG_CONFIG_PATH): its Cflags must reach the
# public headers in include/ and its Libs the library in the build tree.
. "$(dirname "$0")/common.sh"

pcdir=$build/meson-uninstalled
[ -f "$pcdir/icmpengine-uninstalled.pc" ] || fail "no $pcdir/icmpengine-uninstalled.pc"
export PKG_CONFIG_PATH="$pcdir"
unset PKG_CONFIG_SYSROOT_DIR
cflags=$(pkg-config --cflags icmpengine) || fail "pkg-config does not resolve icmpengine"
libs=$(pkg-config --libs icmpengine)
say "Cflags: $cflags"
say "Libs: $libs"
# shellcheck disable=SC2086
check_header_origin "$src/include" $cflags
# shellcheck disable=SC2086
c++ -std=c++20 -Wall -Wextra -Werror "$here/main.cpp" $cflags $libs -o "$work/consumer" ||
    fail "the consumer did not build against the uninstalled .pc"
libdir=$(pkg-config --libs-only-L icmpengine | tr ' ' '\n' | grep -m1 '^-L' | cut -c3-)
export LD_LIBRARY_PATH="$libdir"
ldd "$work/consumer" | grep -q "$build/.*libicmpengine.so" ||
    fail "the consumer does not use the build tree's library: $(ldd "$work/consumer" | grep icmpengine)"
"$work/consumer" || fail "the consumer did not run"
run_ping "$work/consumer"
say "ok"
