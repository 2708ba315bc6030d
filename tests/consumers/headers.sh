#!/bin/sh
# SPDX-License-Identifier: MIT
# (e) Every public header (include/icmpengine/**/*.hpp, found now, so new
# headers are covered) compiles on its own, with -Wall -Wextra -Wpedantic
# -Werror, under g++ and clang++; and none of them pulls in liburing or fmt
# (pkg-config users get no flags for them).
. "$(dirname "$0")/common.sh"

headers=$(cd "$src/include" && find icmpengine -name '*.hpp' | sort)
[ -n "$headers" ] || fail "no headers under $src/include/icmpengine"
failed=0 count=0
for cxx in g++ clang++; do
    command -v "$cxx" >/dev/null || fail "$cxx is not installed (scripts/install-deps.sh)"
    for h in $headers; do
        count=$((count + 1))
        if ! printf '#include <%s>\n' "$h" |
            "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$src/include" \
                -x c++ - 2>"$work/err"; then
            say "FAIL: <$h> does not compile alone with $cxx:"
            head -20 "$work/err"
            failed=$((failed + 1))
        fi
    done
done
# shellcheck disable=SC2086
printf '#include <%s>\n' $headers | c++ -std=c++20 -I"$src/include" -x c++ -M -MT x - >"$work/deps" ||
    fail "the headers do not preprocess together"
if grep -Eq 'liburing|/fmt/' "$work/deps"; then
    fail "a public header includes liburing or fmt: $(grep -Eo '[^ ]*(liburing|/fmt/)[^ ]*' "$work/deps" | head -3 | tr '\n' ' ')"
fi
[ "$failed" -eq 0 ] || fail "$failed of $count header compilations failed"
say "ok: $count compilations ($(echo "$headers" | wc -l) headers x g++, clang++)"
