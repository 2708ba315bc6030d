# SPDX-License-Identifier: MIT
# Sourced by the consumer tests: tests/consumers/NAME.sh SOURCE_ROOT BUILD_ROOT
# (meson suite `consumers`). Each works in a temporary directory it removes.
set -eu
test_name=$(basename "$0" .sh)
[ $# -ge 2 ] || { echo "usage: $0 SOURCE_ROOT BUILD_ROOT" >&2; exit 2; }
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
here=$src/tests/consumers
jobs=${CONSUMER_JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/icmpengine-$test_name.XXXXXX")
trap 'rm -rf "$work"' EXIT

say() { printf '%s: %s\n' "$test_name" "$*"; }
fail() {
    say "FAIL: $*" >&2
    exit 1
}

# run_ping PROGRAM [ARGS...]: PROGRAM ARGS --ping inside a network namespace
# of its own (loopback up, ICMP datagram sockets allowed), so it pings only
# that namespace's 127.0.0.1. Not root: the ping is skipped (the build above
# it was still checked), loudly; under CI=true that is a failure.
run_ping() {
    if [ "$(id -u)" -ne 0 ]; then
        [ "${CI:-}" != true ] || fail "not root: no network namespace to ping in (CI=true)"
        say "SKIPPED the ping: not root, so no private network namespace (the build passed)"
        return 0
    fi
    unshare -n sh -c 'ip link set lo up &&
                      sysctl -qw net.ipv4.ping_group_range="0 2147483647" &&
                      exec "$@"' sh "$@" --ping || fail "$1 --ping failed"
}

# stage_install: `meson install` of the build into $work/root; sets
# PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR to it and libdir to the
# directory of the staged libicmpengine.so.
stage_install() {
    meson install -C "$build" --no-rebuild --destdir "$work/root" >"$work/install.log" 2>&1 ||
        { cat "$work/install.log"; fail "meson install --destdir failed"; }
    pc=$(find "$work/root" -name icmpengine.pc)
    [ -n "$pc" ] || fail "meson install put no icmpengine.pc in $work/root"
    export PKG_CONFIG_PATH="${pc%/*}" PKG_CONFIG_SYSROOT_DIR="$work/root"
    # The sysroot also prefixes the Cflags of the system's liburing.pc and
    # fmt.pc (Requires.private), -I/usr/include: let the staged root hold
    # the system's headers there, as a real sysroot would (CMake refuses an
    # imported target whose include directory does not exist).
    [ -e "$work/root/usr/include" ] || ln -s /usr/include "$work/root/usr/include"
    lib=$(find "$work/root" -name 'libicmpengine.so')
    [ -n "$lib" ] || fail "meson install put no libicmpengine.so in $work/root"
    libdir=${lib%/*}
}

# check_header_origin DIR CXXFLAGS...: <icmpengine/icmpengine.hpp>, with
# these flags, comes from DIR and pulls in neither liburing nor fmt.
check_header_origin() {
    dir=$1
    shift
    echo '#include <icmpengine/icmpengine.hpp>' |
        c++ -std=c++20 "$@" -x c++ -M -MT x - >"$work/deps" || fail "cannot preprocess with: $*"
    grep -q "$dir/icmpengine/icmpengine.hpp" "$work/deps" ||
        fail "<icmpengine/icmpengine.hpp> does not come from $dir with: $*"
    if grep -Eq 'liburing|/fmt/' "$work/deps"; then
        fail "the public headers include liburing or fmt: $(grep -Eo '[^ ]*(liburing|/fmt/)[^ ]*' "$work/deps" | head -3 | tr '\n' ' ')"
    fi
}
