#!/bin/sh
# SPDX-License-Identifier: MIT
# (a) A parent Meson project gets icmpengine as a subproject through a wrap:
# subprojects/icmpengine.wrap is a [wrap-file] whose source_url is a file://
# tarball of this source tree (offline), with a [provide] section, and the
# parent says only dependency('icmpengine'). The subproject must build no
# tests, benchmarks or tools; the consumer must build, run and ping.
. "$(dirname "$0")/common.sh"

# The tarball: the files git knows (tracked, or new and not ignored) in a
# checkout; every file elsewhere (a `meson dist` tarball); never a build
# tree (a top-level directory with meson-private/, such as dpkg-buildpackage's
# obj-*/).
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$src" ls-files -co --exclude-standard | while read -r f; do
        top=${f%%/*}
        [ -e "$src/$f" ] && [ ! -d "$src/$top/meson-private" ] && printf '%s\n' "$f"
    done >"$work/files"
else
    (cd "$src" && find . -mindepth 1 -maxdepth 1 ! -name subprojects -exec sh -c \
        'for d; do [ -d "$d/meson-private" ] || find "$d" ! -type d; done' sh {} +) >"$work/files"
fi
tar -C "$src" --transform 's,^\(\./\)\?,icmpengine/,S' -czf "$work/icmpengine-src.tar.gz" -T "$work/files"

mkdir -p "$work/parent/subprojects"
cp "$here/wrap/meson.build" "$here/main.cpp" "$work/parent/"
cat >"$work/parent/subprojects/icmpengine.wrap" <<WRAP
[wrap-file]
directory = icmpengine
source_url = file://$work/icmpengine-src.tar.gz
source_filename = icmpengine-src.tar.gz
source_hash = $(sha256sum "$work/icmpengine-src.tar.gz" | cut -d' ' -f1)

[provide]
dependency_names = icmpengine
WRAP

# force_fallback_for: the subproject even where an icmpengine is installed.
meson setup "$work/build" "$work/parent" -Dbuildtype=debug --force-fallback-for=icmpengine \
    >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; fail "meson setup of the parent failed"; }
grep -q "Using icmpengine source from cache" "$work/setup.log" ||
    grep -q "Downloading icmpengine source" "$work/setup.log" ||
    { cat "$work/setup.log"; fail "the wrap was not used"; }

meson introspect --targets "$work/build" | python3 -c '
import json, sys
targets = json.load(sys.stdin)
sub = [t["name"] + " (" + t["type"] + ")" for t in targets if t.get("subproject") == "icmpengine"]
exes = [s for s in sub if "executable" in s]
print("wrap: subproject targets:", ", ".join(sorted(sub)))
if exes or not any("icmpengine (shared library)" == s for s in sub):
    sys.exit("wrap: FAIL: the subproject must build the library and no executable (tests, tools, benchmarks)")
'
meson compile -C "$work/build" -j "$jobs" >"$work/compile.log" 2>&1 ||
    { tail -50 "$work/compile.log"; fail "the parent project did not build"; }
"$work/build/consumer" || fail "the consumer did not run"
run_ping "$work/build/consumer"
say "ok"
