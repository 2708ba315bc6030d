#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fping's consumers, unchanged, on our tool: Nagios/Icinga's check_fping
# (monitoring-plugins-standard) runs /usr/bin/fping, a path compiled into
# it; SmokePing's FPing probe runs `fping -C N -q -B1 -r1 -i10 -b SIZE
# HOST...` and parses stderr (the command line copied here: SmokePing itself
# is not installed). Each check runs twice in one private network and mount namespace
# (netsim's: 198.18.0.9 never answers, 198.18.0.7 answers in 500 ms, 127/8
# and ::1 on loopback), once with Debian's fping and once with our tool
# bind-mounted over /usr/bin/fping; the plugin's output (numbers masked) and
# exit code must be the same.
#
#   consumers.sh TOOL NETSIM
#
# Skips (77) without root, fping or check_fping; under CI=true that fails.
set -u
tool=$1 netsim=$2
check_fping=/usr/lib/nagios/plugins/check_fping

skip() {
    echo "consumers: $1" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (namespaces)"
[ -x /usr/bin/fping ] || skip "needs Debian's fping (scripts/install-deps.sh)"
[ -x "$check_fping" ] || skip "needs $check_fping (monitoring-plugins-standard)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# check_fping clears the environment: a wrapper keeps the build tree's
# library path and runs the tool under the name fping.
libdir=$(dirname "$(ldd "$tool" | awk '/libicmpengine/ { print $3 }')")
printf '#!/bin/bash\nLD_LIBRARY_PATH=%q exec -a fping %q "$@"\n' "$libdir" "$tool" >"$scratch/fping"
chmod +x "$scratch/fping"

cat >"$scratch/checks.sh" <<'INNER'
set -u
which=$1 checks=$2
sysctl -qw net.ipv4.ping_group_range="0 2147483647"
[ "$which" = fping ] || mount --bind "$which" /usr/bin/fping
while IFS= read -r args; do
    out=$(/usr/lib/nagios/plugins/check_fping $args 2>&1)
    echo "rc=$? $args: $out"
done <"$checks"
# SmokePing's FPing probe (lib/Smokeping/probes/FPing.pm): the lines it parses.
/usr/bin/fping -C 3 -q -B1 -r1 -i10 -b 56 127.0.0.1 198.18.0.9 198.18.0.7 2>&1 |
    sed 's/^/rc=smokeping /'
INNER

cat >"$scratch/checks" <<'LIST'
-H 127.0.0.1
-H 127.0.0.1 -n 3 -w 100,20% -c 200,40%
-H ::1 -n 2
-H 127.0.0.1 -b 1000 -n 2
-H 198.18.0.9 -n 2
-H 198.18.0.7 -n 3 -w 300,20% -c 900,40%
-H 198.18.0.7 -n 2 -T 1
LIST

profile='198.18.0.9:loss=1;198.18.0.7:delay=fixed:500ms'
# Decimals become N; SmokePing's whole-millisecond RTTs of the 500 ms host
# become 5NN (500..599: the delay is there, its jitter under load is not
# compared).
mask() { grep "^rc=" | sed -E -e "s/[0-9]+\\.[0-9]+/N/g" -e "/^rc=smokeping/ s/\\b5[0-9]{2}\\b/5NN/g"; }
"$netsim" --profile "$profile" -- unshare -m bash "$scratch/checks.sh" fping "$scratch/checks" \
    2>/dev/null | mask >"$scratch/theirs"
"$netsim" --profile "$profile" -- unshare -m bash "$scratch/checks.sh" "$scratch/fping" \
    "$scratch/checks" 2>/dev/null | mask >"$scratch/ours"

cat "$scratch/ours"
n=$(($(wc -l <"$scratch/checks") + 3))
if [ "$(wc -l <"$scratch/theirs")" != "$n" ]; then
    echo "consumers: Debian's fping run printed $(wc -l <"$scratch/theirs") of $n results" >&2
    exit 1
fi
if ! diff -u --label "with fping 5.1" --label "with ours" \
    "$scratch/theirs" "$scratch/ours"; then
    echo "consumers: a consumer sees our tool differently (above)" >&2
    exit 1
fi
echo "consumers: $n lines (check_fping runs, SmokePing's fping lines), the same with fping 5.1 and with ours"
